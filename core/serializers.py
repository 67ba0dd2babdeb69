"""Serializer helpers every app's API shares: unknown fields are refused, naming them, and
text may not carry NUL characters (PostgreSQL cannot store them; nothing needs them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers


class RefuseUnknownFields:
    """Mix into a Serializer: a body key that is not a field is a 400 naming it, instead of
    being silently dropped (a typo like `min_agrement` must not change what happens).
    Read-only fields sent back (an object PATCHed as it was read) are ignored as usual."""

    def to_internal_value(self, data: Any) -> Any:
        fields: Mapping[str, Any] = getattr(self, "fields", {})
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in fields)
            if unknown:
                raise serializers.ValidationError({unknown[0]: ["unknown field"]})
        return super().to_internal_value(data)  # type: ignore[misc]


def nul_character_path(value: Any, path: str = "") -> str | None:
    """Where in a JSON value (keys included) a NUL character sits, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = nul_character_path(item, where)
            if found is not None:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_character_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def refuse_nul_characters(value: Any) -> None:
    """For a field validator: a NUL character anywhere in the value is refused."""
    where = nul_character_path(value)
    if where is not None:
        raise serializers.ValidationError(
            f"must not contain NUL characters (\\u0000){f' (at {where})' if where else ''}"
        )
