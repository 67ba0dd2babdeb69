"""Quality flag rules: which rater statistics raise which flag, with which evidence.

Pure Python (no Django): a rater's numbers in, ``(code, evidence)`` out. The numbers are the
statistics of ``rankings.stats.registry`` by name (``RaterEvidence``); each rule is judged on
the statistic the registry marks as its headline, and its evidence shows the statistics the
registry lists for it, plus the rule's threshold and a sentence. Thresholds have defaults
below; a project's ``quality_settings`` overrides them per rule, e.g.::

    {"POSITION_BIAS": {"max_win_rate": 0.75}, "TOO_FAST": {"enabled": false},
     "auto_pause": ["STRAIGHT_LINING"], "reopen_when_worse_by": 0.1}

Every rule needs a minimum amount of evidence before it can fire, so one bad task never
flags anyone. UNRELIABLE is judged on evidence strength rather than a fixed bar on a number:
the reliability model's sequential test (``rankings.stats.sequential``) flags once the odds
for careless or biased over careful reach 1 / the project's false-flag rate.
Thresholds and a project's overrides: ``rankings.quality.thresholds``.

Over 400 lines because it holds every rule beside its evidence text: one rule per
section, read one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rankings.quality.decisions import evidence_threshold, odds, what_the_test_saw
from rankings.quality.thresholds import CODES, REOPEN_EVIDENCE_FACTOR, QualityRules, is_number
from rankings.stats.registry import (
    GOLD_FAILURES,
    LOW_AGREEMENT,
    POSITION_BIAS,
    RATER_STATISTICS,
    SELF_INCONSISTENT,
    STATISTICS,
    STRAIGHT_LINING,
    TOO_FAST,
    UNRELIABLE,
    Number,
    evidence_statistics,
    headline,
)
from rankings.stats.sequential import CAREFUL_SHARE, typical_competence


class RaterEvidence:
    """One rater's statistics as the rules read them: every registry statistic by name.

    ``RaterEvidence(agreement=0.8, compared_pairs=400)``; statistics not given are missing
    (None, or 0 for counts). ``RaterEvidence.of(score)`` reads a stored score row.
    """

    __slots__ = ("_values",)

    def __init__(self, **values: Number) -> None:
        unknown = sorted(set(values) - set(STATISTICS))
        if unknown:
            raise TypeError(f"not rater statistics: {', '.join(unknown)}")
        self._values = {stat.name: values.get(stat.name, stat.empty) for stat in RATER_STATISTICS}

    @classmethod
    def of(cls, row: object) -> RaterEvidence:
        """From anything with the registry's storage columns as attributes (a RaterScore)."""
        return cls(**{stat.name: getattr(row, stat.column) for stat in RATER_STATISTICS})

    def replace(self, **changes: Number) -> RaterEvidence:
        return RaterEvidence(**{**self._values, **changes})

    def __getitem__(self, name: str) -> Number:
        return self._values[name]

    def value(self, name: str) -> float | None:
        value = self._values[name]
        return None if value is None else float(value)

    def count(self, name: str) -> int:
        return int(self._values[name] or 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RaterEvidence) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __repr__(self) -> str:
        given = ", ".join(
            f"{name}={value!r}"
            for name, value in self._values.items()
            if value != STATISTICS[name].empty
        )
        return f"RaterEvidence({given})"


@dataclass(frozen=True)
class ProjectContext:
    """What the rules compare a rater with."""

    median_agreement: float | None = None
    typical_competence: float | None = None


def project_context(raters: Iterable[RaterEvidence], rules: QualityRules) -> ProjectContext:
    """The median agreement of raters with enough compared pairs (from three such raters:
    a median of two says little about the typical rater, chance level decides then) and
    the typical competence the sequential test measured raters against."""
    raters = list(raters)
    min_pairs = rules.thresholds[LOW_AGREEMENT]["min_pairs"]
    judged = sorted(
        agreement
        for rater in raters
        if (agreement := rater.value("agreement")) is not None
        and rater.count("compared_pairs") >= min_pairs
    )
    median = None
    if len(judged) >= 3:
        middle = len(judged) // 2
        median = judged[middle] if len(judged) % 2 else (judged[middle - 1] + judged[middle]) / 2
    competence = [rater.value("competence") for rater in raters]
    return ProjectContext(
        median_agreement=median,
        typical_competence=typical_competence(
            [math.nan if value is None else value for value in competence],
            [rater.count("reliability_labels") for rater in raters],
        ),
    )


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
        finding = _RULES[code].judge(rater, rules.thresholds[code], context)
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


