"""Quality flag rules: which rater statistics raise which flag, with which evidence.

Pure Python (no Django): a rater's numbers in, ``(code, evidence)`` out. Thresholds have
defaults below; a project's ``quality_settings`` overrides them per rule, e.g.::

    {"POSITION_BIAS": {"max_win_rate": 0.75}, "TOO_FAST": {"enabled": false},
     "auto_pause": ["STRAIGHT_LINING"], "reopen_when_worse_by": 0.1}

Every rule needs a minimum amount of evidence before it can fire, so one bad task never
flags anyone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LOW_AGREEMENT = "LOW_AGREEMENT"
GOLD_FAILURES = "GOLD_FAILURES"
SELF_INCONSISTENT = "SELF_INCONSISTENT"
POSITION_BIAS = "POSITION_BIAS"
STRAIGHT_LINING = "STRAIGHT_LINING"
TOO_FAST = "TOO_FAST"
CODES = (LOW_AGREEMENT, GOLD_FAILURES, SELF_INCONSISTENT, POSITION_BIAS, STRAIGHT_LINING, TOO_FAST)

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
    # Rankings equal to the shown order, far above the chance rate of 1/K!.
    STRAIGHT_LINING: {"chance_multiple": 3.0, "min_rate": 0.3, "min_rankings": 10},
    # Median seconds far below the project's for responses of similar length.
    TOO_FAST: {"max_speed_ratio": 0.3, "min_rankings": 10},
}
# A dismissed flag opens again only when the rule still fires and the evidence is clearly
# worse than what the lead saw: the headline number moved this much further the bad way,
# or there is at least ``REOPEN_EVIDENCE_FACTOR`` times the evidence (the rater has done as
# much again since, and is still flagged).
DEFAULT_REOPEN_WHEN_WORSE_BY = 0.1
REOPEN_EVIDENCE_FACTOR = 2.0

# The number each rule is judged on, whether higher is worse, and the count behind it.
HEADLINE: dict[str, tuple[str, bool, str]] = {
    LOW_AGREEMENT: ("agreement", False, "compared_pairs"),
    GOLD_FAILURES: ("gold_accuracy", False, "gold_pairs"),
    SELF_INCONSISTENT: ("self_consistency", False, "repeat_pairs"),
    POSITION_BIAS: ("first_shown_win_rate", True, "position_pairs"),
    STRAIGHT_LINING: ("straight_lining_rate", True, "rankings"),
    TOO_FAST: ("speed_ratio", False, "rankings"),
}


@dataclass(frozen=True)
class RaterEvidence:
    """One rater's statistics from an agreement run, and the counts behind them."""

    rankings: int = 0
    agreement: float | None = None
    agreement_low: float | None = None
    agreement_high: float | None = None
    compared_pairs: int = 0
    gold_accuracy: float | None = None
    gold_pairs: int = 0
    gold_rankings: int | None = None  # None: unknown, the pair count alone decides
    self_consistency: float | None = None
    repeat_pairs: int = 0
    repeat_rankings: int | None = None
    first_shown_win_rate: float | None = None
    position_p_value: float | None = None
    position_pairs: int = 0
    straight_lining_rate: float | None = None
    straight_lining_chance: float | None = None  # this rater's own chance rate, if known
    median_seconds: float | None = None
    speed_ratio: float | None = None
    timed_rankings: int | None = None  # rankings with seconds recorded; None: use rankings


@dataclass(frozen=True)
class ProjectContext:
    """What the rules compare a rater with."""

    median_agreement: float | None = None
    straight_lining_chance: float = 1 / 24  # K = 4


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
            if _is_number(value) and 0 <= value <= 1:
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
                elif not _is_number(setting) or setting < 0:
                    problems.append(f"{key}.{name}: must be a number ≥ 0")
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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# Rules ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A rule with enough evidence to judge: whether it fires, and the numbers behind it."""

    code: str
    fired: bool
    evidence: dict[str, Any]


