"""The demonstration kind's `task_options`, checked and given their defaults.

- `mode`: `write` (the rater writes the ideal reply; prompts need no responses) or
  `rank_then_rewrite` (the rater ranks the K responses, then edits the best into the ideal
  reply). Default `write`.
- `review_rate`: share of demonstrations routed to a second rater for review, 0 to 1.
  Default 1: every demonstration is reviewed, since exports take accepted ones by default.
- `flag_min_reviews` (default 10) and `flag_max_rejected_share` (default 0.3): a writer
  with at least that many reviewed demonstrations, more than that share of them rejected,
  gets a `DEMONSTRATIONS_REJECTED` quality flag with the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authoring.demonstrations.models import DemonstrationMode
from core.errors import InvalidInput
from labeling.models import MIN_RESPONSES, Project

DEFAULTS: dict[str, Any] = {
    "mode": DemonstrationMode.WRITE.value,
    "review_rate": 1.0,
    "flag_min_reviews": 10,
    "flag_max_rejected_share": 0.3,
}


@dataclass(frozen=True)
class DemonstrationOptions:
    mode: str
    review_rate: float
    flag_min_reviews: int
    flag_max_rejected_share: float

    @classmethod
    def of(cls, project: Project) -> DemonstrationOptions:
        """The project's options; anything missing (or stored before it existed) defaulted."""
        return cls(**{**DEFAULTS, **_known(project.task_options or {})})

    @property
    def rank_then_rewrite(self) -> bool:
        return self.mode == DemonstrationMode.RANK_THEN_REWRITE


def _known(options: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in options.items() if name in DEFAULTS}


def clean_options(options: dict[str, Any]) -> dict[str, Any]:
    """Every option checked and filled in; errors name `task_options.<name>`."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise InvalidInput(
            f"unknown option (expected {', '.join(DEFAULTS)})",
            field=f"task_options.{unknown[0]}",
        )
    cleaned = {**DEFAULTS, **options}
    if cleaned["mode"] not in DemonstrationMode.values:
        raise InvalidInput(
            f"must be one of: {', '.join(DemonstrationMode.values)}", field="task_options.mode"
        )
    cleaned["review_rate"] = _share(cleaned["review_rate"], "review_rate")
    cleaned["flag_max_rejected_share"] = _share(
        cleaned["flag_max_rejected_share"], "flag_max_rejected_share"
    )
    minimum = cleaned["flag_min_reviews"]
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 1 <= minimum <= 10_000:
        raise InvalidInput(
            "must be a whole number from 1 to 10000", field="task_options.flag_min_reviews"
        )
    return cleaned


def _share(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInput("must be a number from 0 to 1", field=f"task_options.{name}")
    return float(value)


def min_responses(project: Project) -> int:
    """Writing needs no responses; ranking first needs the usual two."""
    return MIN_RESPONSES if DemonstrationOptions.of(project).rank_then_rewrite else 0
