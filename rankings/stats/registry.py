"""The rater statistics, declared once.

Each ``RaterStatistic`` says what a number is (name, label, help, unit and how it is shown),
where a run gets it (``source``: a path into ``RaterResult``), where it is stored (a
``RaterScore`` column), whether higher is better, and which flag rule it feeds. From
``RATER_STATISTICS`` the rest is derived: the score rows a run stores, the raters API rows,
the dashboard's rater table and the flag rules' evidence. Adding a statistic is one
declaration here (and, if it is new to storage, its ``RaterScore`` column).

Over 400 lines because it is a table: one declaration per statistic, the code above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Literal

from rankings.stats.agreement import RaterAgreement
from rankings.stats.raters import RaterQuality
from rankings.stats.sequential import RaterReliability
from rankings.stats.tables import float_or_none

Unit = Literal["share", "count", "seconds", "ratio", "p_value", "weight", "log_ratio"]
Number = float | int | None

LOW_AGREEMENT = "LOW_AGREEMENT"
GOLD_FAILURES = "GOLD_FAILURES"
SELF_INCONSISTENT = "SELF_INCONSISTENT"
POSITION_BIAS = "POSITION_BIAS"
STRAIGHT_LINING = "STRAIGHT_LINING"
TOO_FAST = "TOO_FAST"
UNRELIABLE = "UNRELIABLE"

NOT_FITTED = RaterReliability(
    rater_index=-1,
    competence=None,
    competence_low=None,
    competence_high=None,
    first_shown_share=None,
    longer_share=None,
    reliability_labels=0,
    reliability_tasks=0,
    reliability_evidence=None,
    evidence_per_task=None,
)


@dataclass(frozen=True)
class RaterResult:
    """Everything a run computes about one rater; ``RaterStatistic.source`` reads from it."""

    agreement: RaterAgreement
    agreement_no_ties: RaterAgreement
    quality: RaterQuality
    reliability: float
    """The rater's weight in the consensus (``consensus.competence_weights``)."""
    model: RaterReliability = NOT_FITTED
    """The reliability model's view of the rater (``stats.reliability``, ``stats.sequential``)."""


@dataclass(frozen=True)
class DashboardColumn:
    """How the lead's rater table shows a statistic: a column of its own.

    ``details`` are lines under the value, each one or more statistics shown together
    (an interval is two); they show only with the value unless ``details_without_value``.
    """

    sort: str | None = None
    """The ``?sort=`` key of the column (the table's and the API's); None: not sortable."""
    details: tuple[tuple[str, ...], ...] = ()
    title: str = ""
    """Tooltip of the column header."""
    missing: str = ""
    """Tooltip of the dash shown without a value."""
    details_without_value: bool = False
    note: str | None = None
    """A ``RaterRow`` attribute whose text is the column's last line (how sure, say)."""


@dataclass(frozen=True)
class RaterStatistic:
    name: str
    """Field of the raters API rows, key in flag evidence, and the storage column's name."""
    label: str
    help: str
    unit: Unit
    source: str
    """Attribute path into ``RaterResult``: ``quality.median_seconds``, ``agreement.low``."""
    digits: int = 2
    """Decimals shown on the dashboard."""
    suffix: str = ""
    """Shown after the value on the dashboard: a times sign for ratios, `` s``."""
    detail: str = "{}"
    """How the value reads as a detail line under another statistic: ``{} pairs``."""
    higher_is_better: bool | None = None
    flag: str | None = None
    """The flag rule judged on this number: it heads that flag's evidence."""
    evidence_for: tuple[str, ...] = ()
    """Other flag rules whose evidence shows this number (the counts behind a headline)."""
    api: bool = True
    """A field of ``GET /api/projects/{id}/raters/`` rows."""
    dashboard: DashboardColumn | None = None
    column: str = field(default="")
    """The ``RaterScore`` column it is stored in; the name unless given."""

    def __post_init__(self) -> None:
        if not self.column:
            object.__setattr__(self, "column", self.name)
        if self.flag is not None and self.higher_is_better is None:
            raise ValueError(f"{self.name}: a flag's headline needs a better direction")

    @property
    def is_count(self) -> bool:
        """Counts are whole numbers and 0 without evidence; the rest are None then."""
        return self.unit == "count"

    @property
    def empty(self) -> Number:
        return 0 if self.is_count else None

    def value_of(self, result: RaterResult) -> Number:
        """This statistic of one rater, as stored: an int for counts, a finite float or None."""
        raw = attrgetter(self.source)(result)
        if self.is_count:
            return int(raw)
        return None if raw is None else float_or_none(float(raw))

    def evidence(self, value: Number) -> Number:
        """The value as flag evidence shows it: counts whole, p-values to 3 significant
        digits, the rest to 4 decimals."""
        if value is None or self.is_count:
            return value
        if self.unit == "p_value":
            return float(f"{value:.3g}")
        return round(float(value), 4)


