"""Per rater, from the reliability fit: competence with an interval, and a sequential
likelihood-ratio test of "careful" against "careless or biased" with its pace so far.

Each decided label a rater gives is weighed against the truth as every *other* rater of the
pair (and the length prior) sees it: ``p`` is the probability that the label is the truth.
The careful hypothesis gives it with probability ``c * p + (1 - c) / 2``, ``c`` the
project's typical competence relaxed by ``CAREFUL_SHARE``. The alternatives: a noisy rater
(the same at ``NOISY_SHARE`` of the typical competence), and raters who take a share of
their tasks by a shortcut — at random, in the shown order, longest first — and the rest as
the careful hypothesis. The evidence is the log of the alternatives' mixture likelihood
over the careful one, a product over tasks: under the careful hypothesis it is a
non-negative martingale with mean 1, so the chance that it *ever* reaches ``1 / alpha``,
however many tasks the rater does, is at most ``alpha`` (Ville's inequality). That is what
calibrates the flag (``rankings.quality.flags``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rankings.stats.reliability import (
    CAREFUL,
    FIRST_SHOWN,
    LONGER,
    PairLabels,
    ReliabilityFit,
    label_truth_without_own,
    pattern_tables,
)
from rankings.stats.tables import FloatArray, IntArray, float_or_none

#: The careful hypothesis: this share of the project's typical competence.
CAREFUL_SHARE = 0.85
#: The noisy alternative: careful on every task, at this share of the typical competence.
NOISY_SHARE = 0.55
#: The shortcut alternatives: this share of tasks ranked at random, in the shown order or
#: longest first (each label then follows the shortcut but for ``SHORTCUT_SLIP``), the rest
#: as the careful hypothesis.
SHORTCUT_SHARE = 0.5
SHORTCUT_SLIP = 0.02
#: Prior weight of each alternative in the mixture: noisy, random, first shown, longer.
#: The position and length shortcuts leave a pattern strong evidence soon picks up, so
#: most of the weight goes where evidence comes slowly.
ALTERNATIVE_WEIGHTS = (0.4, 0.4, 0.1, 0.1)
#: Raters with fewer decided labels do not set the project's typical competence.
MIN_TYPICAL_LABELS = 30
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class RaterReliability:
    """One rater's reliability: competence (the share of labels given carefully) with a 95%
    interval, the shares explained by position and by length, the decided labels behind
    them, and the sequential test's evidence (log likelihood ratio, careless or biased over
    careful) with its pace so far: the strongest alternative's log ratio per task."""

    rater_index: int
    competence: float | None
    competence_low: float | None
    competence_high: float | None
    first_shown_share: float | None
    longer_share: float | None
    reliability_labels: int
    reliability_tasks: int
    reliability_evidence: float | None
    evidence_per_task: float | None


def typical_competence(competence: npt.ArrayLike, labels: npt.ArrayLike) -> float | None:
    """The median competence over raters with enough decided labels (most raters are
    careful); None while nobody has enough."""
    values = np.asarray(competence, dtype=np.float64)
    enough = (np.asarray(labels) >= MIN_TYPICAL_LABELS) & ~np.isnan(values)
    if not enough.any():
        return None
    return float(np.median(values[enough]))


def _careful_probability(truth: FloatArray, competence: float) -> FloatArray:
    """P(label) when careful with this competence, erring at random."""
    return competence * truth + (1.0 - competence) * 0.5


def _shortcut_probability(follows: FloatArray) -> FloatArray:
    """P(label) when ranking by a shortcut: ``follows`` is 1 when the label is the one the
    shortcut picks, 0 when not, 0.5 when the shortcut cannot tell."""
    return SHORTCUT_SLIP + (1.0 - 2.0 * SHORTCUT_SLIP) * follows


def rater_reliability(labels: PairLabels, fit: ReliabilityFit) -> list[RaterReliability]:
    """Every rater's ``RaterReliability``, vectorized over all labels."""
    typical = typical_competence(fit.competence, labels.per_rater())
    return reliability_rows(fit, reliability_sums(labels, fit, typical), typical)


@dataclass(frozen=True)
class ReliabilitySums:
    """Per rater, what the summaries add up over labels: labels and tasks, the observed
    information about competence, and the log likelihood ratio of each alternative
    (``ALTERNATIVE_WEIGHTS`` order). Sums over disjoint sets of prompts add up."""

    labels: IntArray
    tasks: IntArray
    information: FloatArray
    log_ratios: FloatArray  # (alternatives, raters)

    def merge(self, other: ReliabilitySums) -> ReliabilitySums:
        return ReliabilitySums(
            labels=self.labels + other.labels,
            tasks=self.tasks + other.tasks,
            information=self.information + other.information,
            log_ratios=self.log_ratios + other.log_ratios,
        )