def _evidence(code: str, rater: RaterEvidence, **extra: Any) -> dict[str, Any]:
    """The statistics the registry shows for this rule, rounded, then the rule's own."""
    shown = {stat.name: stat.evidence(rater[stat.name]) for stat in evidence_statistics(code)}
    return {**shown, **extra}


def _low_agreement(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    agreement, high = rater.value("agreement"), rater.value("agreement_high")
    pairs = rater.count("compared_pairs")
    if agreement is None or high is None or pairs < limits["min_pairs"]:
        return None
    chance = bar = limits["max_upper_bound"]
    basis = "chance level"
    median, share = context.median_agreement, limits["share_of_median"]
    if median is not None and chance + share * (median - chance) > bar:
        bar = chance + share * (median - chance)
        way = "halfway" if share == 0.5 else f"{share:.0%} of the way"
        basis = f"{way} from chance to the median rater's {median:.2f}"
    fired = high < bar
    return Finding(
        LOW_AGREEMENT,
        fired,
        _evidence(
            LOW_AGREEMENT,
            rater,
            median_agreement=_round(context.median_agreement),
            threshold=_round(bar),
            threshold_basis=basis,
            summary=(
                f"agreement {agreement:.2f} (95% CI up to {high:.2f}) "
                f"{'below' if fired else 'not below'} {bar:.2f} ({basis}) "
                f"over {pairs} compared pairs"
            ),
        ),
    )


def _gold_failures(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    return _share_below(
        GOLD_FAILURES,
        rater,
        limits,
        minimum=limits["min_accuracy"],
        names=("gold_accuracy", "gold_pairs", "gold_rankings"),
        label="gold accuracy",
    )


def _self_inconsistent(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    return _share_below(
        SELF_INCONSISTENT,
        rater,
        limits,
        minimum=limits["min_consistency"],
        names=("self_consistency", "repeat_pairs", "repeat_rankings"),
        label="self-consistency",
    )


def _share_below(
    code: str,
    rater: RaterEvidence,
    limits: dict[str, float],
    *,
    minimum: float,
    names: tuple[str, str, str],
    label: str,
) -> Finding | None:
    value_name, pairs_name, tasks_name = names
    value, pairs, tasks = rater.value(value_name), rater.count(pairs_name), rater.count(tasks_name)
    if value is None or pairs < limits["min_pairs"] or tasks < limits["min_rankings"]:
        return None
    fired = value < minimum
    return Finding(
        code,
        fired,
        _evidence(
            code,
            rater,
            threshold=minimum,
            summary=(
                f"{label} {value:.2f} {'below' if fired else 'not below'} {minimum:.2f} "
                f"over {pairs} pairs in {tasks} rankings"
            ),
        ),
    )


def _position_bias(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    rate, p_value = rater.value("first_shown_win_rate"), rater.value("position_p_value")
    pairs = rater.count("position_pairs")
    if rate is None or p_value is None or pairs < limits["min_pairs"]:
        return None
    fired = rate > limits["max_win_rate"] and p_value < limits["max_p_value"]
    return Finding(
        POSITION_BIAS,
        fired,
        _evidence(
            POSITION_BIAS,
            rater,
            threshold=limits["max_win_rate"],
            max_p_value=limits["max_p_value"],
            summary=(
                f"first-shown response wins {rate:.0%} of {pairs} pairs "
                f"(p = {p_value:.2g}); flagged above {limits['max_win_rate']:.0%} "
                f"with p < {limits['max_p_value']:g}"
            ),
        ),
    )


def _straight_lining(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    rate, chance = rater.value("straight_lining_rate"), rater.value("straight_lining_chance")
    rankings = rater.count("rankings")
    # The chance rate comes with the rate (both over the same rankings).
    if rate is None or chance is None or rankings < limits["min_rankings"]:
        return None
    bar = max(limits["chance_multiple"] * chance, limits["min_rate"])
    fired = rate > bar
    return Finding(
        STRAIGHT_LINING,
        fired,
        _evidence(
            STRAIGHT_LINING,
            rater,
            in_shown_order=round(rate * rankings),
            chance_rate=_round(chance),
            threshold=_round(bar),
            summary=(
                f"{rate:.0%} of {rankings} rankings equal the shown order "
                f"(chance {chance:.1%}; flagged above {bar:.0%})"
            ),
        ),
    )


def _too_fast(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    ratio, timed = rater.value("speed_ratio"), rater.count("timed_rankings")
    if ratio is None or timed < limits["min_rankings"]:
        return None
    fired = ratio < limits["max_speed_ratio"]
    seconds = rater.value("median_seconds")
    return Finding(
        TOO_FAST,
        fired,
        _evidence(
            TOO_FAST,
            rater,
            rankings=timed,
            threshold=limits["max_speed_ratio"],
            summary=(
                (f"median {seconds:.1f} s, " if seconds is not None else "")
                + f"{ratio:.2f} times the project's median for similar lengths "
                f"over {timed} rankings (flagged below {limits['max_speed_ratio']:.2f})"
            ),
        ),
    )


def _unreliable(
    rater: RaterEvidence, limits: dict[str, float], context: ProjectContext
) -> Finding | None:
    evidence, competence = rater.value("reliability_evidence"), rater.value("competence")
    tasks = rater.count("reliability_tasks")
    if evidence is None or competence is None or tasks < limits["min_rankings"]:
        return None
    bar = evidence_threshold(limits)
    fired = evidence >= bar
    low, high = rater.value("competence_low"), rater.value("competence_high")
    interval = ""
    if low is not None and high is not None:
        interval = f" (95% CI {low:.2f}\u2013{high:.2f})"
    typical = context.typical_competence
    against = f" against the project's typical {typical:.2f}" if typical is not None else ""
    return Finding(
        UNRELIABLE,
        fired,
        _evidence(
            UNRELIABLE,
            rater,
            typical_competence=_round(typical),
            careful_competence=_round(None if typical is None else CAREFUL_SHARE * typical),
            threshold=_round(bar),
            max_false_flag_rate=limits["max_false_flag_rate"],
            likelihood_ratio=odds(evidence),
            what_the_test_saw=what_the_test_saw(rater),
            summary=(
                f"competence {competence:.2f}{interval}{against}; over {tasks} tasks the "
                f"labels are {odds(evidence)} times as likely from a careless or biased "
                f"rater as from a careful one ({'at or above' if fired else 'below'} "
                f"{odds(bar)}, the odds that keep false flags under "
                f"{limits['max_false_flag_rate']:.0%} of careful raters); "
                f"{what_the_test_saw(rater)}"
            ),
        ),
    )


@dataclass(frozen=True)
class Rule:
    judge: Callable[[RaterEvidence, dict[str, float], ProjectContext], Finding | None]
    count: str
    """The evidence key of the count behind the headline (what "twice the evidence" counts)."""


_RULES = {
    LOW_AGREEMENT: Rule(_low_agreement, count="compared_pairs"),
    GOLD_FAILURES: Rule(_gold_failures, count="gold_pairs"),
    SELF_INCONSISTENT: Rule(_self_inconsistent, count="repeat_pairs"),
    POSITION_BIAS: Rule(_position_bias, count="position_pairs"),
    STRAIGHT_LINING: Rule(_straight_lining, count="rankings"),
    TOO_FAST: Rule(_too_fast, count="rankings"),  # its evidence's "rankings" are timed ones
    UNRELIABLE: Rule(_unreliable, count="reliability_labels"),
}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


# Reopening dismissed flags --------------------------------------------------------------------


def clearly_worse(
    code: str, before: Mapping[str, Any], now: Mapping[str, Any], rules: QualityRules
) -> bool:
    """Whether evidence for a rule that fires again is clearly worse than when it was closed.

    Worse means the headline number moved at least ``reopen_when_worse_by`` further the bad
    way, or the count behind it at least doubled (as much new work, still flagged).
    """
    judged_on = headline(code)
    value_key, count_key = judged_on.name, _RULES[code].count
    old_value, new_value = _number(before.get(value_key)), _number(now.get(value_key))
    if old_value is not None and new_value is not None:
        moved = old_value - new_value if judged_on.higher_is_better else new_value - old_value
        if moved >= rules.reopen_when_worse_by - 1e-9:
            return True
    old_count, new_count = _number(before.get(count_key)), _number(now.get(count_key))
    if old_count is not None and new_count is not None and old_count > 0:
        return new_count >= REOPEN_EVIDENCE_FACTOR * old_count
    return old_value is None  # closed without numbers: any firing evidence is news


def _number(value: Any) -> float | None:
    return float(value) if is_number(value) else None
