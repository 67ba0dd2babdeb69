"""A red-team project's `task_options`: checked, normalised, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput
from labeling.models import Project

DEFAULT_CATEGORIES = (
    "violence",
    "weapons",
    "self-harm",
    "hate",
    "sexual content",
    "privacy",
    "cyber",
    "fraud",
    "dangerous advice",
    "other",
)
DEFAULT_MAX_TURNS = 6
MAX_TURNS_LIMIT = 50
MAX_CATEGORIES = 50
CATEGORY_CHARS = 100
KNOWN = ("target_endpoint", "categories", "max_turns", "free_choice")


@dataclass(frozen=True)
class RedTeamOptions:
    target_endpoint: int | None
    categories: tuple[str, ...]
    max_turns: int
    free_choice: bool


def clean_red_team_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in; InvalidInput names the option at fault.

    `target_endpoint` is checked to be a whole number here; that it is an endpoint of the
    same project is checked when the project is saved (the handler is not given it).
    """
    unknown = sorted(set(options) - set(KNOWN))
    if unknown:
        raise InvalidInput(
            f"unknown option; expected some of: {', '.join(KNOWN)}",
            field=f"task_options.{unknown[0]}",
        )
    return {
        "target_endpoint": _endpoint_id(options.get("target_endpoint")),
        "categories": _categories(options.get("categories")),
        "max_turns": _max_turns(options.get("max_turns", DEFAULT_MAX_TURNS)),
        "free_choice": _boolean(options.get("free_choice", False), "free_choice"),
    }


def red_team_options(project: Project) -> RedTeamOptions:
    """The project's options as stored (cleaned on the way in), defaults for what is missing."""
    raw = project.task_options or {}
    return RedTeamOptions(
        target_endpoint=raw.get("target_endpoint"),
        categories=tuple(raw.get("categories") or DEFAULT_CATEGORIES),
        max_turns=int(raw.get("max_turns") or DEFAULT_MAX_TURNS),
        free_choice=bool(raw.get("free_choice", False)),
    )


def _endpoint_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(
            "must be the id of one of the project's model endpoints",
            field="task_options.target_endpoint",
        )
    return value


def _categories(value: Any) -> list[str]:
    field = "task_options.categories"
    if value is None:
        return list(DEFAULT_CATEGORIES)
    if not isinstance(value, list) or not value:
        raise InvalidInput("must be a non-empty list of category names", field=field)
    if len(value) > MAX_CATEGORIES:
        raise InvalidInput(f"at most {MAX_CATEGORIES} categories", field=field)
    cleaned: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise InvalidInput("each category must be a non-empty string", field=field)
        name = item.strip()
        if len(name) > CATEGORY_CHARS or "\x00" in name:
            raise InvalidInput(f"a category has at most {CATEGORY_CHARS} characters", field=field)
        if name in cleaned:
            raise InvalidInput(f"{name!r} is listed twice", field=field)
        cleaned.append(name)
    return cleaned


def _max_turns(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TURNS_LIMIT:
        raise InvalidInput(
            f"must be a whole number from 1 to {MAX_TURNS_LIMIT}", field="task_options.max_turns"
        )
    return value


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("must be true or false", field=f"task_options.{name}")
    return value
