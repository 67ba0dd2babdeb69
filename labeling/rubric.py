"""A project's rubric: the rating scales and checkboxes shown under each response."""

from __future__ import annotations

import re
from typing import Any

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
KINDS = ("scale", "checkbox")
MAX_ITEMS = 12

HHH_PRESET: list[dict[str, Any]] = [
    {"key": "helpful", "label": "Helpful", "kind": "scale", "min": 1, "max": 7, "required": False},
    {"key": "honest", "label": "Honest", "kind": "scale", "min": 1, "max": 7, "required": False},
    {
        "key": "harmless",
        "label": "Harmless",
        "kind": "scale",
        "min": 1,
        "max": 7,
        "required": False,
    },
]


class RubricProblem(ValueError):
    pass


def clean_rubric(raw: Any) -> list[dict[str, Any]]:
    """Validate and normalise a rubric; the string "hhh" stands for the preset."""
    if raw == "hhh":
        return [dict(item) for item in HHH_PRESET]
    if raw in (None, ""):
        return []
    if not isinstance(raw, list) or len(raw) > MAX_ITEMS:
        raise RubricProblem(f'must be a list of at most {MAX_ITEMS} items, or "hhh"')
    cleaned, keys = [], set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RubricProblem(f"item {index} must be an object")
        key, kind = item.get("key"), item.get("kind", "scale")
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise RubricProblem(f"item {index}: key must be lower_snake_case, at most 40 chars")
        if key in keys:
            raise RubricProblem(f"item {index}: key {key!r} is used twice")
        keys.add(key)
        if kind not in KINDS:
            raise RubricProblem(f"item {index}: kind must be one of {list(KINDS)}")
        if "\x00" in str(item.get("label") or ""):
            raise RubricProblem(f"item {index}: label must not contain NUL characters")
        entry: dict[str, Any] = {
            "key": key,
            "label": str(item.get("label") or key.replace("_", " ").capitalize())[:80],
            "kind": kind,
            "required": bool(item.get("required", False)),
        }
        if kind == "scale":
            low, high = item.get("min", 1), item.get("max", 7)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
                raise RubricProblem(f"item {index}: min and max must be integers")
            if not -100 <= low < high <= 100 or high - low > 20:
                raise RubricProblem(f"item {index}: needs min < max, at most 21 steps")
            entry.update(min=low, max=high)
            entry.update(end_labels(item, index))
        cleaned.append(entry)
    return cleaned


END_LABELS = ("min_label", "max_label")
END_LABEL_CHARS = 40


def end_labels(item: dict[str, Any], index: int) -> dict[str, str]:
    """A scale's optional words for its ends ("Not at all" … "Completely"); kept only when
    given, so rubrics without them are stored exactly as before."""
    labels = {}
    for name in END_LABELS:
        value = item.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or "\x00" in value:
            raise RubricProblem(f"item {index}: {name} must be text")
        if len(value.strip()) > END_LABEL_CHARS:
            raise RubricProblem(f"item {index}: {name} must be at most {END_LABEL_CHARS} chars")
        if value.strip():
            labels[name] = value.strip()
    return labels


def rubric_problems(
    rubric: list[dict[str, Any]], ratings: dict[str, dict[str, Any]], response_ids: list[int]
) -> list[tuple[str, str]]:
    """(field, message) for every rating out of range and every required one missing."""
    problems: list[tuple[str, str]] = []
    rubric = clean_rubric(rubric)  # fills defaults for rubrics stored outside the API
    by_key = {item["key"]: item for item in rubric}
    for response_id in response_ids:
        given = ratings.get(str(response_id), {})
        for key, value in given.items():
            item = by_key.get(key)
            field = f"ratings.{response_id}.{key}"
            if item is None:
                problems.append((field, "is not on this project's rubric"))
            elif item["kind"] == "checkbox" and not isinstance(value, bool):
                problems.append((field, "must be true or false"))
            elif item["kind"] == "scale" and (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not item["min"] <= value <= item["max"]
            ):
                problems.append(
                    (field, f"must be a whole number from {item['min']} to {item['max']}")
                )
        for item in rubric:
            if item["required"] and item["kind"] == "scale" and item["key"] not in given:
                problems.append(
                    (f"ratings.{response_id}.{item['key']}", f"{item['label']} is required")
                )
    return problems