def reliability_sums(
    labels: PairLabels, fit: ReliabilityFit, typical: float | None
) -> ReliabilitySums:
    """The sums of these labels, given the project's fit (its ``unit_log_odds`` those of
    these labels' units) and typical competence."""
    truth = label_truth_without_own(labels, fit)
    pattern, _ = labels.patterns()
    # How each label relates to the shown order and to length: 0 against, 1 unknown, 2 with.
    log_ratios = _sequential_log_ratios(
        labels, truth, (pattern // 6) % 3, (pattern // 2) % 3, typical
    )
    return ReliabilitySums(
        labels=labels.per_rater(),
        tasks=labels.tasks,
        information=competence_information(labels, fit, truth),
        log_ratios=log_ratios,
    )


def reliability_rows(
    fit: ReliabilityFit, sums: ReliabilitySums, typical: float | None
) -> list[RaterReliability]:
    low, high = competence_bounds(fit, sums.information)
    n = len(sums.labels)
    if typical is None or sums.labels.sum() == 0:
        evidence, per_task = np.full(n, np.nan), np.full(n, np.nan)
    else:
        from scipy.special import logsumexp  # here: a slow import every process paid at start

        prior = np.log(np.asarray(ALTERNATIVE_WEIGHTS))[:, np.newaxis]
        evidence = logsumexp(sums.log_ratios + prior, axis=0)
        per_task = sums.log_ratios.max(axis=0) / np.maximum(sums.tasks, 1)
    rows = []
    for rater in range(n):
        has = sums.labels[rater] > 0
        weights = fit.weights[rater]
        rows.append(
            RaterReliability(
                rater_index=rater,
                competence=float(weights[CAREFUL]) if has else None,
                competence_low=float_or_none(low[rater]) if has else None,
                competence_high=float_or_none(high[rater]) if has else None,
                first_shown_share=float(weights[FIRST_SHOWN]) if has else None,
                longer_share=float(weights[LONGER]) if has else None,
                reliability_labels=int(sums.labels[rater]),
                reliability_tasks=int(sums.tasks[rater]),
                reliability_evidence=float_or_none(evidence[rater]) if has else None,
                evidence_per_task=float_or_none(per_task[rater]) if has else None,
            )
        )
    return rows


def competence_interval(
    labels: PairLabels, fit: ReliabilityFit, truth: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """A 95% Wald interval on the logit of competence, from the observed information of the
    rater's labels (their ways of erring held at the fitted proportions)."""
    return competence_bounds(fit, competence_information(labels, fit, truth))


def competence_information(
    labels: PairLabels, fit: ReliabilityFit, truth: FloatArray
) -> FloatArray:
    """Per rater, the observed information about competence in these labels.

    Per label only ``truth`` varies; the rest is looked up per pattern (rater and relations).
    """
    pattern, _ = labels.patterns()
    spam = fit.weights.copy()
    spam[:, CAREFUL] = 0.0
    spam /= np.maximum(spam.sum(axis=1, keepdims=True), 1e-12)
    erring_table, _ = pattern_tables(spam)  # the ways of erring alone, as if never careful
    erring = erring_table[pattern]
    competence = np.repeat(fit.competence, 18)[pattern]
    probability = erring + competence * (truth - erring)
    score = (truth - erring) / np.maximum(probability, 1e-12)
    information: FloatArray = np.bincount(
        labels.rater, weights=score * score, minlength=labels.n_raters
    )
    return information


def competence_bounds(
    fit: ReliabilityFit, information: FloatArray
) -> tuple[FloatArray, FloatArray]:
    c = np.clip(fit.competence, 1e-6, 1 - 1e-6)
    # Without information the interval is the whole of (0, 1): an infinite spread.
    with np.errstate(divide="ignore", over="ignore"):
        spread = Z_95 / (np.sqrt(information) * c * (1.0 - c))
        centre = np.log(c / (1.0 - c))
        low = 1.0 / (1.0 + np.exp(-(centre - spread)))
        high = 1.0 / (1.0 + np.exp(-(centre + spread)))
    return low, high


def _sequential_log_ratios(
    labels: PairLabels,
    truth: FloatArray,
    shown: IntArray,
    longer: IntArray,
    typical: float | None,
) -> FloatArray:
    """Per alternative and rater: the log likelihood ratio over their tasks (zero when the
    project has no typical competence yet).

    The ratio is a product over tasks, each of mean 1 under the careful hypothesis: a task
    is a unit of the test because shortcuts are taken a task at a time.
    """
    n = labels.n_raters
    if typical is None or labels.n_labels == 0:
        return np.zeros((len(ALTERNATIVE_WEIGHTS), n))
    n_tasks = int(labels.task.max()) + 1
    task_rater = np.zeros(n_tasks, dtype=np.int64)
    task_rater[labels.task] = labels.rater

    def per_task(log_probability: FloatArray) -> FloatArray:
        return np.bincount(labels.task, weights=log_probability, minlength=n_tasks)

    careful = per_task(np.log(_careful_probability(truth, CAREFUL_SHARE * typical)))
    noisy = per_task(np.log(_careful_probability(truth, NOISY_SHARE * typical)))
    task_log_ratios = [noisy - careful]
    labels_per_task = np.bincount(labels.task, minlength=n_tasks)
    # A shortcut picks the label (1), the other response (0) or cannot tell (0.5).
    logs = np.log(_shortcut_probability(np.array([0.0, 0.5, 1.0])))
    at_random = labels_per_task * math.log(0.5)  # one half a label
    for shortcut in (at_random, per_task(logs[shown]), per_task(logs[longer])):
        task_log_ratios.append(
            np.logaddexp(
                math.log(SHORTCUT_SHARE) + shortcut - careful, math.log(1.0 - SHORTCUT_SHARE)
            )
        )
    # Tasks without a label of their own (numbers between blocks') add nothing: their
    # ratios are those of no labels, log 1 for every alternative but the shortcut mixtures,
    # whose empty product is also 1.
    has_labels = labels_per_task > 0
    return np.array(
        [
            np.bincount(task_rater[has_labels], weights=ratio[has_labels], minlength=n)
            for ratio in task_log_ratios
        ]
    )
