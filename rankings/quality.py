"""Acting on an agreement run: quality flags, auto-pause and adaptive overlap."""

from __future__ import annotations

from typing import Any


def apply_run_findings(*, run: Any) -> dict[str, int]:
    """Called by agreement_run_compute once a run's scores are stored."""
    return {"flags_opened": 0, "prompts_reopened": 0}
