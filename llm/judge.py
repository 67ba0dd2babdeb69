"""The AI judge, pure: the prompt it is sent, the answer schema, validating an answer, and
combining the verdicts of the two shown orders. No Django models here.

Responses are shown under letters (A, B, C…); the judge answers
`{"ranking": [["B"], ["A", "C"]], "rationale": "…"}`: tie groups best→worst.
Each prompt is judged twice, in the original order and reversed; pairs the two verdicts
label alike are kept, pairs that flip with the order become ties and the verdict is
marked low-confidence.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from itertools import combinations
from typing import Any

LETTERS = string.ascii_uppercase
RATIONALE_CHARS = 2000

DEFAULT_SYSTEM_TEMPLATE = """You are a careful evaluator ranking AI assistant responses.
Judge them by these principles, the same guidelines human raters follow:

{guidelines}
{rubric}
Rank every response from best to worst. {ties}
Ignore the order in which responses are shown and their length as such.
Answer only with JSON:
{"ranking": [[letters of the best], [next], ...], "rationale": "one or two sentences"}"""

DEFAULT_USER_TEMPLATE = """The conversation so far:

{conversation}

The responses to rank:

{responses}"""

PLACEHOLDERS = ("{guidelines}", "{rubric}", "{ties}", "{conversation}", "{responses}")


class InvalidVerdict(ValueError):
    """The judge's answer is not a valid ranking of the shown responses."""


@dataclass(frozen=True)
class JudgeContext:
    guidelines: str
    rubric: list[dict[str, Any]]
    allow_ties: bool


def render_messages(
    *,
    system_template: str,
    user_template: str,
    context: JudgeContext,
    conversation: list[dict[str, str]],
    shown: list[str],
) -> list[dict[str, str]]:
    """The exact messages sent for one shown order (`shown`: response texts, in order).

    Placeholders are replaced literally (no format string), so braces in guidelines,
    prompts or responses are sent as they are."""
    values = {
        "{guidelines}": context.guidelines.strip() or "(no written guidelines)",
        "{rubric}": _rubric_text(context.rubric),
        "{ties}": "Put responses of equal quality in the same group."
        if context.allow_ties
        else "Do not tie: every group holds exactly one response.",
        "{conversation}": "\n\n".join(
            f"[{message['role']}]\n{message['content']}" for message in conversation
        ),
        "{responses}": "\n\n".join(
            f"=== Response {LETTERS[index]} ===\n{text}" for index, text in enumerate(shown)
        ),
    }
    return [
        {"role": "system", "content": _fill(system_template, values)},
        {"role": "user", "content": _fill(user_template, values)},
    ]


def _fill(template: str, values: dict[str, str]) -> str:
    # One pass over the template: a value that contains a placeholder is not filled again.
    out, index = [], 0
    while index < len(template):
        for placeholder, value in values.items():
            if template.startswith(placeholder, index):
                out.append(value)
                index += len(placeholder)
                break
        else:
            out.append(template[index])
            index += 1
    return "".join(out)


def _rubric_text(rubric: list[dict[str, Any]]) -> str:
    if not rubric:
        return ""
    lines = ["Criteria:"]
    for item in rubric:
        lines.append(f"- {item.get('label') or item.get('key')}")
    return "\n".join(lines) + "\n"


def response_format(n_responses: int) -> dict[str, Any]:
    """JSON schema structured output (OpenAI, vLLM guided decoding, Ollama `format`)."""
    letters = list(LETTERS[:n_responses])
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "ranking",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "ranking": {
                        "type": "array",
                        "items": {
                            "type": "array",
                            "items": {"type": "string", "enum": letters},
                            "minItems": 1,
                        },
                        "minItems": 1,
                    },
                    "rationale": {"type": "string"},
                },
                "required": ["ranking", "rationale"],
                "additionalProperties": False,
            },
        },
    }


@dataclass(frozen=True)
class Verdict:
    groups: list[list[int]]  # tie groups of shown positions (0-based), best first
    rationale: str


