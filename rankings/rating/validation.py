"""Check a submitted ranking against the responses that were shown; no database access."""

from __future__ import annotations

from typing import Any

from labeling.rubric import rubric_problems

MAX_RATIONALE_CHARS = 5000


class RankingProblem(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def clean_ranking_groups(raw: Any, *, shown_ids: list[int], allow_ties: bool) -> list[list[int]]:
    """Tie groups best→worst that place every shown response exactly once.

    A bare id in place of a group is read as a group of one, so `[3, 1, 2]` is accepted.
    """
    if not isinstance(raw, list) or not raw:
        raise RankingProblem("ranking", "must be a non-empty list of tie groups")
    shown = set(shown_ids)
    seen: set[int] = set()
    groups: list[list[int]] = []
    for index, group in enumerate(raw):
        members = group if isinstance(group, list) else [group]
        if not members:
            raise RankingProblem(f"ranking[{index}]", "is an empty tie group")
        if len(members) > 1 and not allow_ties:
            raise RankingProblem(f"ranking[{index}]", "ties are not allowed in this project")
        cleaned = []
        for member in members:
            response_id = _as_response_id(member)
            if response_id is None or response_id not in shown:
                raise RankingProblem(
                    f"ranking[{index}]", f"{member!r} is not one of this task's responses"
                )
            if response_id in seen:
                raise RankingProblem(f"ranking[{index}]", f"response {response_id} appears twice")
            seen.add(response_id)
            cleaned.append(response_id)
        groups.append(cleaned)
    missing = [response_id for response_id in shown_ids if response_id not in seen]
    if missing:
        raise RankingProblem(
            "ranking", f"every response must be ranked; missing {', '.join(map(str, missing))}"
        )
    return groups


def _as_response_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def clean_seconds(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0 or raw > 86_400:
        raise RankingProblem("seconds", "must be a number of seconds between 0 and 86400")
    return float(raw)


def clean_ratings(
    raw: Any, *, shown_ids: list[int], rubric: list[dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Ratings keyed by response id, checked against the project's rubric.

    `{"12": {"helpful": 6, "unsafe": false}, ...}`; required scales must be given for
    every response.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RankingProblem("ratings", "must be an object keyed by response id")
    shown = {str(response_id) for response_id in shown_ids}
    cleaned: dict[str, dict[str, Any]] = {}
    for key, values in raw.items():
        if str(key) not in shown:
            raise RankingProblem(f"ratings.{key}", "is not one of this task's responses")
        if not isinstance(values, dict):
            raise RankingProblem(f"ratings.{key}", "must be an object of scale → value")
        cleaned[str(key)] = values
    problems = rubric_problems(rubric or [], cleaned, shown_ids)
    if problems:
        field, message = problems[0]
        raise RankingProblem(field, message)
    return cleaned


def clean_strength(raw: Any, *, groups: list[list[int]]) -> int | None:
    """Pairwise strength (3 much better, 2 better, 1 slightly better, 0 about the same).

    Only for two responses; "about the same" must come with a tie and the others without.
    """
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 3:
        raise RankingProblem("strength", "must be 0, 1, 2 or 3")
    if sum(len(group) for group in groups) != 2:
        raise RankingProblem("strength", "is only for pairwise (two-response) tasks")
    tied = len(groups) == 1
    if tied != (raw == 0):
        raise RankingProblem(
            "strength", "0 (about the same) goes with a tie, 1 to 3 with a preference"
        )
    return raw


def clean_rationale(raw: Any, *, required: bool) -> str:
    text = (raw or "").strip() if isinstance(raw, str | type(None)) else None
    if text is None:
        raise RankingProblem("rationale", "must be text")
    if len(text) > MAX_RATIONALE_CHARS:
        raise RankingProblem("rationale", f"must be at most {MAX_RATIONALE_CHARS} characters")
    if required and not text:
        raise RankingProblem("rationale", "this project asks for a short rationale")
    return text