RATER_STATISTICS: tuple[RaterStatistic, ...] = (
    RaterStatistic(
        "rankings",
        "Rankings",
        "Rankings counted in agreement: one per prompt, repeats left out.",
        "count",
        "agreement.n_rankings",
        evidence_for=(LOW_AGREEMENT, STRAIGHT_LINING),
        dashboard=DashboardColumn(sort="rankings"),
    ),
    RaterStatistic(
        "agreement",
        "Agreement",
        "Leave-one-out agreement: the share of the rater's pair labels that match other "
        "raters' on the same prompts.",
        "share",
        "agreement.agreement",
        digits=3,
        higher_is_better=True,
        flag=LOW_AGREEMENT,
        dashboard=DashboardColumn(
            sort="agreement",
            details=(("agreement_low", "agreement_high"), ("compared_pairs",)),
            missing="Not scored: no co-raters yet, or excluded",
        ),
    ),
    RaterStatistic(
        "agreement_low",
        "Agreement, lower bound",
        "Lower end of the agreement's 95% Wilson score interval.",
        "share",
        "agreement.low",
        digits=3,
        higher_is_better=True,
        evidence_for=(LOW_AGREEMENT,),
    ),
    RaterStatistic(
        "agreement_high",
        "Agreement, upper bound",
        "Upper end of the agreement's 95% Wilson score interval.",
        "share",
        "agreement.high",
        digits=3,
        higher_is_better=True,
        evidence_for=(LOW_AGREEMENT,),
    ),
    RaterStatistic(
        "compared_pairs",
        "Compared pairs",
        "Pairs of raters compared on a response pair behind the agreement.",
        "count",
        "agreement.n_pairs",
        detail="{} pairs",
        evidence_for=(LOW_AGREEMENT,),
    ),
    RaterStatistic(
        "gold_accuracy",
        "Gold accuracy",
        "Share of response pairs of gold prompts labelled as the gold ranking labels them "
        "(a tie must match a tie).",
        "share",
        "quality.gold_accuracy",
        higher_is_better=True,
        flag=GOLD_FAILURES,
        dashboard=DashboardColumn(sort="gold_accuracy", details=(("gold_pairs",),)),
    ),
    RaterStatistic(
        "gold_pairs",
        "Gold pairs",
        "Response pairs of gold prompts behind the gold accuracy.",
        "count",
        "quality.gold_pairs",
        detail="{} pairs",
        evidence_for=(GOLD_FAILURES,),
    ),
    RaterStatistic(
        "self_consistency",
        "Self-consistency",
        "Share of the response pairs of repeats labelled as in the rater's first ranking of "
        "the prompt.",
        "share",
        "quality.self_consistency",
        higher_is_better=True,
        flag=SELF_INCONSISTENT,
        dashboard=DashboardColumn(sort="self_consistency", details=(("repeat_pairs",),)),
    ),
    RaterStatistic(
        "repeat_pairs",
        "Repeat pairs",
        "Response pairs of repeats behind the self-consistency.",
        "count",
        "quality.repeat_pairs",
        detail="{} pairs",
        evidence_for=(SELF_INCONSISTENT,),
    ),
    RaterStatistic(
        "first_shown_win_rate",
        "Position bias",
        "Share of shown-adjacent pairs the rater decided that the earlier card won.",
        "share",
        "quality.first_shown_win_rate",
        higher_is_better=False,
        flag=POSITION_BIAS,
        dashboard=DashboardColumn(
            sort="position_bias", details=(("position_p_value",), ("position_pairs",))
        ),
    ),
    RaterStatistic(
        "position_p_value",
        "Position bias p-value",
        "Two-sided exact binomial test of the first-shown win rate against one half.",
        "p_value",
        "quality.position_p_value",
        digits=3,
        detail="p {}",
        evidence_for=(POSITION_BIAS,),
    ),
    RaterStatistic(
        "position_pairs",
        "Position pairs",
        "Decided shown-adjacent pairs behind the position bias.",
        "count",
        "quality.position_pairs",
        detail="{} pairs",
        evidence_for=(POSITION_BIAS,),
    ),
    RaterStatistic(
        "straight_lining_rate",
        "Straight-lining",
        "Share of rankings that equal the shown order.",
        "share",
        "quality.straight_lining_rate",
        higher_is_better=False,
        flag=STRAIGHT_LINING,
        dashboard=DashboardColumn(sort="straight_lining"),
    ),
    RaterStatistic(
        "speed_ratio",
        "Speed",
        "The rater's seconds over the project's median for prompts of similar length "
        "(the median over their timed rankings); below 1 is faster than the project.",
        "ratio",
        "quality.speed_ratio",
        suffix="\u00d7",  # a times sign
        # Slower than the project is no quality problem; the flag watches the fast end.
        higher_is_better=True,
        flag=TOO_FAST,
        dashboard=DashboardColumn(sort="speed", details=(("median_seconds",),)),
    ),
    RaterStatistic(
        "median_seconds",
        "Median time",
        "Median active seconds per ranking, over the rater's timed rankings.",
        "seconds",
        "quality.median_seconds",
        digits=0,
        suffix=" s",
        detail="{} s median",
        evidence_for=(TOO_FAST,),
        dashboard=DashboardColumn(sort="median_seconds", details=(("timed_rankings",),)),
    ),
    RaterStatistic(
        "tie_rate",
        "Ties",
        "Share of the rater's pair labels that are ties.",
        "share",
        "quality.tie_rate",
        dashboard=DashboardColumn(
            title="Tie rate, and the share of decided pairs won by the longer response",
            details=(("longer_win_rate",),),
            details_without_value=True,
        ),
    ),
    RaterStatistic(
        "longer_win_rate",
        "Longer wins",
        "Share of decided pairs of responses of different length won by the longer one.",
        "share",
        "quality.longer_win_rate",
        detail="{} longer",
    ),
    # Stored with the scores, read by the flag rules; not in the API rows.
    RaterStatistic(
        "agreement_no_ties",
        "Agreement without ties",
        "Leave-one-out agreement over the pairs the rater did not tie.",
        "share",
        "agreement_no_ties.agreement",
        digits=3,
        higher_is_better=True,
        api=False,
    ),
    RaterStatistic(
        "agreement_no_ties_low",
        "Agreement without ties, lower bound",
        "Lower end of the 95% Wilson score interval of the agreement without ties.",
        "share",
        "agreement_no_ties.low",
        digits=3,
        api=False,
    ),
    RaterStatistic(
        "agreement_no_ties_high",
        "Agreement without ties, upper bound",
        "Upper end of the 95% Wilson score interval of the agreement without ties.",
        "share",
        "agreement_no_ties.high",
        digits=3,
        api=False,
    ),
    RaterStatistic(
        "compared_pairs_no_ties",
        "Compared pairs without ties",
        "Pairs of raters compared behind the agreement without ties.",
        "count",
        "agreement_no_ties.n_pairs",
        detail="{} pairs",
        api=False,
    ),
    RaterStatistic(
        "gold_rankings",
        "Gold rankings",
        "Rankings of gold prompts: a flag never rests on one task.",
        "count",
        "quality.gold_rankings",
        detail="{} gold",
        evidence_for=(GOLD_FAILURES,),
        api=False,
    ),
    RaterStatistic(
        "repeat_rankings",
        "Repeats",
        "Repeats compared with the rater's first ranking of the prompt.",
        "count",
        "quality.repeat_rankings",
        detail="{} repeats",
        evidence_for=(SELF_INCONSISTENT,),
        api=False,
    ),
    RaterStatistic(
        "straight_lined",
        "Rankings in shown order",
        "Rankings of two or more responses that equal the shown order.",
        "count",
        "quality.straight_lined",
        api=False,
    ),
    RaterStatistic(
        "straight_lining_chance",
        "Straight-lining by chance",
        "The straight-lining rate a random ranker would reach on the rater's tasks "
        "(the mean of 1/K!).",
        "share",
        "quality.straight_lining_chance",
        digits=3,
        api=False,
    ),
    RaterStatistic(
        "timed_rankings",
        "Timed rankings",
        "Rankings with the seconds spent recorded, behind the speed.",
        "count",
        "quality.timed_rankings",
        detail="{} timed",
        api=False,
    ),
    RaterStatistic(
        "labelled_pairs",
        "Labelled pairs",
        "Response pairs the rater labelled, behind the tie rate.",
        "count",
        "quality.labelled_pairs",
        api=False,
    ),
    RaterStatistic(
        "length_pairs",
        "Length pairs",
        "Decided pairs of responses of different length, behind the longer win rate.",
        "count",
        "quality.length_pairs",
        api=False,
    ),
    RaterStatistic(
        "reliability_weight",
        "Reliability weight",
        "The rater's weight in the consensus: agreement rescaled so chance level is 0, floored.",
        "weight",
        "reliability",
        digits=2,
        api=False,
    ),
    # The reliability model (stats.reliability) and its sequential test (stats.sequential).
    RaterStatistic(
        "competence",
        "Competence",
        "Share of the rater's decided pair labels the reliability model attributes to careful "
        "judgement rather than to chance, the first-shown or the longer response.",
        "share",
        "model.competence",
        higher_is_better=True,
        flag=UNRELIABLE,
        dashboard=DashboardColumn(
            sort="competence",
            details=(("competence_low", "competence_high"), ("reliability_evidence",)),
            title="Competence with its 95% interval, and the sequential test's evidence",
            missing="Not fitted: no decided pair labels yet",
            note="decision",
        ),
    ),
    RaterStatistic(
        "competence_low",
        "Competence, lower bound",
        "Lower end of the competence's 95% interval (Wald, on the logit scale).",
        "share",
        "model.competence_low",
        higher_is_better=True,
        evidence_for=(UNRELIABLE,),
    ),
    RaterStatistic(
        "competence_high",
        "Competence, upper bound",
        "Upper end of the competence's 95% interval (Wald, on the logit scale).",
        "share",
        "model.competence_high",
        higher_is_better=True,
        evidence_for=(UNRELIABLE,),
    ),
    RaterStatistic(
        "reliability_evidence",
        "Evidence against careful",
        "Natural log of the likelihood ratio of careless or biased over careful, accumulated "
        "over the rater's tasks; the flag fires at log(1 / false-flag rate).",
        "log_ratio",
        "model.reliability_evidence",
        digits=1,
        detail="evidence {}",
        higher_is_better=False,
        evidence_for=(UNRELIABLE,),
    ),
    RaterStatistic(
        "evidence_per_task",
        "Evidence per task",
        "The strongest alternative's log likelihood ratio per task so far: the pace at which "
        "the test is deciding (positive toward a flag, negative toward careful).",
        "log_ratio",
        "model.evidence_per_task",
        digits=2,
        evidence_for=(UNRELIABLE,),
    ),
    RaterStatistic(
        "first_shown_share",
        "Picks the first shown",
        "Share of the rater's labels the model attributes to picking the first-shown response.",
        "share",
        "model.first_shown_share",
        evidence_for=(UNRELIABLE,),
    ),
    RaterStatistic(
        "longer_share",
        "Picks the longer",
        "Share of the rater's labels the model attributes to picking the longer response.",
        "share",
        "model.longer_share",
        evidence_for=(UNRELIABLE,),
    ),
    RaterStatistic(
        "reliability_labels",
        "Decided labels",
        "Decided pair labels (ties left out) behind the competence.",
        "count",
        "model.reliability_labels",
        detail="{} labels",
        evidence_for=(UNRELIABLE,),
    ),
    RaterStatistic(
        "reliability_tasks",
        "Tested tasks",
        "Rankings with a decided pair label: the tasks the sequential test has seen.",
        "count",
        "model.reliability_tasks",
        detail="{} tasks",
        evidence_for=(UNRELIABLE,),
    ),
)

STATISTICS: Mapping[str, RaterStatistic] = {stat.name: stat for stat in RATER_STATISTICS}


def rater_values(result: RaterResult) -> dict[str, Number]:
    """Every statistic of one rater by name (what a run stores for them)."""
    return {stat.name: stat.value_of(result) for stat in RATER_STATISTICS}


def headline(code: str) -> RaterStatistic:
    """The statistic a flag rule is judged on."""
    (stat,) = (stat for stat in RATER_STATISTICS if stat.flag == code)
    return stat


def evidence_statistics(code: str) -> tuple[RaterStatistic, ...]:
    """The statistics a flag's evidence shows: its headline first, then the others in
    registry order from the headline on (its interval and counts follow it there), then
    those declared before it."""
    judged_on = headline(code)
    position = RATER_STATISTICS.index(judged_on)
    rotated = RATER_STATISTICS[position:] + RATER_STATISTICS[:position]
    return (judged_on, *(stat for stat in rotated if code in stat.evidence_for))
