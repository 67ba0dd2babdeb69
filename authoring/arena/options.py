"""The arena's `task_options`: which endpoints battle, reveal, the daily cap, outlier rule.

Checked when a lead saves the project (`labeling.task_kinds.clean_task_options`); which
endpoints belong to the project is checked when a battle starts, since a new project has
none yet (see `services.battles.arena_endpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput

DEFAULT_DAILY_CAP = 200
MAX_DAILY_CAP = 10_000
DEFAULT_MAX_TURNS = 10
MAX_TURNS_LIMIT = 50
DEFAULT_OUTLIER_MIN_VOTES = 20
DEFAULT_OUTLIER_Z = 3.0
KNOWN = ("endpoints", "reveal", "daily_cap", "max_turns", "outlier_min_votes", "outlier_z")


@dataclass(frozen=True)
class ArenaOptions:
    endpoints: tuple[int, ...] | None
    """Endpoint ids that battle; None: every endpoint of the project."""
    reveal: bool
    """The rater may see the two models after voting (later votes of the battle don't count)."""
    daily_cap: int | None
    """Counted votes per rater in any 24 hours; None: no cap."""
    max_turns: int
    outlier_min_votes: int
    outlier_z: float


def clean_arena_options(raw: dict[str, Any]) -> dict[str, Any]:
    """`task_options` of an arena project, normalised with its defaults filled in."""
    unknown = sorted(set(raw) - set(KNOWN))
    if unknown:
        raise InvalidInput(
            f"unknown arena option; known: {', '.join(KNOWN)}", field=f"task_options.{unknown[0]}"
        )
    return {
        "endpoints": _endpoint_ids(raw.get("endpoints")),
        "reveal": _boolean(raw.get("reveal", True), "reveal"),
        "daily_cap": _optional_count(raw.get("daily_cap", DEFAULT_DAILY_CAP), "daily_cap"),
        "max_turns": _count(raw.get("max_turns", DEFAULT_MAX_TURNS), "max_turns", MAX_TURNS_LIMIT),
        "outlier_min_votes": _count(
            raw.get("outlier_min_votes", DEFAULT_OUTLIER_MIN_VOTES), "outlier_min_votes", 100_000
        ),
        "outlier_z": _positive_number(raw.get("outlier_z", DEFAULT_OUTLIER_Z), "outlier_z"),
    }


def arena_options(stored: dict[str, Any] | None) -> ArenaOptions:
    """The options as services read them (stored options are already clean)."""
    cleaned = clean_arena_options(dict(stored or {}))
    endpoints = cleaned["endpoints"]
    return ArenaOptions(
        endpoints=tuple(endpoints) if endpoints is not None else None,
        reveal=cleaned["reveal"],
        daily_cap=cleaned["daily_cap"],
        max_turns=cleaned["max_turns"],
        outlier_min_votes=cleaned["outlier_min_votes"],
        outlier_z=cleaned["outlier_z"],
    )


def _endpoint_ids(raw: Any) -> list[int] | None:
    if raw is None:
        return None
    field = "task_options.endpoints"
    if not isinstance(raw, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) and item > 0 for item in raw
    ):
        raise InvalidInput("must be a list of endpoint ids", field=field)
    ids = sorted(set(raw))
    if len(ids) != len(raw):
        raise InvalidInput("lists an endpoint twice", field=field)
    if len(ids) < 2:
        raise InvalidInput("an arena needs at least two endpoints", field=field)
    return ids


def _boolean(raw: Any, name: str) -> bool:
    if not isinstance(raw, bool):
        raise InvalidInput("must be true or false", field=f"task_options.{name}")
    return raw


def _count(raw: Any, name: str, limit: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= limit:
        raise InvalidInput(
            f"must be a whole number from 1 to {limit}", field=f"task_options.{name}"
        )
    return raw


def _optional_count(raw: Any, name: str) -> int | None:
    return None if raw is None else _count(raw, name, MAX_DAILY_CAP)


def _positive_number(raw: Any, name: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw <= 10:
        raise InvalidInput("must be a number above 0, at most 10", field=f"task_options.{name}")
    return float(raw)