def parse_verdict(content: str, *, n_responses: int, allow_ties: bool) -> Verdict:
    """The judge's answer checked: every shown letter exactly once, ties only if allowed."""
    text = content.strip()
    if text.startswith("```"):  # a fenced block despite the instructions
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
    except ValueError as error:
        raise InvalidVerdict(f"not JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("ranking"), list):
        raise InvalidVerdict('no "ranking" list')
    rationale = data.get("rationale", "")
    if not isinstance(rationale, str):
        raise InvalidVerdict('"rationale" must be a string')
    letters = LETTERS[:n_responses]
    groups: list[list[int]] = []
    seen: set[str] = set()
    for group in data["ranking"]:
        if isinstance(group, str):
            group = [group]
        if not isinstance(group, list) or not group:
            raise InvalidVerdict("each ranking group must be a non-empty list of letters")
        positions = []
        for letter in group:
            if not isinstance(letter, str) or letter.strip().upper() not in letters:
                raise InvalidVerdict(f"unknown response {letter!r}")
            letter = letter.strip().upper()
            if letter in seen:
                raise InvalidVerdict(f"response {letter} is ranked twice")
            seen.add(letter)
            positions.append(letters.index(letter))
        groups.append(sorted(positions))
    if len(seen) != n_responses:
        missing = [letter for letter in letters if letter not in seen]
        raise InvalidVerdict(f"responses {', '.join(missing)} are not ranked")
    if not allow_ties and any(len(group) > 1 for group in groups):
        raise InvalidVerdict("ties are not allowed in this project")
    return Verdict(groups=groups, rationale=rationale.strip()[:RATIONALE_CHARS])


def levels(groups: list[list[int]]) -> dict[int, int]:
    """Item → its group's index (0 best)."""
    return {item: level for level, group in enumerate(groups) for item in group}


def pair_label(level: dict[int, int], first: int, second: int) -> int:
    """+1 first better, -1 second better, 0 tie."""
    a, b = level[first], level[second]
    return (a < b) - (a > b)


@dataclass(frozen=True)
class Combined:
    groups: list[list[int]]  # tie groups of response ids, best first
    consistent: bool
    pairs: int
    flipped: int
    first_shown_wins: int
    """Of the flipped pairs: those where the response shown first won in both orders."""
    second_shown_wins: int


def combine_orders(
    response_ids: list[int], forward: list[list[int]], reverse: list[list[int]]
) -> Combined:
    """The two verdicts (tie groups of shown positions; `forward` showed `response_ids` in
    order, `reverse` reversed) as one ranking of response ids.

    Consistent verdicts are kept as they are. Otherwise each response is placed by its
    wins minus losses over the pairs both orders label alike (a flipped pair counts as a
    tie), and equal scores tie."""
    n = len(response_ids)
    forward_level = {response_ids[p]: level for p, level in levels(forward).items()}
    reverse_level = {response_ids[n - 1 - p]: level for p, level in levels(reverse).items()}
    score = dict.fromkeys(response_ids, 0)
    flipped = first_wins = second_wins = 0
    # In the forward order `a` (earlier in response_ids) is shown first; reversed, `b` is.
    for a, b in combinations(response_ids, 2):
        in_forward = pair_label(forward_level, a, b)
        in_reverse = pair_label(reverse_level, a, b)
        if in_forward == in_reverse:
            score[a] += in_forward
            score[b] -= in_forward
            continue
        flipped += 1
        if in_forward == 1 and in_reverse == -1:
            first_wins += 1
        elif in_forward == -1 and in_reverse == 1:
            second_wins += 1
    if flipped == 0:
        groups = [[response_ids[p] for p in group] for group in forward]
    else:
        ordered = sorted(set(score.values()), reverse=True)
        groups = [sorted(r for r in response_ids if score[r] == value) for value in ordered]
    return Combined(
        groups=[sorted(group) for group in groups],
        consistent=flipped == 0,
        pairs=n * (n - 1) // 2,
        flipped=flipped,
        first_shown_wins=first_wins,
        second_shown_wins=second_wins,
    )
