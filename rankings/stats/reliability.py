"""Rater reliability from pair labels: a MACE-style model fitted by EM over a whole project.

Every decided pair label (ties left out) comes from one of four ways of labelling. With
weight ``careful`` the rater labels the pair as it truly is; otherwise they pick at random,
pick the response shown first, or pick the longer one. Each response pair (a *unit*) has a
latent truth, which of its two responses is better, with a prior that the longer one is
better ``rho`` (one number per project, so careful raters who prefer longer responses because
they are better are not mistaken for length-biased ones). The rater's ``careful`` weight is
their *competence*; the first-shown and longer weights are their biases.

EM alternates the truth of every unit given the raters' weights and the weights given the
truth, vectorized over all labels. Labels from one rater with the same relation to the
shown order and to length share every per-label number, so each update is a gather and a
bincount per label (``LabelBlock``: labels grouped by how many their unit has) plus
arithmetic on small tables. One fit serves all labels in memory (one block) and a project
read block by block: one EM update and one accelerated loop (``em_acceleration``: Anderson
mixing with a monotone safeguard), which reaches the same maximum as plain EM in several
times fewer passes.
The objective is the marginal likelihood (truth summed out) times a Dirichlet prior on each
rater's weights and a Beta prior on ``rho``; ``objective`` computes it directly, so the tests
hold the fit to a brute-force likelihood. The per-rater summaries (interval, sequential test)
are in ``rankings.stats.sequential``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from rankings.stats import em_acceleration
from rankings.stats.label_blocks import (
    EStep,
    Int8Array,
    LabelBlock,
    LabelTotals,
    blocks_e_step,
    grouped_columns,
    logistic,
    smallest_unsigned,
)
from rankings.stats.tables import (
    FloatArray,
    IntArray,
    RankingContext,
    RankingTable,
    slot_pairs,
)

CAREFUL, RANDOM, FIRST_SHOWN, LONGER = range(4)
N_COMPONENTS = 4
#: Pseudo-labels each way of labelling gets per rater (a Dirichlet(1 + this) prior): a rater
#: with few labels is not judged perfect or worthless, and no weight is ever exactly 0.
PRIOR_LABELS = 0.5
#: Starting weights: mostly careful, as most raters are.
START_WEIGHTS = (0.7, 0.2, 0.05, 0.05)
MAX_ITERATIONS = 100
"""The most passes over the labels a fit makes (``ReliabilityFit.iterations`` counts them)."""
TOLERANCE = 1e-5
"""EM stops once an update (a pass) moves no weight and not ``rho`` by this much. Near the
answer EM moves ever less each update, so its distance to the answer is many times its
last move: this small, the accelerated fit ends within 1e-3 of it in a weight (6.6e-4 on
the agreement bench's 10M rankings, 3.2e-4 on its 1M; competence is shown to two
decimals), where plain EM stopped at 1e-3 ended up to 0.03 short of it
(``bench/reliability.py``; docs/benchmarks.md, tenth and eleventh rounds)."""

FIT_THREADS = min(4, os.cpu_count() or 1)
"""Threads an EM pass is spread over (``fit_reliability_blocks``)."""


@dataclass(frozen=True)
class PairLabels:
    """Decided pair labels of the counted rankings, one entry per label.

    ``label`` is +1 when the pair's first slot won, -1 when the second did; ``first_shown``
    +1 when the first slot was shown before the second, -1 after, 0 unknown; ``longer`` per
    unit: +1 when the first slot's response is longer, -1 shorter, 0 equal or unknown.
    ``task`` numbers the ranking each label comes from; ``tasks`` counts per rater the
    rankings with at least one decided label.
    """

    unit: IntArray
    rater: IntArray
    task: IntArray
    label: Int8Array
    first_shown: Int8Array
    longer: Int8Array  # per unit
    n_raters: int
    tasks: IntArray

    @property
    def n_labels(self) -> int:
        return len(self.unit)

    @property
    def n_units(self) -> int:
        return len(self.longer)

    def per_rater(self) -> IntArray:
        return np.bincount(self.rater, minlength=self.n_raters).astype(np.int64)

    def patterns(self) -> tuple[IntArray, int]:
        """Per label its pattern: rater, shown relation, length relation and label.

        Index ``((rater * 3 + shown) * 3 + length) * 2 + positive`` where ``shown`` and
        ``length`` are 0 (against the label), 1 (unknown) or 2 (with it). Computed once.
        """
        cached: tuple[IntArray, int] | None = self.__dict__.get("_pattern_cache")
        if cached is None:
            cached = self._patterns()
            object.__setattr__(self, "_pattern_cache", cached)
        return cached

    def _patterns(self) -> tuple[IntArray, int]:
        label = self.label.astype(np.int64)
        shown = label * self.first_shown + 1
        length = label * self.longer[self.unit] + 1
        pattern = ((self.rater * 3 + shown) * 3 + length) * 2 + (label > 0)
        return pattern.astype(np.int64), self.n_raters * 18


@dataclass(frozen=True)
class ReliabilityFit:
    """The fitted model: per rater the weights of the four ways of labelling (rows sum to 1),
    ``rho`` and, per unit, the log-odds that the first slot is the better one."""

    weights: FloatArray  # (n_raters, 4): careful, random, first shown, longer
    rho: float
    unit_log_odds: FloatArray
    iterations: int  # passes over the labels (E steps), accelerated or not
    converged: bool  # an EM update moved nothing by ``TOLERANCE`` or more

    @property
    def competence(self) -> FloatArray:
        return self.weights[:, CAREFUL]


def counted_rows(table: RankingTable, is_repeat: npt.NDArray[Any] | None) -> IntArray:
    """The rows agreement counts: repeats out, then each rater's first ranking of a prompt
    (as ``tables.one_ranking_per_rater`` keeps them)."""
    rows = np.arange(table.n_rankings) if is_repeat is None else np.flatnonzero(~is_repeat)
    key = table.prompt_index[rows] * max(table.n_raters, 1) + table.rater_index[rows]
    _, first = np.unique(key, return_index=True)
    counted: IntArray = rows[np.sort(first)]
    return counted


def shown_positions(shown_slots: npt.NDArray[np.integer[Any]], k_max: int) -> IntArray:
    """``position[r, s]``: where slot ``s`` was shown in ranking ``r`` (0 = first), -1 unknown."""
    n = len(shown_slots)
    position = np.full((n, k_max + 1), -1, dtype=np.int64)  # the last column takes padding
    rows = np.arange(n)
    for shown_at in range(min(shown_slots.shape[1], k_max)):
        slots = shown_slots[:, shown_at].astype(np.int64)
        position[rows, np.where(slots >= 0, slots, k_max)] = shown_at
    return position[:, :k_max]


def pair_labels(table: RankingTable, context: RankingContext) -> PairLabels:
    """The decided labels of the rankings agreement counts, with their shown and length
    relations (``PairLabels``)."""
    rows = counted_rows(table, context.is_repeat)
    # By prompt: each unit's labels then sit together, which keeps the fit's passes over
    # them cache-friendly.
    rows = rows[np.argsort(table.prompt_index[rows], kind="stable")]
    all_labels, present = table.label_matrix()
    labels, present = all_labels[rows], present[rows]
    prompt, rater = table.prompt_index[rows], table.rater_index[rows]
    pairs = slot_pairs(table.k_max)
    n_pairs = max(len(pairs), 1)
    position = (
        shown_positions(context.shown_slots[rows], table.k_max)
        if context.shown_slots is not None
        else np.full((len(rows), table.k_max), -1, dtype=np.int64)
    )
    longer = np.zeros((table.n_prompts, n_pairs), dtype=np.int8)
    units, raters, tasks_of, values, shown = [], [], [], [], []
    for pair, (i, j) in enumerate(pairs):
        if context.response_length is not None:
            with np.errstate(invalid="ignore"):
                difference = context.response_length[:, i] - context.response_length[:, j]
            longer[:, pair] = np.sign(np.nan_to_num(difference)).astype(np.int8)
        decided = np.flatnonzero(present[:, pair] & (labels[:, pair] != 0))
        units.append(prompt[decided] * n_pairs + pair)
        raters.append(rater[decided])
        tasks_of.append(decided)
        values.append(labels[decided, pair])
        first, second = position[decided, i], position[decided, j]
        known = (first >= 0) & (second >= 0)
        shown.append(np.where(known, np.sign(second - first), 0).astype(np.int8))
    decided_rows = present & (labels != 0)
    tasks = np.bincount(rater[decided_rows.any(axis=1)], minlength=table.n_raters)
    return PairLabels(
        unit=np.concatenate([np.zeros(0, dtype=np.int64), *units]),
        rater=np.concatenate([np.zeros(0, dtype=np.int64), *raters]),
        task=np.concatenate([np.zeros(0, dtype=np.int64), *tasks_of]),
        label=np.concatenate([np.zeros(0, dtype=np.int8), *values]),
        first_shown=np.concatenate([np.zeros(0, dtype=np.int8), *shown]),
        longer=longer.reshape(-1),
        n_raters=table.n_raters,
        tasks=tasks.astype(np.int64),
    )


# The model ------------------------------------------------------------------------------------


def pattern_tables(weights: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per pattern (``PairLabels.patterns``): the probability of the label when it is the
    truth and when it is not."""
    relation = np.array([0.0, 0.5, 1.0])  # against, unknown, with the label
    spam = (
        weights[:, RANDOM, None, None] * 0.5
        + weights[:, FIRST_SHOWN, None, None] * relation[None, :, None]
        + weights[:, LONGER, None, None] * relation[None, None, :]
    )
    spam = np.repeat(spam.reshape(-1), 2)  # the same for either label sign
    when_true = spam + np.repeat(weights[:, CAREFUL], 18)
    return when_true, spam


