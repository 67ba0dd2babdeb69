"""Checks on project settings whose rules belong to a higher app (the flag thresholds in
`quality_settings` are the rankings app's): that app registers its check here when it is
ready, and labeling's serializer and form refuse what the check reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SettingCheck = Callable[[Any], list[str]]

_CHECKS: dict[str, SettingCheck] = {}


def register_setting_check(name: str, check: SettingCheck) -> None:
    """`check(value)` returns the problems with a value of the setting `name` (none: fine)."""
    _CHECKS[name] = check


def setting_problems(name: str, value: Any) -> list[str]:
    check = _CHECKS.get(name)
    return check(value) if check is not None else []
