"""How sure the sequential test is about a rater, in words and tasks: the evidence bar for
a project's false-flag rate, the decision so far and the tasks it still needs, the way of
erring the model found. Pure Python, like the flag rules that use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rankings.stats.registry import UNRELIABLE

if TYPE_CHECKING:
    from rankings.quality.flags import RaterEvidence
    from rankings.quality.thresholds import QualityRules


def evidence_threshold(limits: Mapping[str, float]) -> float:
    """The log likelihood ratio at which the sequential test flags: log(1 / false-flag rate)."""
    return math.log(1.0 / max(limits["max_false_flag_rate"], 1e-12))


def what_the_test_saw(rater: RaterEvidence) -> str:
    """The rater's way of erring the model found, in words."""
    competence = rater.value("competence") or 0.0
    first, longer = rater.value("first_shown_share") or 0.0, rater.value("longer_share") or 0.0
    other = max(0.0, 1.0 - competence - first - longer)
    ways = sorted(
        [
            (first, "picks the first-shown response"),
            (longer, "picks the longer response"),
            (other, "labels at random"),
        ],
        reverse=True,
    )
    share, way = ways[0]
    return f"{way} on about {share:.0%} of pairs, careful on {competence:.0%}"


#: Odds beyond this read as "over a million": more digits say nothing more.
LARGEST_ODDS_SHOWN = 1_000_000


def odds(log_ratio: float) -> str:
    """A likelihood ratio for people: ``3,000 : 1``, ``1 : 40``, ``over 1,000,000 : 1``."""
    ratio = math.exp(min(abs(log_ratio), 700))
    shown = f"{ratio:,.0f}" if ratio < LARGEST_ODDS_SHOWN else f"over {LARGEST_ODDS_SHOWN:,}"
    return f"{shown} : 1" if log_ratio >= 0 else f"1 : {shown}"


@dataclass(frozen=True)
class ReliabilityDecision:
    """How sure the sequential test is about a rater: ``flagged``, ``careful`` (as strong
    evidence the other way), ``undecided`` or ``unknown`` (no test yet), and about how many
    more tasks it needs at the pace so far (None when it cannot tell)."""

    state: str
    tasks_needed: int | None
    text: str


def reliability_decision(rater: RaterEvidence, rules: QualityRules) -> ReliabilityDecision:
    limits = rules.thresholds[UNRELIABLE]
    evidence, pace = rater.value("reliability_evidence"), rater.value("evidence_per_task")
    tasks = rater.count("reliability_tasks")
    short = max(0, math.ceil(limits["min_rankings"] - tasks))
    if evidence is None:
        return ReliabilityDecision("unknown", None, "not tested yet")
    bar = evidence_threshold(limits)
    if evidence >= bar and not short:
        return ReliabilityDecision("flagged", 0, f"decided: careless or biased ({odds(evidence)})")
    if evidence <= -bar and not short:
        return ReliabilityDecision("careful", 0, f"decided: careful ({odds(evidence)})")
    needed: int | None = None
    if pace is not None and pace > 0:
        needed = math.ceil((bar - evidence) / pace)
    elif pace is not None and pace < 0:
        needed = math.ceil((evidence + bar) / -pace)
    if evidence >= bar or evidence <= -bar:
        needed = short
    elif needed is not None:
        needed = max(needed, short)
    text = (
        f"undecided: about {needed} more task{'s' if needed != 1 else ''} to decide"
        if needed is not None
        else "undecided"
    )
    return ReliabilityDecision("undecided", needed, text)
