"""Check a submitted ranking against the responses that were shown; no database access."""

from __future__ import annotations

from typing import Any


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


def clean_ratings(raw: Any, *, shown_ids: list[int]) -> dict[str, dict[str, Any]]:
    """Ratings keyed by response id: {"12": {"helpful": 6, "unsafe": false}, ...}."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RankingProblem("ratings", "must be an object keyed by response id")
    shown = {str(response_id) for response_id in shown_ids}
    cleaned: dict[str, dict[str, Any]] = {}
    for key, values in raw.items():
        if str(key) not in shown:
            raise RankingProblem(f"ratings.{key}", "is not one of this task's responses")
        if not isinstance(values, dict):
            raise RankingProblem(f"ratings.{key}", "must be an object of scale → value")
        for scale, value in values.items():
            if isinstance(value, bool) or (isinstance(value, int | float) and -100 <= value <= 100):
                continue
            raise RankingProblem(f"ratings.{key}.{scale}", "must be a number or true/false")
        cleaned[str(key)] = values
    return cleaned
