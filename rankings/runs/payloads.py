"""What a run's part computed, as bytes for its row and back: the part's dataclasses of
numpy arrays flattened into one ``.npz`` (no pickle: a payload is data, never code)."""

from __future__ import annotations

import dataclasses
import io
import typing
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
_NONE = "__none__"


def to_bytes(**values: Any) -> bytes:
    """Named dataclasses (of arrays, numbers, None, dicts of arrays, dataclasses) as bytes."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in values.items():
        _flatten(name, value, arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # (numpy's stubs: a bool kwarg)
    return buffer.getvalue()


def _flatten(prefix: str, value: Any, arrays: dict[str, np.ndarray]) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _flatten(f"{prefix}.{field.name}", getattr(value, field.name), arrays)
    elif isinstance(value, dict):
        arrays[f"{prefix}.__keys__"] = np.array(sorted(value), dtype=np.str_)
        for key in sorted(value):
            _flatten(f"{prefix}.{key}", value[key], arrays)
    elif value is None:
        arrays[f"{prefix}.{_NONE}"] = np.zeros(0)
    else:
        arrays[prefix] = np.asarray(value)


def from_bytes(payload: bytes, **kinds: type[Any]) -> dict[str, Any]:
    """The values ``to_bytes`` wrote, each rebuilt as the dataclass named for it."""
    with np.load(io.BytesIO(payload), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files if name.split(".", 1)[0] in kinds}
    return {name: _rebuild(name, kind, arrays) for name, kind in kinds.items()}


def _rebuild(prefix: str, kind: Any, arrays: dict[str, np.ndarray]) -> Any:
    if f"{prefix}.{_NONE}" in arrays:
        return None
    origin = typing.get_origin(kind)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        options = [option for option in typing.get_args(kind) if option is not type(None)]
        return _rebuild(prefix, options[0], arrays)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = typing.get_type_hints(kind)
        return kind(
            **{
                field.name: _rebuild(f"{prefix}.{field.name}", hints[field.name], arrays)
                for field in dataclasses.fields(kind)
            }
        )
    if origin is dict:
        keys = arrays[f"{prefix}.__keys__"].tolist()
        value_kind = typing.get_args(kind)[1]
        return {key: _rebuild(f"{prefix}.{key}", value_kind, arrays) for key in keys}
    value = arrays[prefix]
    if kind is int:
        return int(value)
    if kind is bool:
        return bool(value)
    if kind is float:
        return float(value)
    return value