def rater_findings(
    rater: RaterEvidence, rules: QualityRules, context: ProjectContext | None = None
) -> list[Finding]:
    """Every enabled rule that has enough evidence for this rater, fired or not."""
    context = context or ProjectContext()
    findings = []
    for code in CODES:
        if code not in rules.enabled:
            continue
        finding = _RULES[code](rater, rules.thresholds[code], context)
        if finding is not None:
            findings.append(finding)
    return findings


def rater_flags(
    rater: RaterEvidence, rules: QualityRules, context: ProjectContext | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The flags this rater earns: ``(code, evidence)`` per rule that fires."""
    return [
        (finding.code, finding.evidence)
        for finding in rater_findings(rater, rules, context)
        if finding.fired
    ]


def _low_agreement(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    if rater.agreement is None or rater.agreement_high is None:
        return None
    if rater.compared_pairs < limits["min_pairs"]:
        return None
    chance = bar = limits["max_upper_bound"]
    basis = "chance level"
    median, share = context.median_agreement, limits["share_of_median"]
    if median is not None and chance + share * (median - chance) > bar:
        bar = chance + share * (median - chance)
        way = "halfway" if share == 0.5 else f"{share:.0%} of the way"
        basis = f"{way} from chance to the median rater's {median:.2f}"
    fired = rater.agreement_high < bar
    return Finding(
        LOW_AGREEMENT,
        fired,
        {
            "agreement": _round(rater.agreement),
            "agreement_low": _round(rater.agreement_low),
            "agreement_high": _round(rater.agreement_high),
            "compared_pairs": rater.compared_pairs,
            "rankings": rater.rankings,
            "median_agreement": _round(context.median_agreement),
            "threshold": _round(bar),
            "threshold_basis": basis,
            "summary": (
                f"agreement {rater.agreement:.2f} (95% CI up to {rater.agreement_high:.2f}) "
                f"{'below' if fired else 'not below'} {bar:.2f} ({basis}) "
                f"over {rater.compared_pairs} compared pairs"
            ),
        },
    )


def _gold_failures(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    return _share_below(
        GOLD_FAILURES,
        value=rater.gold_accuracy,
        pairs=rater.gold_pairs,
        tasks=rater.gold_rankings,
        minimum=limits["min_accuracy"],
        limits=limits,
        names=("gold_accuracy", "gold_pairs", "gold_rankings"),
        label="gold accuracy",
    )


def _self_inconsistent(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    return _share_below(
        SELF_INCONSISTENT,
        value=rater.self_consistency,
        pairs=rater.repeat_pairs,
        tasks=rater.repeat_rankings,
        minimum=limits["min_consistency"],
        limits=limits,
        names=("self_consistency", "repeat_pairs", "repeat_rankings"),
        label="self-consistency",
    )


def _share_below(
    code: str,
    *,
    value: float | None,
    pairs: int,
    tasks: int | None,
    minimum: float,
    limits: dict[str, float],
    names: tuple[str, str, str],
    label: str,
) -> Finding | None:
    if value is None or pairs < limits["min_pairs"]:
        return None
    if tasks is not None and tasks < limits["min_rankings"]:
        return None
    fired = value < minimum
    value_name, pairs_name, tasks_name = names
    return Finding(
        code,
        fired,
        {
            value_name: _round(value),
            pairs_name: pairs,
            tasks_name: tasks,
            "threshold": minimum,
            "summary": (
                f"{label} {value:.2f} {'below' if fired else 'not below'} {minimum:.2f} "
                f"over {pairs} pairs" + (f" in {tasks} rankings" if tasks is not None else "")
            ),
        },
    )


def _position_bias(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    rate, p_value = rater.first_shown_win_rate, rater.position_p_value
    if rate is None or p_value is None or rater.position_pairs < limits["min_pairs"]:
        return None
    fired = rate > limits["max_win_rate"] and p_value < limits["max_p_value"]
    return Finding(
        POSITION_BIAS,
        fired,
        {
            "first_shown_win_rate": _round(rate),
            "position_p_value": _round_p(p_value),
            "position_pairs": rater.position_pairs,
            "threshold": limits["max_win_rate"],
            "max_p_value": limits["max_p_value"],
            "summary": (
                f"first-shown response wins {rate:.0%} of {rater.position_pairs} pairs "
                f"(p = {p_value:.2g}); flagged above {limits['max_win_rate']:.0%} "
                f"with p < {limits['max_p_value']:g}"
            ),
        },
    )


def _straight_lining(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    rate = rater.straight_lining_rate
    if rate is None or rater.rankings < limits["min_rankings"]:
        return None
    chance = (
        rater.straight_lining_chance
        if rater.straight_lining_chance is not None
        else context.straight_lining_chance
    )
    bar = max(limits["chance_multiple"] * chance, limits["min_rate"])
    fired = rate > bar
    return Finding(
        STRAIGHT_LINING,
        fired,
        {
            "straight_lining_rate": _round(rate),
            "rankings": rater.rankings,
            "in_shown_order": round(rate * rater.rankings),
            "chance_rate": _round(chance),
            "threshold": _round(bar),
            "summary": (
                f"{rate:.0%} of {rater.rankings} rankings equal the shown order "
                f"(chance {chance:.1%}; flagged above {bar:.0%})"
            ),
        },
    )


def _too_fast(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    ratio = rater.speed_ratio
    timed = rater.timed_rankings if rater.timed_rankings is not None else rater.rankings
    if ratio is None or timed < limits["min_rankings"]:
        return None
    fired = ratio < limits["max_speed_ratio"]
    seconds = rater.median_seconds
    return Finding(
        TOO_FAST,
        fired,
        {
            "speed_ratio": _round(ratio),
            "median_seconds": _round(seconds),
            "rankings": timed,
            "threshold": limits["max_speed_ratio"],
            "summary": (
                (f"median {seconds:.1f} s, " if seconds is not None else "")
                + f"{ratio:.2f} times the project's median for similar lengths "
                f"over {timed} rankings (flagged below {limits['max_speed_ratio']:.2f})"
            ),
        },
    )


_RULES = {
    LOW_AGREEMENT: _low_agreement,
    GOLD_FAILURES: _gold_failures,
    SELF_INCONSISTENT: _self_inconsistent,
    POSITION_BIAS: _position_bias,
    STRAIGHT_LINING: _straight_lining,
    TOO_FAST: _too_fast,
}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _round_p(value: float) -> float:
    return float(f"{value:.3g}")


# Reopening dismissed flags --------------------------------------------------------------------


def clearly_worse(
    code: str, before: Mapping[str, Any], now: Mapping[str, Any], rules: QualityRules
) -> bool:
    """Whether evidence for a rule that fires again is clearly worse than when it was closed.

    Worse means the headline number moved at least ``reopen_when_worse_by`` further the bad
    way, or the count behind it at least doubled (as much new work, still flagged).
    """
    value_key, higher_is_worse, count_key = HEADLINE[code]
    old_value, new_value = _number(before.get(value_key)), _number(now.get(value_key))
    if old_value is not None and new_value is not None:
        moved = new_value - old_value if higher_is_worse else old_value - new_value
        if moved >= rules.reopen_when_worse_by - 1e-9:
            return True
    old_count, new_count = _number(before.get(count_key)), _number(now.get(count_key))
    if old_count is not None and new_count is not None and old_count > 0:
        return new_count >= REOPEN_EVIDENCE_FACTOR * old_count
    return old_value is None  # closed without numbers: any firing evidence is news


def _number(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def straight_lining_chance(response_counts: Mapping[int, int]) -> float:
    """Chance that a random ranking equals the shown order, averaged over the prompts.

    ``response_counts`` maps K (responses per prompt) to how many prompts have it.
    """
    total = sum(response_counts.values())
    if not total:
        return 1 / 24
    return sum(count / math.factorial(k) for k, count in response_counts.items()) / total
