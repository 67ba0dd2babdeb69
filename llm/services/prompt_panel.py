"""The AI judge's verdicts on one prompt, for the prompt page and `GET /api/prompts/{id}/`
(registered as the `ai_judge` extra of `rankings.prompts.extras` in `LlmConfig.ready`).

One entry per judging endpoint: the combined ranking (tie groups), each shown order's own
verdict, whether the two orders agreed, the pairs that flipped with the order (marked low
confidence), and the rationale. Verdicts stay out of the page's human rankings, consensus
and pair votes: they are shown beside them, never mixed in.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from labeling.models import Prompt
from llm.judge import levels, pair_label
from llm.models import CallStatus, JudgeVerdict

PANEL_KEY = "ai_judge"
PANEL_TEMPLATE = "llm/_prompt_verdicts.html"


def prompt_judge_panel(*, prompt: Prompt, labels: dict[int, str]) -> dict[str, Any] | None:
    """None when no endpoint has judged (or tried to judge) this prompt."""
    verdicts = list(
        JudgeVerdict.objects.filter(prompt=prompt, status__in=[CallStatus.DONE, CallStatus.FAILED])
        .select_related("endpoint")
        .order_by("endpoint__name", "endpoint_id")
    )
    if not verdicts:
        return None
    return {"verdicts": [_verdict(verdict, labels) for verdict in verdicts]}


def _verdict(verdict: JudgeVerdict, labels: dict[int, str]) -> dict[str, Any]:
    done = verdict.status == CallStatus.DONE
    flipped = _flipped_pairs(verdict.forward, verdict.reverse) if done else []
    return {
        "endpoint_id": verdict.endpoint_id,
        "endpoint": verdict.endpoint.name,
        "model": verdict.endpoint.model,
        "run_id": verdict.run_id,
        "status": verdict.status,
        "groups": verdict.groups,
        "labels": _labelled(verdict.groups, labels),
        "forward_labels": _labelled(verdict.forward, labels),
        "reverse_labels": _labelled(verdict.reverse, labels),
        "consistent": verdict.consistent,
        "low_confidence": done and verdict.consistent is False,
        "flipped_pairs": [_labelled([list(pair)], labels)[0] for pair in flipped],
        "flipped_pair_ids": [list(pair) for pair in flipped],
        "rationale": verdict.rationale,
        "error": verdict.error,
        "updated_at": verdict.updated_at.isoformat(),
    }


def _labelled(groups: list[list[int]], labels: dict[int, str]) -> list[list[str]]:
    return [sorted(labels.get(int(member), "?") for member in group) for group in groups]


def _flipped_pairs(forward: list[list[int]], reverse: list[list[int]]) -> list[tuple[int, int]]:
    """Pairs (a, b), a < b, the two shown orders label differently."""
    forward_level, reverse_level = levels(forward), levels(reverse)
    ids = sorted(set(forward_level) & set(reverse_level))
    return [
        (a, b)
        for a, b in combinations(ids, 2)
        if pair_label(forward_level, a, b) != pair_label(reverse_level, a, b)
    ]
