"""Extra agreement computations that higher apps add to every agreement run.

An app above rankings (e.g. red-team labels in authoring) registers a function that, given
the project, returns its own numbers (a JSON-ready dict, or None when it has nothing to
say for this project). The run stores each under `metrics["extensions"][name]`, computed
by the same job, so its history, trigger and lifecycle are the agreement run's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labeling.models import Project

RunExtension = Callable[[Project], dict[str, Any] | None]

_EXTENSIONS: dict[str, RunExtension] = {}


def register_run_extension(name: str, compute: RunExtension) -> None:
    _EXTENSIONS[name] = compute


def extension_metrics(project: Project) -> dict[str, Any]:
    """Every registered extension's numbers for the project, by name (None ones left out)."""
    found: dict[str, Any] = {}
    for name in sorted(_EXTENSIONS):
        result = _EXTENSIONS[name](project)
        if result is not None:
            found[name] = result
    return found
