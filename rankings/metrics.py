"""Agreement and rater-quality statistics over a project's rankings, vectorized with numpy.

Project level: pairwise agreement, Fleiss' kappa on pair labels, Krippendorff's alpha on
mid-ranks, mean Kendall's W, each with its unit count and a bootstrap interval over prompts.
Rater level: leave-one-out agreement, gold accuracy, self-consistency on repeats, position
bias, straight-lining, speed, tie rate and length bias, each with the count behind it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
LabelArray = npt.NDArray[np.int8]

# Pair labels: the first slot of the pair is better, the second is better, or they tie.
FIRST_BETTER = 1
SECOND_BETTER = -1
TIE = 0
N_LABEL_CATEGORIES = 3

#: Bootstrap defaults: resamples of prompts and the seed that makes a run reproducible.
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
# Prompts per block when the bootstrap multiplies resample weights by per-prompt sums;
# bounds the memory of a block whatever the project size.
BOOTSTRAP_BLOCK = 8192
#: Speed is compared within buckets of prompts of similar total response length.
SPEED_LENGTH_BUCKETS = 5


# --------------------------------------------------------------------------------------------
# Input representation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankingTable:
    """All rankings of a project, one row per ranking.

    ``ranks[r, s]`` is the tie-group level (1 = best, dense: 1, 2, 3, ...) that ranking ``r``
    gave to response slot ``s`` of its prompt, NaN where the prompt has no such slot.
    Slots are the fixed positions of responses within their prompt, not the shown order.
    ``n_prompts`` / ``n_raters`` are lower bounds; they grow to cover every index present.
    """

    prompt_index: IntArray
    rater_index: IntArray
    ranks: FloatArray
    n_prompts: int = 0
    n_raters: int = 0
    one_per_rater: bool = False
    """Known to hold at most one ranking per (prompt, rater): set by ``one_ranking_per_rater``."""

    def __post_init__(self) -> None:
        prompt_index = np.asarray(self.prompt_index, dtype=np.int64).reshape(-1)
        rater_index = np.asarray(self.rater_index, dtype=np.int64).reshape(-1)
        ranks = np.asarray(self.ranks, dtype=np.float64)
        if ranks.ndim != 2 and ranks.size == 0:
            ranks = ranks.reshape(0, 0)
        if ranks.ndim != 2:
            raise ValueError("ranks must be a 2-D array (n_rankings, k_max)")
        if not len(prompt_index) == len(rater_index) == len(ranks):
            raise ValueError("prompt_index, rater_index and ranks must have one row per ranking")
        object.__setattr__(self, "prompt_index", prompt_index)
        object.__setattr__(self, "rater_index", rater_index)
        object.__setattr__(self, "ranks", ranks)
        object.__setattr__(self, "n_prompts", max(self.n_prompts, _dense_size(prompt_index)))
        object.__setattr__(self, "n_raters", max(self.n_raters, _dense_size(rater_index)))

    @property
    def n_rankings(self) -> int:
        return len(self.prompt_index)

    def label_matrix(self) -> tuple[LabelArray, BoolArray]:
        """``pair_label_matrix`` of the ranks, computed once per table (tables don't change)."""
        cached = self.__dict__.get("_label_matrix")
        if cached is None:
            cached = pair_label_matrix(self.ranks)
            object.__setattr__(self, "_label_matrix", cached)
        return cached

    def unit_label_counts(self) -> IntArray:
        """``(n_prompts, n_pairs, 3)`` label counts per unit, computed once per table."""
        cached = self.__dict__.get("_unit_label_counts")
        if cached is None:
            labels, present = self.label_matrix()
            cached = _unit_label_counts(self.prompt_index, labels, present, self.n_prompts)
            object.__setattr__(self, "_unit_label_counts", cached)
        return cached

    @property
    def k_max(self) -> int:
        return int(self.ranks.shape[1])

    def take(self, rows: npt.NDArray[Any]) -> RankingTable:
        """The sub-table of the given rows (indices or boolean mask), same index spaces."""
        return RankingTable(
            prompt_index=self.prompt_index[rows],
            rater_index=self.rater_index[rows],
            ranks=self.ranks[rows],
            n_prompts=self.n_prompts,
            n_raters=self.n_raters,
            one_per_rater=self.one_per_rater,  # a subset keeps it
        )


@dataclass(frozen=True)
class RankingContext:
    """What the rater-quality metrics need besides the ranks, aligned with a ``RankingTable``.

    Per ranking (one row each): ``is_repeat``; ``shown_slots[r, i]``, the slot shown at
    position ``i`` (0 = first) and -1 past the last; ``seconds``, NaN when not reported.
    Per prompt: ``gold_ranks`` (levels like ``RankingTable.ranks``, a NaN row for prompts
    without gold) and ``response_length`` (characters per slot, NaN for absent slots).
    Any part may be None when unknown; the statistics that need it are then undefined.
    """

    is_repeat: BoolArray | None = None
    shown_slots: npt.NDArray[np.integer[Any]] | None = None
    seconds: FloatArray | None = None
    gold_ranks: FloatArray | None = None
    response_length: FloatArray | None = None

    def take(self, rows: npt.NDArray[Any]) -> RankingContext:
        """The context of the given rankings; per-prompt parts are kept whole."""
        return replace(
            self,
            is_repeat=None if self.is_repeat is None else self.is_repeat[rows],
            shown_slots=None if self.shown_slots is None else self.shown_slots[rows],
            seconds=None if self.seconds is None else self.seconds[rows],
        )


def _dense_size(index: IntArray) -> int:
    return int(index.max()) + 1 if index.size else 0


def ranks_from_groups(groups: list[list[int]], slot_of: dict[int, int], k_max: int) -> FloatArray:
    """One ``RankingTable.ranks`` row from tie groups of response ids, best to worst.

    ``slot_of`` maps a response id to its slot within the prompt. Group 0 gets level 1,
    group 1 level 2, and so on; slots no group mentions stay NaN.
    """
    row = np.full(k_max, np.nan)
    for level, group in enumerate(groups, start=1):
        for response_id in group:
            row[slot_of[response_id]] = level
    return row


def one_ranking_per_rater(table: RankingTable) -> RankingTable:
    """Keep only each rater's first ranking of a prompt (repeats must not count as co-raters)."""
    if table.one_per_rater:
        return table
    key = table.prompt_index * max(table.n_raters, 1) + table.rater_index
    _, first_rows = np.unique(key, return_index=True)
    if len(first_rows) < table.n_rankings:
        table = table.take(np.sort(first_rows))
    return replace(table, one_per_rater=True)


def _less_and_equal_counts(ranks: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per slot, how many slots of its row rank strictly better, and how many share its level.

    The second count includes the slot itself; NaN (absent) slots count in neither. One pass
    per slot over the whole array (reductions over a short last axis are slow in numpy).
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    better = np.zeros(ranks.shape)
    equal = np.zeros(ranks.shape)
    for slot in range(ranks.shape[-1]):
        other = ranks[..., slot : slot + 1]
        better += other < ranks
        equal += other == ranks
    return better, equal


def mid_ranks(ranks: FloatArray) -> FloatArray:
    """Convert dense tie levels to mid-ranks, for one row ``(k,)`` or many rows ``(n, k)``.

    Tied slots get the mean of the positions they span: levels [1, 2, 2, 3] -> [1, 2.5, 2.5, 4].
    NaN (absent slot) stays NaN.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    better, equal = _less_and_equal_counts(ranks)
    result = better + (equal + 1.0) / 2.0
    return np.where(np.isnan(ranks), np.nan, result)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementResult:
    """A project-level statistic with the evidence behind it.

    ``value`` is None when undefined (no unit with two raters, no variation, ...).
    ``n_units`` counts the units that entered the statistic; ``n_pairs`` the rater pairs
    compared within those units.
    """

    value: float | None
    n_units: int
    n_pairs: int


@dataclass(frozen=True)
class RaterAgreement:
    """Leave-one-out agreement of one rater with the other raters of the same prompts."""

    rater_index: int
    agreement: float | None
    low: float | None
    high: float | None
    n_pairs: int
    n_rankings: int


@dataclass(frozen=True)
class PairLabels:
    """Every ranking turned into one label per response pair (flat arrays, one entry per label).

    ``pair_slot`` indexes ``slot_pairs(k_max)``; a unit is a (prompt, pair slot).
    ``label`` is +1 if the pair's first slot ranks better, -1 if the second does, 0 for a tie.
    """

    prompt_index: IntArray
    rater_index: IntArray
    pair_slot: IntArray
    label: LabelArray
    n_prompts: int
    n_raters: int
    n_pair_slots: int

    @property
    def unit_index(self) -> IntArray:
        return self.prompt_index * self.n_pair_slots + self.pair_slot

    @property
    def n_unit_slots(self) -> int:
        return self.n_prompts * self.n_pair_slots

    def without_ties(self) -> PairLabels:
        keep = self.label != TIE
        return PairLabels(
            prompt_index=self.prompt_index[keep],
            rater_index=self.rater_index[keep],
            pair_slot=self.pair_slot[keep],
            label=self.label[keep],
            n_prompts=self.n_prompts,
            n_raters=self.n_raters,
            n_pair_slots=self.n_pair_slots,
        )


# --------------------------------------------------------------------------------------------
# Pair labels and pairwise agreement
# --------------------------------------------------------------------------------------------


def slot_pairs(k_max: int) -> list[tuple[int, int]]:
    """The response-slot pairs (i, j), i < j, in the order ``PairLabels.pair_slot`` uses."""
    return [(i, j) for i in range(k_max) for j in range(i + 1, k_max)]


def pair_label_matrix(ranks: FloatArray) -> tuple[LabelArray, BoolArray]:
    """Labels ``(n, n_pairs)`` for every row of ranks and slot pair, and where both are present.

    The compact form every statistic here works on: one byte per label, pairs in
    ``slot_pairs`` order; absent pairs hold 0 and are False in the second array.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    pairs = slot_pairs(ranks.shape[1])
    labels = np.zeros((len(ranks), len(pairs)), dtype=np.int8)
    present = np.zeros((len(ranks), len(pairs)), dtype=bool)
    with np.errstate(invalid="ignore"):
        for pair, (i, j) in enumerate(pairs):
            difference = ranks[:, j] - ranks[:, i]
            present[:, pair] = ~np.isnan(difference)
            labels[:, pair] = (difference > 0).view(np.int8) - (difference < 0).view(np.int8)
    return labels, present


def pair_labels(table: RankingTable) -> PairLabels:
    """One label per ranking and response pair whose two slots are both present."""
    labels, present = table.label_matrix()
    rows, pair_slot = np.nonzero(present)
    return PairLabels(
        prompt_index=table.prompt_index[rows],
        rater_index=table.rater_index[rows],
        pair_slot=pair_slot.astype(np.int64),
        label=labels[rows, pair_slot],
        n_prompts=table.n_prompts,
        n_raters=table.n_raters,
        n_pair_slots=labels.shape[1],
    )


def _unit_label_counts(
    prompt_index: IntArray, labels: LabelArray, present: BoolArray, n_prompts: int
) -> IntArray:
    """``(n_prompts, n_pairs, 3)`` counts of rankings labelling each unit -1, 0 and +1."""
    n_pairs = labels.shape[1]
    counts = np.zeros((n_prompts, n_pairs, N_LABEL_CATEGORIES), dtype=np.int64)
    for pair in range(n_pairs):
        rows = present[:, pair]
        cell = prompt_index[rows] * N_LABEL_CATEGORIES + labels[rows, pair] + 1
        counts[:, pair, :] = np.bincount(cell, minlength=n_prompts * N_LABEL_CATEGORIES).reshape(
            n_prompts, N_LABEL_CATEGORIES
        )
    return counts


def _pairs_of(count: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return count * (count - 1) // 2


def _pairwise_agreement_from_counts(counts: IntArray) -> AgreementResult:
    """Pooled pairwise agreement from unit label counts ``(..., categories)``."""
    raters_per_unit = counts.sum(axis=-1)
    rater_pairs = int(_pairs_of(raters_per_unit).sum())
    agreeing_pairs = int(_pairs_of(counts).sum())
    n_units = int((raters_per_unit >= 2).sum())
    value = agreeing_pairs / rater_pairs if rater_pairs else None
    return AgreementResult(value=value, n_units=n_units, n_pairs=rater_pairs)


def _without_tie_column(counts: IntArray) -> IntArray:
    return counts[..., [0, 2]]


def _label_counts_of(table: RankingTable) -> IntArray:
    return table.unit_label_counts()


def pairwise_agreement(table: RankingTable, include_ties: bool = True) -> AgreementResult:
    """Share of rater pairs that label a response pair the same way, pooled over units.

    A unit is a (prompt, response pair) with at least two raters. ``include_ties=False`` drops
    tie labels first (the InstructGPT / AlpacaFarm convention).
    """
    counts = _label_counts_of(one_ranking_per_rater(table))
    return _pairwise_agreement_from_counts(counts if include_ties else _without_tie_column(counts))


@dataclass(frozen=True)
class PromptAgreementArrays:
    """Per prompt: rankings counted (one per rater), pairwise agreement and rater pairs."""

    n_rankings: IntArray
    agreement: FloatArray  # NaN where the prompt has no two rankings of a common pair
    n_pairs: IntArray


def prompt_pairwise_agreement(table: RankingTable) -> PromptAgreementArrays:
    """Pairwise agreement (ties included) of each prompt on its own."""
    table = one_ranking_per_rater(table)
    counts = _label_counts_of(table)
    rater_pairs = _pairs_of(counts.sum(axis=2)).sum(axis=1)
    agreeing = _pairs_of(counts).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        agreement = np.where(rater_pairs > 0, agreeing / rater_pairs, np.nan)
    return PromptAgreementArrays(
        n_rankings=np.bincount(table.prompt_index, minlength=table.n_prompts),
        agreement=agreement,
        n_pairs=rater_pairs,
    )


# --------------------------------------------------------------------------------------------
# Rater leave-one-out agreement
# --------------------------------------------------------------------------------------------


def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n == 0."""
    low, high = _wilson_bounds(np.array([successes], float), np.array([n], float), z)
    return float(low[0]), float(high[0])


def _wilson_bounds(successes: FloatArray, n: FloatArray, z: float) -> tuple[FloatArray, FloatArray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / n
        z2_over_n = z * z / n
        centre = (p + z2_over_n / 2) / (1 + z2_over_n)
        half_width = (z / (1 + z2_over_n)) * np.sqrt(p * (1 - p) / n + z2_over_n / (4 * n))
    undefined = n <= 0
    low = np.where(undefined, np.nan, np.clip(centre - half_width, 0.0, 1.0))
    high = np.where(undefined, np.nan, np.clip(centre + half_width, 0.0, 1.0))
    return low, high


def rater_leave_one_out_agreement(
    table: RankingTable, include_ties: bool = True, z: float = 1.96
) -> list[RaterAgreement]:
    """For every rater, the share of their pair labels that match other raters' on the same unit.

    Every (this rater, other rater) pair on each unit counts once; the interval is a Wilson
    score interval over that number of compared pairs. Raters without co-raters get None.
    """
    table = one_ranking_per_rater(table)
    labels, present = table.label_matrix()
    if not include_ties:
        present = present & (labels != TIE)
    counts = (
        table.unit_label_counts()
        if include_ties
        else _unit_label_counts(table.prompt_index, labels, present, table.n_prompts)
    )
    agreed = np.zeros(table.n_raters)
    compared = np.zeros(table.n_raters)
    for pair in range(labels.shape[1]):
        rows = present[:, pair]
        unit_counts = counts[table.prompt_index[rows], pair]
        label = labels[rows, pair].astype(np.intp) + 1
        same_label_others = unit_counts[np.arange(len(label)), label] - 1
        other_raters = unit_counts.sum(axis=1) - 1
        raters = table.rater_index[rows]
        agreed += np.bincount(raters, weights=same_label_others, minlength=table.n_raters)
        compared += np.bincount(raters, weights=other_raters, minlength=table.n_raters)
    low, high = _wilson_bounds(agreed, compared, z)
    rankings_per_rater = np.bincount(table.rater_index, minlength=table.n_raters)
    return [
        RaterAgreement(
            rater_index=rater,
            agreement=float(agreed[rater] / compared[rater]) if compared[rater] else None,
            low=_float_or_none(low[rater]),
            high=_float_or_none(high[rater]),
            n_pairs=int(compared[rater]),
            n_rankings=int(rankings_per_rater[rater]),
        )
        for rater in range(table.n_raters)
    ]


# --------------------------------------------------------------------------------------------
# Krippendorff's alpha
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Coincidences:
    matrix: FloatArray  # (V, V) coincidence matrix over the value domain
    values: FloatArray  # (V,) the value domain: mid-ranks 1, 1.5, 2, ..., k_max
    n_units: int
    n_pairs: int


def _mid_rank_domain(k_max: int) -> FloatArray:
    """Mid-ranks are multiples of 1/2 in [1, k_max]: ``2 * mid_rank - 2`` indexes this domain."""
    return 1.0 + np.arange(max(2 * k_max - 1, 1)) / 2.0


def _unit_value_counts(
    table: RankingTable, midranks: FloatArray | None = None
) -> npt.NDArray[np.integer[Any]]:
    """``(n_prompts, k_max, V)`` counts of raters giving each (prompt, slot) each mid-rank."""
    k_max = table.k_max
    n_values = len(_mid_rank_domain(k_max))
    if midranks is None:
        midranks = mid_ranks(table.ranks)
    n_cells = table.n_prompts * k_max * n_values
    code = np.rint(2.0 * np.nan_to_num(midranks, nan=1.0) - 2.0).astype(np.int64)
    unit = table.prompt_index[:, np.newaxis] * k_max + np.arange(k_max)
    # Absent slots go to one extra cell past the end, dropped after counting.
    cell = np.where(np.isnan(midranks), n_cells, unit * n_values + code)
    counts = np.bincount(cell.ravel(), minlength=n_cells + 1)[:n_cells].astype(np.int32)
    return counts.reshape(table.n_prompts, k_max, n_values)


def _coincidences_from_value_counts(value_counts: npt.NDArray[np.integer[Any]]) -> _Coincidences:
    """Coincidence matrix; units are (prompt, response slot), coders are raters."""
    n_values = value_counts.shape[-1]
    per_unit = value_counts.reshape(-1, n_values).astype(np.float64)
    coders = per_unit.sum(axis=1)
    pairable = coders >= 2
    weight = np.zeros_like(coders)
    weight[pairable] = 1.0 / (coders[pairable] - 1.0)
    weighted = per_unit * weight[:, np.newaxis]
    matrix = weighted.T @ per_unit - np.diag(weighted.sum(axis=0))
    k_max = (n_values + 1) // 2
    return _Coincidences(
        matrix=matrix,
        values=_mid_rank_domain(k_max),
        n_units=int(pairable.sum()),
        n_pairs=int(_pairs_of(coders[pairable].astype(np.int64)).sum()),
    )


def _ordinal_distances(value_totals: FloatArray) -> FloatArray:
    """Krippendorff's ordinal metric: (sum of n_g from c to k - (n_c + n_k) / 2) ** 2.

    ``value_totals`` may carry leading batch dimensions ``(..., V)``.
    """
    cumulative = np.cumsum(value_totals, axis=-1)
    index = np.arange(value_totals.shape[-1])
    low, high = np.minimum.outer(index, index), np.maximum.outer(index, index)
    between = cumulative[..., high] - cumulative[..., low] + value_totals[..., low]
    return (between - (value_totals[..., low] + value_totals[..., high]) / 2.0) ** 2


def _interval_distances(values: FloatArray) -> FloatArray:
    return np.subtract.outer(values, values) ** 2


def _alpha_from_coincidences(coincidences: _Coincidences, distances: FloatArray) -> float | None:
    matrix = coincidences.matrix
    value_totals = matrix.sum(axis=0)
    n_pairable = value_totals.sum()
    if n_pairable <= 1:
        return None
    observed = (matrix * distances).sum()
    expected = (np.outer(value_totals, value_totals) * distances).sum() / (n_pairable - 1)
    if expected <= 0:
        return None
    return float(1.0 - observed / expected)


def _alpha(table: RankingTable, level: str) -> AgreementResult:
    coincidences = _coincidences_from_value_counts(_unit_value_counts(one_ranking_per_rater(table)))
    if level == "ordinal":
        distances = _ordinal_distances(coincidences.matrix.sum(axis=0))
    else:
        distances = _interval_distances(coincidences.values)
    return AgreementResult(
        value=_alpha_from_coincidences(coincidences, distances),
        n_units=coincidences.n_units,
        n_pairs=coincidences.n_pairs,
    )


def krippendorff_alpha_ordinal(table: RankingTable) -> AgreementResult:
    """Krippendorff's alpha, ordinal metric, on response mid-ranks (units = prompt x slot)."""
    return _alpha(table, "ordinal")


def krippendorff_alpha_interval(table: RankingTable) -> AgreementResult:
    """Krippendorff's alpha, interval metric, on response mid-ranks (units = prompt x slot)."""
    return _alpha(table, "interval")


# --------------------------------------------------------------------------------------------
# Fleiss' kappa on pair labels and Kendall's W per prompt
# --------------------------------------------------------------------------------------------


def fleiss_kappa_from_counts(counts: npt.ArrayLike) -> float | None:
    """Fleiss' kappa from a (units, categories) table of rater counts.

    Units may have different numbers of raters: per-unit agreement is averaged over units with
    at least two raters and category shares are pooled over their ratings.
    """
    table = np.asarray(counts, dtype=np.float64)
    raters = table.sum(axis=1)
    table, raters = table[raters >= 2], raters[raters >= 2]
    if len(table) == 0:
        return None
    unit_agreement = ((table**2).sum(axis=1) - raters) / (raters * (raters - 1))
    category_share = table.sum(axis=0) / raters.sum()
    chance = float((category_share**2).sum())
    if chance >= 1.0:
        return None
    return (float(unit_agreement.mean()) - chance) / (1.0 - chance)


def _fleiss_kappa_from_label_counts(counts: IntArray) -> AgreementResult:
    counts = counts.reshape(-1, N_LABEL_CATEGORIES)
    raters_per_unit = counts.sum(axis=1)
    used = raters_per_unit >= 2
    return AgreementResult(
        value=fleiss_kappa_from_counts(counts[used]),
        n_units=int(used.sum()),
        n_pairs=int(_pairs_of(raters_per_unit[used]).sum()),
    )


def fleiss_kappa_pairs(table: RankingTable) -> AgreementResult:
    """Fleiss' kappa on pair labels (first better / second better / tie)."""
    return _fleiss_kappa_from_label_counts(_label_counts_of(one_ranking_per_rater(table)))


def chance_agreement(table: RankingTable) -> float | None:
    """Fleiss' chance agreement on pair labels: the sum of squared label shares.

    The agreement two raters reach by labelling at random with the project's label mix.
    """
    counts = _label_counts_of(one_ranking_per_rater(table)).reshape(-1, N_LABEL_CATEGORIES)
    counts = counts[counts.sum(axis=1) >= 2]
    total = counts.sum()
    if total == 0:
        return None
    return float(((counts.sum(axis=0) / total) ** 2).sum())


def _kendall_w_per_prompt(
    table: RankingTable, midranks: FloatArray | None = None
) -> tuple[FloatArray, IntArray]:
    """Kendall's W (tie corrected) per prompt, NaN where undefined, and the raters behind it."""
    present = ~np.isnan(table.ranks)
    slots_per_row = present.sum(axis=1)
    slots_per_prompt = np.zeros(table.n_prompts, dtype=np.int64)
    np.maximum.at(slots_per_prompt, table.prompt_index, slots_per_row)
    complete = (slots_per_row == slots_per_prompt[table.prompt_index]) & (slots_per_row >= 2)
    if midranks is None:
        midranks = mid_ranks(table.ranks)
    table, present, midranks = table.take(complete), present[complete], midranks[complete]
    # Each of the t members of a tie group adds t^2 - 1: t^3 - t per group.
    group_size = _less_and_equal_counts(table.ranks)[1]
    midranks = np.where(present, midranks, 0.0)
    tie_correction_per_row = np.where(present, group_size**2 - 1.0, 0.0).sum(axis=1)

    prompt, n_prompts = table.prompt_index, table.n_prompts
    raters = np.bincount(prompt, minlength=n_prompts).astype(np.float64)
    items = slots_per_prompt.astype(np.float64)
    tie_correction = np.bincount(prompt, weights=tie_correction_per_row, minlength=n_prompts)
    expected_rank_sum = raters * (items + 1.0) / 2.0
    squared_deviation = np.zeros(n_prompts)
    for slot in range(table.k_max):
        rank_sum = np.bincount(prompt, weights=midranks[:, slot], minlength=n_prompts)
        slot_used = np.bincount(prompt, weights=present[:, slot], minlength=n_prompts) > 0
        squared_deviation += np.where(slot_used, (rank_sum - expected_rank_sum) ** 2, 0.0)

    denominator = raters**2 * (items**3 - items) - raters * tie_correction
    defined = (raters >= 2) & (denominator > 1e-9)
    w = np.full(n_prompts, np.nan)
    w[defined] = 12.0 * squared_deviation[defined] / denominator[defined]
    return w, raters.astype(np.int64)


def kendall_w_mean(table: RankingTable) -> AgreementResult:
    """Mean over prompts of Kendall's W (tie corrected) among the prompt's raters.

    Only rankings covering all of the prompt's responses count; a prompt needs two such
    rankings, two responses and some non-tied ranking, otherwise its W is undefined.
    """
    w, raters = _kendall_w_per_prompt(one_ranking_per_rater(table))
    defined = ~np.isnan(w)
    return AgreementResult(
        value=float(w[defined].mean()) if defined.any() else None,
        n_units=int(defined.sum()),
        n_pairs=int(_pairs_of(raters[defined]).sum()),
    )


# --------------------------------------------------------------------------------------------
# Bootstrap over prompts
# --------------------------------------------------------------------------------------------
#
# Every project statistic is a function of sums over prompts of a few per-prompt numbers
# (agreeing and compared rater pairs, kappa's per-unit agreement and label totals, the
# alpha coincidence matrix, W). A bootstrap resample of prompts is then just a weight per
# prompt (how often it was drawn): the resampled statistic comes from ``weights @ features``
# without rebuilding any table.


@dataclass(frozen=True)
class _PromptUnits:
    label_counts: IntArray  # (P, n_pairs, 3)
    value_counts: npt.NDArray[np.integer[Any]]  # (P, k_max, V)
    kendall_w: FloatArray  # (P,) NaN where undefined

    @property
    def n_values(self) -> int:
        return int(self.value_counts.shape[2])


def _prompt_units(table: RankingTable) -> _PromptUnits:
    """Per-prompt unit counts of a table already reduced to one ranking per rater."""
    midranks = mid_ranks(table.ranks)
    return _PromptUnits(
        label_counts=table.unit_label_counts(),
        value_counts=_unit_value_counts(table, midranks),
        kendall_w=_kendall_w_per_prompt(table, midranks)[0],
    )


# Feature columns, then the upper triangle of the alpha coincidence matrix.
_AGREE, _PAIRS, _AGREE_NO_TIES, _PAIRS_NO_TIES = 0, 1, 2, 3
_KAPPA_UNIT_AGREEMENT, _KAPPA_UNITS, _KAPPA_CATEGORIES = 4, 5, slice(6, 9)
_W_SUM, _W_COUNT = 9, 10
_FIRST_COINCIDENCE = 11


def _prompt_features(units: _PromptUnits, prompts: IntArray) -> FloatArray:
    """``(len(prompts), F)`` per-prompt sums whose totals determine every statistic."""
    counts = units.label_counts[prompts].astype(np.float64)
    raters = counts.sum(axis=2)
    decided = counts[:, :, [0, 2]]
    decided_raters = decided.sum(axis=2)
    used = raters >= 2
    with np.errstate(divide="ignore", invalid="ignore"):
        unit_agreement = np.where(
            used, ((counts**2).sum(axis=2) - raters) / (raters * (raters - 1)), 0.0
        )
    values = units.value_counts[prompts].astype(np.float64)
    coders = values.sum(axis=2)
    with np.errstate(divide="ignore"):
        weight = np.where(coders >= 2, 1.0 / (coders - 1.0), 0.0)
    weighted = values * weight[:, :, np.newaxis]
    coincidence = np.einsum("pkv,pku->pvu", weighted, values)
    diagonal = np.arange(units.n_values)
    coincidence[:, diagonal, diagonal] -= weighted.sum(axis=1)
    upper = np.triu_indices(units.n_values)
    w = units.kendall_w[prompts]
    w_defined = ~np.isnan(w)
    return np.column_stack(
        [
            (counts * (counts - 1) / 2).sum(axis=(1, 2)),
            (raters * (raters - 1) / 2).sum(axis=1),
            (decided * (decided - 1) / 2).sum(axis=(1, 2)),
            (decided_raters * (decided_raters - 1) / 2).sum(axis=1),
            unit_agreement.sum(axis=1),
            used.sum(axis=1),
            (counts * used[:, :, np.newaxis]).sum(axis=1),
            np.where(w_defined, w, 0.0),
            w_defined,
            coincidence[:, upper[0], upper[1]],
        ]
    )


def _statistics_from_sums(sums: FloatArray, n_values: int) -> dict[str, FloatArray]:
    """Every statistic of ``PROJECT_STATISTICS`` for each row of feature sums ``(B, F)``.

    NaN where a resample leaves the statistic undefined.
    """
    sums = np.asarray(sums, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pairwise = sums[:, _AGREE] / sums[:, _PAIRS]
        pairwise_no_ties = sums[:, _AGREE_NO_TIES] / sums[:, _PAIRS_NO_TIES]
        observed = sums[:, _KAPPA_UNIT_AGREEMENT] / sums[:, _KAPPA_UNITS]
        categories = sums[:, _KAPPA_CATEGORIES]
        chance = ((categories / categories.sum(axis=1, keepdims=True)) ** 2).sum(axis=1)
        kappa = np.where(chance < 1.0, (observed - chance) / (1.0 - chance), np.nan)
        kendall_w = sums[:, _W_SUM] / sums[:, _W_COUNT]

        upper = np.triu_indices(n_values)
        matrix = np.zeros((len(sums), n_values, n_values))
        matrix[:, upper[0], upper[1]] = sums[:, _FIRST_COINCIDENCE:]
        matrix[:, upper[1], upper[0]] = sums[:, _FIRST_COINCIDENCE:]
        totals = matrix.sum(axis=1)
        n_pairable = totals.sum(axis=1)
        outer = totals[:, :, np.newaxis] * totals[:, np.newaxis, :]

        def alpha(distances: FloatArray) -> FloatArray:
            observed = (matrix * distances).sum(axis=(1, 2))
            expected = (outer * distances).sum(axis=(1, 2)) / (n_pairable - 1)
            defined = (n_pairable > 1) & (expected > 0)
            return np.where(defined, 1.0 - observed / expected, np.nan)

        domain = _mid_rank_domain((n_values + 1) // 2)
        return {
            "pairwise_agreement": pairwise,
            "pairwise_agreement_no_ties": pairwise_no_ties,
            "kappa": kappa,
            "alpha_ordinal": alpha(_ordinal_distances(totals)),
            "alpha_interval": alpha(_interval_distances(domain)),
            "kendall_w": kendall_w,
        }


@dataclass(frozen=True)
class _PromptFeatures:
    """Features of the prompts that enter the statistics, in canonical order, and their sums.

    The order sorts prompts by a fixed projection of their features, so resamples depend
    only on the data, not on how prompts happen to be numbered (by id, or by first
    appearance); equal prompts are interchangeable. Stored in float32 for the resampling
    products (counts stay exact; sums are taken in float64).
    """

    features: npt.NDArray[np.float32]
    totals: FloatArray


def _features_of(units: _PromptUnits, prompts: IntArray) -> _PromptFeatures:
    n_features = _FIRST_COINCIDENCE + units.n_values * (units.n_values + 1) // 2
    features = np.empty((len(prompts), n_features), dtype=np.float32)
    keys = np.empty(len(prompts))
    totals = np.zeros(n_features)
    projection = np.random.default_rng(20240601).uniform(1.0, 2.0, n_features)
    for start in range(0, len(prompts), BOOTSTRAP_BLOCK):
        block = _prompt_features(units, prompts[start : start + BOOTSTRAP_BLOCK])
        totals += block.sum(axis=0)
        keys[start : start + len(block)] = np.round(block @ projection, 6)
        features[start : start + len(block)] = block
    return _PromptFeatures(features=features[np.argsort(keys, kind="stable")], totals=totals)


# Up to this many prompts the bootstrap draws exactly (multinomial counts); beyond it each
# prompt's count is an independent Poisson(1) (the multinomial's limit, the "Poisson
# bootstrap"), which costs a fraction and is indistinguishable at that size.
MULTINOMIAL_LIMIT = 50_000
_POISSON_ONE = stats.poisson.ppf((np.arange(2**16) + 0.5) / 2**16, 1.0).astype(np.float32)


def _bootstrap_weight_blocks(
    n_prompts: int, resamples: int, rng: np.random.Generator, block: int = BOOTSTRAP_BLOCK
) -> Iterator[tuple[int, int, npt.NDArray[np.float32]]]:
    """Yield ``(start, stop, weights)``: how often each prompt of a block was drawn, per resample.

    Each resample draws ``n_prompts`` prompts with replacement. The draws are split among
    blocks first (multinomial by block size), then spread within each block, which gives
    exactly the multinomial counts of drawing from all prompts while holding only one
    ``(resamples, block)`` array at a time. Past ``MULTINOMIAL_LIMIT`` prompts, Poisson(1)
    counts instead.
    """
    starts = np.arange(0, n_prompts, block)
    sizes = np.diff(np.append(starts, n_prompts))
    if n_prompts > MULTINOMIAL_LIMIT:
        for start, size in zip(starts.tolist(), sizes.tolist(), strict=True):
            uniform = rng.integers(0, 2**16, size=(resamples, size), dtype=np.uint16)
            yield start, start + size, _POISSON_ONE[uniform]
        return
    per_block = rng.multinomial(n_prompts, sizes / n_prompts, size=resamples)
    owners = np.arange(resamples, dtype=np.int64)
    for number, (start, size) in enumerate(zip(starts.tolist(), sizes.tolist(), strict=True)):
        draws = per_block[:, number]
        owner = np.repeat(owners, draws)
        picked = rng.integers(0, size, size=int(draws.sum()))
        weights = np.bincount(owner * size + picked, minlength=resamples * size)
        yield start, start + size, weights.reshape(resamples, size).astype(np.float32)


def _bootstrap_draws(
    prompt_features: _PromptFeatures, n_values: int, resamples: int, seed: int
) -> dict[str, FloatArray]:
    """The statistics of ``resamples`` bootstrap resamples of the prompts."""
    features = prompt_features.features
    rng = np.random.default_rng(seed)
    sums = np.zeros((resamples, features.shape[1]))
    for start, stop, weights in _bootstrap_weight_blocks(len(features), resamples, rng):
        sums += weights @ features[start:stop]
    return _statistics_from_sums(sums, n_values)


def _percentile_interval(draws: FloatArray, confidence: float) -> list[float] | None:
    defined = draws[np.isfinite(draws)]
    if defined.size == 0:
        return None
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return [float(low), float(high)]


# --------------------------------------------------------------------------------------------
# Project summary
# --------------------------------------------------------------------------------------------


def _float_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


#: The project-level statistics ``project_agreement`` reports, in display order.
PROJECT_STATISTICS = (
    "pairwise_agreement",
    "pairwise_agreement_no_ties",
    "kappa",
    "alpha_ordinal",
    "alpha_interval",
    "kendall_w",
)


def project_agreement(
    table: RankingTable,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """All project-level agreement numbers in one flat JSON-serializable dict (None = undefined).

    Each statistic in ``PROJECT_STATISTICS`` comes with ``<name>_n_units`` and
    ``<name>_n_pairs`` (the units that entered it and the rater pairs compared within them)
    and ``<name>_ci``: a percentile bootstrap interval ``[low, high]`` over prompts
    (``resamples`` resamples of the prompts with two or more rankings, seeded, so the same
    data gives the same interval), None when undefined or ``resamples`` is 0.
    ``n_rankings`` counts rankings after keeping one per (prompt, rater); ``n_prompts`` counts
    prompts with at least two of them; ``n_raters`` the raters with at least one.

    The values come from the same per-prompt sums as the resamples; the single-statistic
    functions above compute each independently (the tests hold them to each other).
    """
    table = one_ranking_per_rater(table)
    units = _prompt_units(table)
    raters_per_prompt = np.bincount(table.prompt_index, minlength=table.n_prompts)
    prompts = np.flatnonzero(raters_per_prompt >= 2)
    prompt_features = _features_of(units, prompts)
    values = _statistics_from_sums(prompt_features.totals[np.newaxis], units.n_values)
    draws = (
        _bootstrap_draws(prompt_features, units.n_values, resamples, seed)
        if resamples > 0 and prompts.size
        else {}
    )
    evidence = _evidence_counts(units, raters_per_prompt)
    summary: dict[str, Any] = {}
    for name in PROJECT_STATISTICS:
        value = _float_or_none(float(values[name][0]))
        summary[name] = value
        summary[f"{name}_n_units"], summary[f"{name}_n_pairs"] = evidence[name]
        summary[f"{name}_ci"] = (
            _percentile_interval(draws[name], confidence)
            if name in draws and value is not None
            else None
        )
    summary["n_prompts"] = int(prompts.size)
    summary["n_rankings"] = table.n_rankings
    summary["n_raters"] = int(np.unique(table.rater_index).size)
    return summary


def _evidence_counts(
    units: _PromptUnits, raters_per_prompt: IntArray
) -> dict[str, tuple[int, int]]:
    """(units used, rater pairs compared) for each statistic."""

    def units_and_pairs(raters: IntArray) -> tuple[int, int]:
        return int((raters >= 2).sum()), int(_pairs_of(raters).sum())

    labels = units.label_counts.sum(axis=2)
    decided = _without_tie_column(units.label_counts).sum(axis=2)
    coders = units.value_counts.sum(axis=2)
    defined_w = ~np.isnan(units.kendall_w)
    alpha = units_and_pairs(coders)
    return {
        "pairwise_agreement": units_and_pairs(labels),
        "pairwise_agreement_no_ties": units_and_pairs(decided),
        "kappa": units_and_pairs(labels),
        "alpha_ordinal": alpha,
        "alpha_interval": alpha,
        "kendall_w": (int(defined_w.sum()), int(_pairs_of(raters_per_prompt[defined_w]).sum())),
    }


# --------------------------------------------------------------------------------------------
# Rater quality
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaterQuality:
    """One rater's behaviour, each statistic with the count of evidence behind it.

    Everything except self-consistency is over the rater's counted rankings (repeats left
    out); repeats only feed self-consistency. A statistic is None without evidence.

    - ``gold_accuracy``: share of the rater's response pairs on gold prompts labelled as the
      gold ranking labels them (a tie must match a tie), over ``gold_pairs`` in
      ``gold_rankings``.
    - ``self_consistency``: share of the pairs of a repeat labelled as in the same rater's
      first ranking of that prompt, over ``repeat_pairs`` in ``repeat_rankings``.
    - ``first_shown_win_rate``: among shown-adjacent pairs (positions i and i+1) the rater
      did not tie, the share the earlier-shown response won, over ``position_pairs``;
      ``position_p_value`` is the two-sided exact binomial test against 0.5. Outcomes of
      adjacent pairs under a random shown order are negatively correlated, so the test is
      conservative (it never over-reports bias); over all pairs it would not be.
    - ``straight_lining_rate``: share of rankings (of two or more responses) that order every
      response strictly and exactly as shown, ``straight_lined`` of ``rankings``;
      ``straight_lining_chance`` is that rate under random strict ranking (mean 1/K!).
    - ``median_seconds`` over ``timed_rankings``; ``speed_ratio``: the median over them of
      seconds / the project's median seconds for prompts of similar total response length
      (``SPEED_LENGTH_BUCKETS`` quantile buckets).
    - ``tie_rate``: share of the rater's pair labels that are ties, over ``labelled_pairs``.
    - ``longer_win_rate``: among pairs the rater decided whose responses differ in length,
      the share the longer one won, over ``length_pairs``.
    """

    rater_index: int
    rankings: int
    gold_accuracy: float | None
    gold_pairs: int
    gold_rankings: int
    self_consistency: float | None
    repeat_pairs: int
    repeat_rankings: int
    first_shown_win_rate: float | None
    position_p_value: float | None
    position_pairs: int
    straight_lining_rate: float | None
    straight_lined: int
    straight_lining_chance: float | None
    median_seconds: float | None
    speed_ratio: float | None
    timed_rankings: int
    tie_rate: float | None
    labelled_pairs: int
    longer_win_rate: float | None
    length_pairs: int


@dataclass(frozen=True)
class _Groups:
    """Who each ranking belongs to (a rater, or one group for the pooled baseline)."""

    index: IntArray
    size: int

    def sum(self, per_row: npt.ArrayLike, rows: IntArray | None = None) -> FloatArray:
        owners = self.index if rows is None else self.index[rows]
        weights = np.asarray(per_row, dtype=np.float64)
        return np.bincount(owners, weights=weights, minlength=self.size).astype(np.float64)

    def count(self, per_row: npt.ArrayLike, rows: IntArray | None = None) -> IntArray:
        return np.rint(self.sum(per_row, rows)).astype(np.int64)

    def medians(self, values: FloatArray, rows: IntArray) -> FloatArray:
        return group_medians(self.index[rows], values, self.size)


Columns = dict[str, npt.NDArray[Any]]


def rater_quality(table: RankingTable, context: RankingContext) -> list[RaterQuality]:
    """Every rater's ``RaterQuality``, vectorized over all rankings (repeats included)."""
    columns = _quality_columns(table, context, _Groups(table.rater_index, table.n_raters))
    return [_quality_row(columns, rater) for rater in range(table.n_raters)]


def pooled_quality(table: RankingTable, context: RankingContext) -> RaterQuality:
    """The same statistics pooled over all raters: the project's baseline for each."""
    groups = _Groups(np.zeros(table.n_rankings, dtype=np.int64), 1)
    return _quality_row(_quality_columns(table, context, groups), 0)


def group_medians(group: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    """Median of ``values`` per group (NaN values ignored; NaN for groups without any)."""
    keep = ~np.isnan(values)
    group, values = group[keep], values[keep]
    order = np.argsort(values, kind="stable")
    # Then a stable sort by group: a radix sort when the group fits 16 bits.
    by_group = group[order].astype(np.uint16) if n_groups <= 2**16 else group[order]
    order = order[np.argsort(by_group, kind="stable")]
    group, values = group[order], values[order]
    counts = np.bincount(group, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    has_values = counts > 0
    low = np.where(has_values, starts + (counts - 1) // 2, 0)
    high = np.where(has_values, starts + counts // 2, 0)
    if values.size == 0:
        return np.full(n_groups, np.nan)
    return np.where(has_values, (values[low] + values[high]) / 2.0, np.nan)


def binomial_two_sided_p_value(successes: npt.ArrayLike, trials: npt.ArrayLike) -> FloatArray:
    """Exact two-sided binomial test against p = 0.5 (as ``scipy.stats.binomtest``), vectorized.

    With p = 0.5 the distribution is symmetric, so the outcomes at least as unlikely as the
    observed one are the two tails: ``2 * P(X <= min(k, n - k))``, capped at 1. NaN for n = 0.
    """
    successes = np.asarray(successes, dtype=np.float64)
    trials = np.asarray(trials, dtype=np.float64)
    tail = np.minimum(successes, trials - successes)
    p_value = np.minimum(1.0, 2.0 * stats.binom.cdf(tail, trials, 0.5))
    return np.where(trials > 0, p_value, np.nan)


def _quality_row(columns: Columns, index: int) -> RaterQuality:
    values: dict[str, Any] = {}
    for name, column in columns.items():
        if np.issubdtype(column.dtype, np.integer):
            values[name] = int(column[index])
        else:
            values[name] = _float_or_none(float(column[index]))
    return RaterQuality(rater_index=index, **values)


def _ratio(numerator: npt.NDArray[Any], denominator: npt.NDArray[Any]) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _unknown(groups: _Groups, values: tuple[str, ...], counts: tuple[str, ...]) -> Columns:
    """Columns of statistics whose input is missing: values undefined, counts zero."""
    columns: Columns = {name: np.full(groups.size, np.nan) for name in values}
    columns.update({name: np.zeros(groups.size, dtype=np.int64) for name in counts})
    return columns


def _quality_columns(table: RankingTable, context: RankingContext, groups: _Groups) -> Columns:
    n = table.n_rankings
    is_repeat = context.is_repeat if context.is_repeat is not None else np.zeros(n, dtype=bool)
    counted = ~is_repeat
    labels, present = table.label_matrix()
    labelled = present & counted[:, np.newaxis]
    labelled_pairs = groups.count(labelled.sum(axis=1))
    columns: Columns = {
        "rankings": groups.count(counted),
        "labelled_pairs": labelled_pairs,
        "tie_rate": _ratio(groups.count((labelled & (labels == TIE)).sum(axis=1)), labelled_pairs),
    }
    columns.update(_gold_accuracy(table, context, counted, labels, present, groups))
    columns.update(_self_consistency(table, is_repeat, labels, present, groups))
    columns.update(_position_bias(table, context, counted, groups))
    columns.update(_straight_lining(table, context, counted, groups))
    columns.update(_speed(table, context, counted, groups))
    columns.update(_length_bias(table, context, counted, labels, present, groups))
    return columns


def _gold_accuracy(
    table: RankingTable,
    context: RankingContext,
    counted: BoolArray,
    labels: LabelArray,
    present: BoolArray,
    groups: _Groups,
) -> Columns:
    if context.gold_ranks is None:
        return _unknown(groups, ("gold_accuracy",), ("gold_pairs", "gold_rankings"))
    gold_labels, gold_present = pair_label_matrix(context.gold_ranks)
    is_gold = gold_present.any(axis=1)
    rows = np.flatnonzero(counted & is_gold[table.prompt_index])
    prompts = table.prompt_index[rows]
    compared = present[rows] & gold_present[prompts]
    matched = compared & (labels[rows] == gold_labels[prompts])
    gold_pairs = groups.count(compared.sum(axis=1), rows)
    return {
        "gold_accuracy": _ratio(groups.count(matched.sum(axis=1), rows), gold_pairs),
        "gold_pairs": gold_pairs,
        "gold_rankings": groups.count(np.ones(len(rows)), rows),
    }


def _self_consistency(
    table: RankingTable,
    is_repeat: BoolArray,
    labels: LabelArray,
    present: BoolArray,
    groups: _Groups,
) -> Columns:
    """Each repeat against the same rater's first counted ranking of the prompt."""
    key = table.prompt_index * max(table.n_raters, 1) + table.rater_index
    originals = np.flatnonzero(~is_repeat)
    original_keys, first = np.unique(key[originals], return_index=True)
    repeats = np.flatnonzero(is_repeat)
    found = np.searchsorted(original_keys, key[repeats])
    has_original = found < original_keys.size
    has_original[has_original] = original_keys[found[has_original]] == key[repeats][has_original]
    repeats, found = repeats[has_original], found[has_original]
    original_rows = originals[first[found]]
    compared = present[repeats] & present[original_rows]
    matched = compared & (labels[repeats] == labels[original_rows])
    repeat_pairs = groups.count(compared.sum(axis=1), repeats)
    return {
        "self_consistency": _ratio(groups.count(matched.sum(axis=1), repeats), repeat_pairs),
        "repeat_pairs": repeat_pairs,
        "repeat_rankings": groups.count(np.ones(len(repeats)), repeats),
    }


def _level_shown_at(
    table: RankingTable, shown_slots: npt.NDArray[np.integer[Any]], position: int
) -> FloatArray:
    """The level each ranking gave the response shown at ``position``; NaN past its end."""
    slots = shown_slots[:, position].astype(np.int64)
    shown = slots >= 0
    levels = table.ranks[np.arange(table.n_rankings), np.where(shown, slots, 0)]
    return np.where(shown, levels, np.nan)


def _position_bias(
    table: RankingTable, context: RankingContext, counted: BoolArray, groups: _Groups
) -> Columns:
    if context.shown_slots is None or context.shown_slots.shape[1] < 2:
        return _unknown(groups, ("first_shown_win_rate", "position_p_value"), ("position_pairs",))
    decided_per_row = np.zeros(table.n_rankings)
    earlier_wins_per_row = np.zeros(table.n_rankings)
    earlier = _level_shown_at(table, context.shown_slots, 0)
    for position in range(1, context.shown_slots.shape[1]):
        later = _level_shown_at(table, context.shown_slots, position)
        with np.errstate(invalid="ignore"):
            decided = counted & ~np.isnan(earlier) & ~np.isnan(later) & (earlier != later)
            decided_per_row += decided
            earlier_wins_per_row += decided & (earlier < later)
        earlier = later
    pairs = groups.count(decided_per_row)
    wins = groups.count(earlier_wins_per_row)
    return {
        "first_shown_win_rate": _ratio(wins, pairs),
        "position_p_value": binomial_two_sided_p_value(wins, pairs),
        "position_pairs": pairs,
    }


def _straight_lining(
    table: RankingTable, context: RankingContext, counted: BoolArray, groups: _Groups
) -> Columns:
    if context.shown_slots is None:
        return _unknown(
            groups, ("straight_lining_rate", "straight_lining_chance"), ("straight_lined",)
        )
    present_slots = (~np.isnan(table.ranks)).sum(axis=1)
    # Dense levels: a ranking is strict (no ties) exactly when its worst level is its size.
    strict = np.fmax.reduce(table.ranks, axis=1, initial=0.0) == present_slots
    shown_count = (context.shown_slots >= 0).sum(axis=1)
    in_shown_order = strict & (shown_count == present_slots)
    for position in range(context.shown_slots.shape[1]):
        level = _level_shown_at(table, context.shown_slots, position)
        in_shown_order &= np.isnan(level) | (level == position + 1)
    eligible = counted & (present_slots >= 2)
    chance_of_size = 1.0 / np.array([math.factorial(k) for k in range(table.k_max + 1)])
    eligible_rankings = groups.count(eligible)
    return {
        "straight_lining_rate": _ratio(groups.count(eligible & in_shown_order), eligible_rankings),
        "straight_lined": groups.count(eligible & in_shown_order),
        "straight_lining_chance": _ratio(
            groups.sum(np.where(eligible, chance_of_size[present_slots], 0.0)), eligible_rankings
        ),
    }


def speed_length_buckets(
    total_length: FloatArray, n_buckets: int = SPEED_LENGTH_BUCKETS
) -> IntArray:
    """Bucket of each value by quantiles of the values themselves (0 = shortest)."""
    known = total_length[~np.isnan(total_length)]
    if known.size == 0:
        return np.zeros(len(total_length), dtype=np.int64)
    edges = np.quantile(known, np.arange(1, n_buckets) / n_buckets)
    return np.searchsorted(edges, total_length, side="right").astype(np.int64)


def _speed(
    table: RankingTable, context: RankingContext, counted: BoolArray, groups: _Groups
) -> Columns:
    if context.seconds is None:
        return _unknown(groups, ("median_seconds", "speed_ratio"), ("timed_rankings",))
    timed = np.flatnonzero(counted & ~np.isnan(context.seconds))
    seconds = context.seconds[timed]
    if context.response_length is not None:
        prompt_length = np.nansum(context.response_length, axis=1)
        bucket = speed_length_buckets(prompt_length[table.prompt_index[timed]])
    else:
        bucket = np.zeros(len(timed), dtype=np.int64)
    project_median = group_medians(bucket, seconds, SPEED_LENGTH_BUCKETS)[bucket]
    ratio = _ratio(seconds, project_median)
    return {
        "median_seconds": groups.medians(seconds, timed),
        "speed_ratio": groups.medians(ratio, timed),
        "timed_rankings": groups.count(np.ones(len(timed)), timed),
    }


def _length_bias(
    table: RankingTable,
    context: RankingContext,
    counted: BoolArray,
    labels: LabelArray,
    present: BoolArray,
    groups: _Groups,
) -> Columns:
    if context.response_length is None:
        return _unknown(groups, ("longer_win_rate",), ("length_pairs",))
    length = context.response_length
    pairs_per_row = np.zeros(table.n_rankings)
    longer_wins_per_row = np.zeros(table.n_rankings)
    for pair, (i, j) in enumerate(slot_pairs(table.k_max)):
        first = length[table.prompt_index, i]
        second = length[table.prompt_index, j]
        label = labels[:, pair]
        with np.errstate(invalid="ignore"):
            compared = counted & present[:, pair] & (label != TIE) & (first != second)
            compared &= ~np.isnan(first) & ~np.isnan(second)
            pairs_per_row += compared
            longer_wins_per_row += compared & ((label == FIRST_BETTER) == (first > second))
    length_pairs = groups.count(pairs_per_row)
    return {
        "longer_win_rate": _ratio(groups.count(longer_wins_per_row), length_pairs),
        "length_pairs": length_pairs,
    }