def unit_prior_log_odds(labels: PairLabels, rho: float) -> FloatArray:
    """Prior log-odds per unit that its first slot is better: ``rho`` toward the longer."""
    rho = min(max(rho, 1e-9), 1 - 1e-9)
    return labels.longer.astype(np.float64) * math.log(rho / (1.0 - rho))


def _unit_log_odds(
    labels: PairLabels, pattern: IntArray, when_true: FloatArray, spam: FloatArray, rho: float
) -> FloatArray:
    """Posterior log-odds per unit that the first slot is better."""
    signed = np.log(when_true / spam) * np.tile([-1.0, 1.0], len(spam) // 2)
    evidence = np.bincount(labels.unit, weights=signed[pattern], minlength=labels.n_units)
    return unit_prior_log_odds(labels, rho) + evidence


def objective(labels: PairLabels, weights: FloatArray, rho: float) -> float:
    """Log marginal likelihood of all labels (each unit's truth summed out) plus the log
    priors (Dirichlet on each rater's weights, Beta on ``rho``), up to a constant."""
    pattern, _ = labels.patterns()
    when_true, spam = pattern_tables(weights)
    positive = labels.label > 0
    log_true, log_false = np.log(when_true[pattern]), np.log(spam[pattern])
    # log P(labels of a unit | first slot better) and | second slot better.
    if_first = np.bincount(
        labels.unit, np.where(positive, log_true, log_false), minlength=labels.n_units
    )
    if_second = np.bincount(
        labels.unit, np.where(positive, log_false, log_true), minlength=labels.n_units
    )
    prior_first = unit_prior_log_odds(labels, rho)
    log_prior_first = -np.logaddexp(0.0, -prior_first)
    log_prior_second = -np.logaddexp(0.0, prior_first)
    has_labels = np.bincount(labels.unit, minlength=labels.n_units) > 0
    marginal = np.logaddexp(log_prior_first + if_first, log_prior_second + if_second)
    prior = PRIOR_LABELS * (np.log(weights).sum() + np.log(rho) + np.log(1 - rho))
    return float(marginal[has_labels].sum() + prior)


# Fitting: one EM update, accelerated ----------------------------------------------------------


@dataclass(frozen=True)
class Parameters:
    """What EM fits: per rater the weights of the four ways of labelling (rows sum to 1), and
    ``rho``."""

    weights: FloatArray
    rho: float

    def moved(self, other: Parameters) -> float:
        """How far the farthest weight, or ``rho``, is from ``other``'s."""
        weights = float(np.abs(self.weights - other.weights).max(initial=0.0))
        return max(weights, abs(self.rho - other.rho))

    def as_vector(self) -> FloatArray:
        """The point the accelerated fit mixes: the log weights row by row, then the logit
        of ``rho``. Any such vector maps back to weights inside the simplex
        (``from_vector``), so a step near its boundary (a weight near 0) need not be cut
        short: extrapolating in these coordinates took about half the passes of
        extrapolating the weights themselves on the agreement bench's crowd (45 vs 83 to
        the same rule, the same maximum, measured with SQUAREM)."""
        vector: FloatArray = np.append(
            np.log(self.weights).reshape(-1), math.log(self.rho / (1.0 - self.rho))
        )
        return vector

    @classmethod
    def from_vector(cls, vector: FloatArray) -> Parameters:
        logs = vector[:-1].reshape(-1, N_COMPONENTS)
        weights = np.exp(logs - logs.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        return cls(weights=weights, rho=float(logistic(np.array(vector[-1]))))

    def is_inside(self) -> bool:
        """Every weight and ``rho`` strictly between 0 and 1 (not so for an extrapolation
        that overflowed)."""
        inside = bool(np.all(self.weights > 0.0)) and 0.0 < self.rho < 1.0
        return inside and bool(np.all(np.isfinite(self.weights)))


@dataclass
class _EMMap:
    """The EM update of the labels an E step reads, counting the passes over them."""

    e_step: EStep
    totals: LabelTotals
    passes: int = 0

    def em_update(self, params: Parameters) -> Parameters:
        """One EM update: the E step's posteriors, then ``_maximized``."""
        return self._update(params, with_objective=False)[0]

    def em_update_scored(self, params: Parameters) -> tuple[Parameters, float]:
        """``em_update`` and ``objective`` at ``params``, from the same pass."""
        return self._update(params, with_objective=True)

    def _update(self, params: Parameters, *, with_objective: bool) -> tuple[Parameters, float]:
        self.passes += 1
        totals = self.totals
        when_true, spam = pattern_tables(params.weights)
        sign = np.tile([-1.0, 1.0], totals.n_patterns // 2)
        rho_log_odds = math.log(params.rho / (1.0 - params.rho))
        sums = self.e_step(np.log(when_true / spam) * sign, rho_log_odds, with_objective)
        positive_pattern = np.tile([False, True], totals.n_patterns // 2)
        # Per pattern, the summed posterior that the label is the truth.
        truth_share = np.where(
            positive_pattern, sums.first_better, totals.per_pattern - sums.first_better
        )
        shorter, _, longer = (int(count) for count in totals.units_by_longer)
        # Summed over units of different lengths: the posterior that the longer is better.
        longer_better = sums.toward_longer + float(shorter)
        weights, rho = _maximized(
            params.weights,
            truth_share,
            totals.per_pattern,
            when_true,
            spam,
            longer_better,
            shorter + longer,
        )
        value = (
            _objective_from(totals, when_true, spam, params, sums.softplus)
            if with_objective
            else math.nan
        )
        return Parameters(weights=weights, rho=rho), value


def _objective_from(
    totals: LabelTotals,
    when_true: FloatArray,
    spam: FloatArray,
    params: Parameters,
    softplus: float,
) -> float:
    """``objective`` from an E step's softplus sum. A unit's log marginal likelihood
    ``log(P(first) P(labels | first) + P(second) P(labels | second))`` is
    ``log P(second) + log P(labels | second) + log(1 + exp(log-odds))`` with the posterior
    log-odds the E step computes; the first two terms, summed over units, are sums over
    patterns and over the units' ``longer``: no pass over the labels. (A unit without labels
    adds ``log P(second) + log(1 + P(first) / P(second)) = 0``, as in ``objective``.)"""
    positive_pattern = np.tile([False, True], totals.n_patterns // 2)
    # Each label's log-probability when the unit's second slot is the better one.
    if_second = float(totals.per_pattern @ np.log(np.where(positive_pattern, spam, when_true)))
    shorter, equal, longer = (float(count) for count in totals.units_by_longer)
    rho = params.rho
    # P(second slot better) is rho where the first is shorter, 1 - rho where it is longer.
    prior_second = shorter * math.log(rho) + longer * math.log1p(-rho) + equal * math.log(0.5)
    prior = PRIOR_LABELS * (float(np.log(params.weights).sum()) + math.log(rho) + math.log1p(-rho))
    return if_second + prior_second + softplus + prior


def _start(n_raters: int) -> Parameters:
    weights = np.tile(np.asarray(START_WEIGHTS, dtype=np.float64), (n_raters, 1))
    return Parameters(weights=weights, rho=0.5)


def fit_reliability(
    labels: PairLabels,
    *,
    max_iterations: int = MAX_ITERATIONS,
    tolerance: float = TOLERANCE,
    accelerate: bool = True,
    threads: int | None = None,
) -> ReliabilityFit:
    """Maximum a posteriori weights and ``rho`` by EM accelerated by Anderson mixing
    (``em_acceleration``: ``objective`` never decreases from one accepted point to the
    next); plain EM with ``accelerate=False``. ``max_iterations`` caps the passes over the
    labels."""
    fit = fit_reliability_blocks(
        [label_block(labels)],
        labels.n_raters,
        max_iterations=max_iterations,
        tolerance=tolerance,
        accelerate=accelerate,
        threads=threads,
    )
    return fit_for_block(fit, labels)


def _maximized(
    weights: FloatArray,
    truth_share: FloatArray,
    per_pattern: FloatArray,
    when_true: FloatArray,
    spam: FloatArray,
    longer_better: float,
    length_units: int,
) -> tuple[FloatArray, float]:
    """The M step: each rater's weights and ``rho`` from the responsibilities summed per
    pattern (``truth_share``: the summed posterior that the pattern's label is the truth)."""
    n_raters = len(weights)
    relation = np.array([0.0, 0.5, 1.0])
    # Responsibilities summed per pattern: careful, and the factor of each spam weight.
    careful = (truth_share * (1.0 - spam / when_true)).reshape(n_raters, 3, 3, 2)
    spam_factor = truth_share / when_true + (per_pattern - truth_share) / spam
    spam_factor = spam_factor.reshape(n_raters, 3, 3, 2)
    new = np.empty_like(weights)
    new[:, CAREFUL] = careful.sum(axis=(1, 2, 3))
    new[:, RANDOM] = weights[:, RANDOM] * 0.5 * spam_factor.sum(axis=(1, 2, 3))
    new[:, FIRST_SHOWN] = weights[:, FIRST_SHOWN] * np.einsum("s,rslp->r", relation, spam_factor)
    new[:, LONGER] = weights[:, LONGER] * np.einsum("l,rslp->r", relation, spam_factor)
    new += PRIOR_LABELS
    new /= new.sum(axis=1, keepdims=True)
    new_rho = (longer_better + PRIOR_LABELS) / (length_units + 2 * PRIOR_LABELS)
    return new, float(new_rho)


# Fitting part by part ------------------------------------------------------------------------


def label_block(labels: PairLabels) -> LabelBlock:
    pattern, n_patterns = labels.patterns()
    per_unit = np.bincount(labels.unit, minlength=labels.n_units)
    labelled = per_unit > 0
    # Labels by their unit's count, then unit: each group is its units' labels row by row.
    order = np.argsort(per_unit[labels.unit] * labels.n_units + labels.unit, kind="stable")
    unit_order = np.argsort(per_unit, kind="stable")
    unit_order = unit_order[labelled[unit_order]]
    units_by_count = np.bincount(per_unit[labelled], minlength=1).astype(np.int64)
    units_by_count[0] = 0
    grouped = grouped_columns(pattern[order], units_by_count)
    return LabelBlock(
        pattern=grouped.astype(smallest_unsigned(n_patterns - 1)),
        units_by_count=units_by_count,
        longer=labels.longer[unit_order],
        unlabelled_longer=np.bincount(labels.longer[~labelled] + 1, minlength=3).astype(np.int64),
    )


def fit_reliability_blocks(
    blocks: Sequence[LabelBlock],
    n_raters: int,
    *,
    max_iterations: int = MAX_ITERATIONS,
    tolerance: float = TOLERANCE,
    accelerate: bool = True,
    threads: int | None = None,
) -> ReliabilityFit:
    """``fit_reliability`` over the labels of every block, each pass spread over
    ``threads`` threads (``FIT_THREADS`` by default; the result is the same for any
    number). ``unit_log_odds`` is left empty: ``fit_for_block`` gives a block's."""
    threads = FIT_THREADS if threads is None else threads
    with ThreadPoolExecutor(max_workers=threads) if threads > 1 else nullcontext() as pool:
        e_step, totals = blocks_e_step(blocks, n_raters, pool)
        em = _EMMap(e_step, totals)
        params, converged = em_acceleration.fit_em(
            em,
            _start(n_raters),
            Parameters.from_vector,
            max_iterations=max_iterations,
            tolerance=tolerance,
            accelerate=accelerate,
        )
    return ReliabilityFit(
        weights=params.weights,
        rho=params.rho,
        unit_log_odds=np.zeros(0),
        iterations=em.passes,
        converged=converged,
    )


def fit_for_block(fit: ReliabilityFit, labels: PairLabels) -> ReliabilityFit:
    """The fit with the unit log-odds of one block's labels (as ``fit_reliability`` gives
    them for all units)."""
    pattern, _ = labels.patterns()
    when_true, spam = pattern_tables(fit.weights)
    return replace(fit, unit_log_odds=_unit_log_odds(labels, pattern, when_true, spam, fit.rho))


def label_truth_without_own(labels: PairLabels, fit: ReliabilityFit) -> FloatArray:
    """Per label, the probability that it is the truth judged from every other label of its
    unit (and the length prior), leaving its own label out."""
    pattern, _ = labels.patterns()
    when_true, spam = pattern_tables(fit.weights)
    own = np.log(when_true[pattern] / spam[pattern])
    toward_label = labels.label * fit.unit_log_odds[labels.unit] - own
    return 1.0 / (1.0 + np.exp(-toward_label))
