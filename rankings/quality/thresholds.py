"""Flag thresholds: the defaults, and a project's ``quality_settings`` merged over them.

Pure Python. Bad settings never break the rules: they are ignored and reported
(``quality_settings_problems`` is what a form or serializer refuses).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rankings.stats.registry import (
    GOLD_FAILURES,
    LOW_AGREEMENT,
    POSITION_BIAS,
    SELF_INCONSISTENT,
    STRAIGHT_LINING,
    TOO_FAST,
    UNRELIABLE,
)

CODES = (
    LOW_AGREEMENT,
    GOLD_FAILURES,
    SELF_INCONSISTENT,
    POSITION_BIAS,
    STRAIGHT_LINING,
    TOO_FAST,
    UNRELIABLE,
)

# Thresholds per rule. ``min_*`` keys are the evidence a rule needs before it may fire.
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    # Leave-one-out agreement: the upper end of its Wilson interval is below chance level
    # (0.5 for untied pairs), or below the point ``share_of_median`` of the way from chance
    # to the project's median rater (the median, so a few bad raters cannot drag the bar
    # down to their own level; relative to chance, so easy and hard tasks both work).
    LOW_AGREEMENT: {"max_upper_bound": 0.5, "share_of_median": 0.5, "min_pairs": 30},
    # Share of response pairs that match the lead's gold ranking.
    GOLD_FAILURES: {"min_accuracy": 0.6, "min_pairs": 10, "min_rankings": 3},
    # Share of response pairs ranked the same way on a repeat as the first time.
    SELF_INCONSISTENT: {"min_consistency": 0.6, "min_pairs": 10, "min_rankings": 3},
    # First-shown response wins too often, and a binomial test says it is not luck.
    POSITION_BIAS: {"max_win_rate": 0.7, "max_p_value": 0.01, "min_pairs": 30},
    # Rankings equal to the shown order, far above the rater's chance rate of 1/K!.
    STRAIGHT_LINING: {"chance_multiple": 3.0, "min_rate": 0.3, "min_rankings": 10},
    # Median seconds far below the project's for responses of similar length.
    TOO_FAST: {"max_speed_ratio": 0.3, "min_rankings": 10},
    # The sequential test of the reliability model (rankings.stats.sequential): flagged once
    # the evidence for careless or biased over careful reaches 1 / max_false_flag_rate, which
    # bounds the share of careful raters ever flagged over the project's life.
    UNRELIABLE: {"max_false_flag_rate": 0.01, "min_rankings": 10},
}
# A false-flag rate must leave the test something to decide: between these.
FALSE_FLAG_RATE_RANGE = (1e-9, 0.5)
# A dismissed flag opens again only when the rule still fires and the evidence is clearly
# worse than what the lead saw: the headline number moved this much further the bad way,
# or there is at least ``REOPEN_EVIDENCE_FACTOR`` times the evidence (the rater has done as
# much again since, and is still flagged).
DEFAULT_REOPEN_WHEN_WORSE_BY = 0.1
REOPEN_EVIDENCE_FACTOR = 2.0


@dataclass(frozen=True)
class QualityRules:
    thresholds: dict[str, dict[str, float]]
    enabled: frozenset[str]
    auto_pause: frozenset[str]
    reopen_when_worse_by: float = DEFAULT_REOPEN_WHEN_WORSE_BY
    problems: tuple[str, ...] = field(default=())


def rules_from_settings(raw: Mapping[str, Any] | None) -> QualityRules:
    """Defaults merged with a project's overrides; bad entries are ignored and reported.

    The rules must keep working whatever was stored, so nothing here raises; ``problems``
    (also from ``quality_settings_problems``) says what was ignored.
    """
    thresholds = {code: dict(values) for code, values in DEFAULT_THRESHOLDS.items()}
    enabled = set(CODES)
    auto_pause: set[str] = set()
    reopen_when_worse_by = DEFAULT_REOPEN_WHEN_WORSE_BY
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return QualityRules(
            thresholds, frozenset(enabled), frozenset(), problems=("settings must be an object",)
        )
    for key, value in raw.items():
        if key == "auto_pause":
            codes = value if isinstance(value, list) else [value]
            for code in codes:
                if code in CODES:
                    auto_pause.add(code)
                else:
                    problems.append(f"auto_pause: unknown flag code {code!r}")
        elif key == "reopen_when_worse_by":
            if is_number(value) and 0 <= value <= 1:
                reopen_when_worse_by = float(value)
            else:
                problems.append("reopen_when_worse_by: must be a number from 0 to 1")
        elif key in CODES:
            if not isinstance(value, Mapping):
                problems.append(f"{key}: must be an object of thresholds")
                continue
            for name, setting in value.items():
                if name == "enabled":
                    if isinstance(setting, bool):
                        (enabled.add if setting else enabled.discard)(key)
                    else:
                        problems.append(f"{key}.enabled: must be true or false")
                elif name not in thresholds[key]:
                    problems.append(f"{key}.{name}: unknown setting")
                elif not is_number(setting) or setting < 0:
                    problems.append(f"{key}.{name}: must be a number ≥ 0")
                elif name == "max_false_flag_rate" and not (
                    FALSE_FLAG_RATE_RANGE[0] <= setting <= FALSE_FLAG_RATE_RANGE[1]
                ):
                    problems.append(f"{key}.{name}: must be between 0 and 0.5")
                else:
                    thresholds[key][name] = float(setting)
        else:
            problems.append(f"{key}: unknown setting")
    return QualityRules(
        thresholds=thresholds,
        enabled=frozenset(enabled),
        auto_pause=frozenset(auto_pause),
        reopen_when_worse_by=reopen_when_worse_by,
        problems=tuple(problems),
    )


def quality_settings_problems(raw: Any) -> list[str]:
    """What a settings form or serializer should refuse (empty when the settings are fine)."""
    return list(rules_from_settings(raw).problems)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
