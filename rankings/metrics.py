"""Agreement and rater-quality statistics over a project's rankings, vectorized with numpy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Pair labels: the first slot of the pair is better, the second is better, or they tie.
FIRST_BETTER = 1
SECOND_BETTER = -1
TIE = 0
N_LABEL_CATEGORIES = 3


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
    if table.n_rankings == 0:
        return table
    key = table.prompt_index * max(table.n_raters, 1) + table.rater_index
    _, first_rows = np.unique(key, return_index=True)
    if len(first_rows) == table.n_rankings:
        return table
    return table.take(np.sort(first_rows))


def _less_and_equal_counts(ranks: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per slot, how many slots of its row rank strictly better, and how many share its level.

    The second count includes the slot itself; NaN (absent) slots count in neither.
    """
    own = ranks[..., :, np.newaxis]
    others = ranks[..., np.newaxis, :]
    better = (others < own).sum(axis=-1).astype(np.float64)
    equal = (others == own).sum(axis=-1).astype(np.float64)
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
    label: npt.NDArray[np.int8]
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


def pair_labels(table: RankingTable) -> PairLabels:
    """One label per ranking and response pair whose two slots are both present."""
    pairs = slot_pairs(table.k_max)
    prompts, raters, slots, labels = [], [], [], []
    for pair_slot, (i, j) in enumerate(pairs):
        first, second = table.ranks[:, i], table.ranks[:, j]
        present = ~(np.isnan(first) | np.isnan(second))
        prompts.append(table.prompt_index[present])
        raters.append(table.rater_index[present])
        slots.append(np.full(int(present.sum()), pair_slot, dtype=np.int64))
        labels.append(np.sign(second[present] - first[present]).astype(np.int8))
    return PairLabels(
        prompt_index=_concat_int(prompts),
        rater_index=_concat_int(raters),
        pair_slot=_concat_int(slots),
        label=np.concatenate(labels) if labels else np.zeros(0, dtype=np.int8),
        n_prompts=table.n_prompts,
        n_raters=table.n_raters,
        n_pair_slots=len(pairs),
    )


def _concat_int(parts: list[IntArray]) -> IntArray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _label_counts_per_unit(labels: PairLabels) -> IntArray:
    """(n_unit_slots, 3) counts of raters giving each label (-1, 0, +1) on each unit."""
    cell = labels.unit_index * N_LABEL_CATEGORIES + (labels.label.astype(np.int64) + 1)
    counts = np.bincount(cell, minlength=labels.n_unit_slots * N_LABEL_CATEGORIES)
    return counts.astype(np.int64).reshape(labels.n_unit_slots, N_LABEL_CATEGORIES)


def _pairs_of(count: IntArray) -> IntArray:
    return count * (count - 1) // 2


def _pairwise_agreement_from_counts(counts: IntArray) -> AgreementResult:
    raters_per_unit = counts.sum(axis=1)
    rater_pairs = int(_pairs_of(raters_per_unit).sum())
    agreeing_pairs = int(_pairs_of(counts).sum())
    n_units = int((raters_per_unit >= 2).sum())
    value = agreeing_pairs / rater_pairs if rater_pairs else None
    return AgreementResult(value=value, n_units=n_units, n_pairs=rater_pairs)


def pairwise_agreement(table: RankingTable, include_ties: bool = True) -> AgreementResult:
    """Share of rater pairs that label a response pair the same way, pooled over units.

    A unit is a (prompt, response pair) with at least two raters. ``include_ties=False`` drops
    tie labels first (the InstructGPT / AlpacaFarm convention).
    """
    labels = pair_labels(one_ranking_per_rater(table))
    used = labels if include_ties else labels.without_ties()
    return _pairwise_agreement_from_counts(_label_counts_per_unit(used))


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


def _rater_leave_one_out_from_labels(
    labels: PairLabels, rankings_per_rater: IntArray, z: float
) -> list[RaterAgreement]:
    counts = _label_counts_per_unit(labels)
    raters_per_unit = counts.sum(axis=1)
    unit = labels.unit_index
    same_label_others = counts[unit, labels.label.astype(np.int64) + 1] - 1
    other_raters = raters_per_unit[unit] - 1
    agreed = np.bincount(labels.rater_index, weights=same_label_others, minlength=labels.n_raters)
    compared = np.bincount(labels.rater_index, weights=other_raters, minlength=labels.n_raters)
    low, high = _wilson_bounds(agreed, compared, z)
    return [
        RaterAgreement(
            rater_index=rater,
            agreement=float(agreed[rater] / compared[rater]) if compared[rater] else None,
            low=_float_or_none(low[rater]),
            high=_float_or_none(high[rater]),
            n_pairs=int(compared[rater]),
            n_rankings=int(rankings_per_rater[rater]),
        )
        for rater in range(labels.n_raters)
    ]


def rater_leave_one_out_agreement(
    table: RankingTable, include_ties: bool = True, z: float = 1.96
) -> list[RaterAgreement]:
    """For every rater, the share of their pair labels that match other raters' on the same unit.

    Every (this rater, other rater) pair on each unit counts once; the interval is a Wilson
    score interval over that number of compared pairs. Raters without co-raters get None.
    """
    table = one_ranking_per_rater(table)
    labels = pair_labels(table)
    rankings_per_rater = np.bincount(table.rater_index, minlength=table.n_raters)
    return _rater_leave_one_out_from_labels(
        labels if include_ties else labels.without_ties(), rankings_per_rater, z
    )


# --------------------------------------------------------------------------------------------
# Krippendorff's alpha
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Coincidences:
    matrix: FloatArray  # (V, V) coincidence matrix over the value domain
    values: FloatArray  # (V,) the value domain: mid-ranks 1, 1.5, 2, ..., k_max
    n_units: int
    n_pairs: int


def _mid_rank_coincidences(table: RankingTable) -> _Coincidences:
    """Coincidence matrix of mid-ranks; units are (prompt, response slot), coders are raters.

    Mid-ranks are multiples of 1/2 in [1, k_max], so ``2 * mid_rank - 2`` indexes the domain.
    """
    k_max = table.k_max
    n_values = max(2 * k_max - 1, 1)
    values = 1.0 + np.arange(n_values) / 2.0
    midranks = mid_ranks(table.ranks)
    row, slot = np.nonzero(~np.isnan(midranks))
    unit = table.prompt_index[row] * k_max + slot
    code = np.rint(2.0 * midranks[row, slot] - 2.0).astype(np.int64)
    n_unit_slots = table.n_prompts * k_max
    cells = np.bincount(unit * n_values + code, minlength=n_unit_slots * n_values)
    value_counts = cells.reshape(n_unit_slots, n_values).astype(np.float64)
    coders = value_counts.sum(axis=1)
    pairable = coders >= 2
    weight = np.zeros_like(coders)
    weight[pairable] = 1.0 / (coders[pairable] - 1.0)
    weighted = value_counts * weight[:, np.newaxis]
    matrix = weighted.T @ value_counts - np.diag(weighted.sum(axis=0))
    return _Coincidences(
        matrix=matrix,
        values=values,
        n_units=int(pairable.sum()),
        n_pairs=int(_pairs_of(coders[pairable].astype(np.int64)).sum()),
    )


def _ordinal_distances(value_totals: FloatArray) -> FloatArray:
    """Krippendorff's ordinal metric: (sum of n_g from c to k - (n_c + n_k) / 2) ** 2."""
    cumulative = np.cumsum(value_totals)
    index = np.arange(len(value_totals))
    low, high = np.minimum.outer(index, index), np.maximum.outer(index, index)
    between = cumulative[high] - cumulative[low] + value_totals[low]
    return (between - (value_totals[low] + value_totals[high]) / 2.0) ** 2


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
    coincidences = _mid_rank_coincidences(one_ranking_per_rater(table))
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
    raters_per_unit = counts.sum(axis=1)
    used = raters_per_unit >= 2
    return AgreementResult(
        value=fleiss_kappa_from_counts(counts[used]),
        n_units=int(used.sum()),
        n_pairs=int(_pairs_of(raters_per_unit[used]).sum()),
    )


def fleiss_kappa_pairs(table: RankingTable) -> AgreementResult:
    """Fleiss' kappa on pair labels (first better / second better / tie)."""
    labels = pair_labels(one_ranking_per_rater(table))
    return _fleiss_kappa_from_label_counts(_label_counts_per_unit(labels))


def kendall_w_mean(table: RankingTable) -> AgreementResult:
    """Mean over prompts of Kendall's W (tie corrected) among the prompt's raters.

    Only rankings covering all of the prompt's responses count; a prompt needs two such
    rankings, two responses and some non-tied ranking, otherwise its W is undefined.
    """
    table = one_ranking_per_rater(table)
    present = ~np.isnan(table.ranks)
    slots_per_row = present.sum(axis=1)
    slots_per_prompt = np.zeros(table.n_prompts, dtype=np.int64)
    np.maximum.at(slots_per_prompt, table.prompt_index, slots_per_row)
    complete = (slots_per_row == slots_per_prompt[table.prompt_index]) & (slots_per_row >= 2)
    table, present = table.take(complete), present[complete]

    better, equal = _less_and_equal_counts(table.ranks)
    midranks = np.where(present, better + (equal + 1.0) / 2.0, 0.0)
    tie_correction_per_row = np.where(present, equal**2 - 1.0, 0.0).sum(axis=1)

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
    w = 12.0 * squared_deviation[defined] / denominator[defined]
    return AgreementResult(
        value=float(w.mean()) if w.size else None,
        n_units=int(defined.sum()),
        n_pairs=int(_pairs_of(raters[defined].astype(np.int64)).sum()),
    )


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


def project_agreement(table: RankingTable) -> dict[str, float | int | None]:
    """All project-level agreement numbers in one flat JSON-serializable dict (None = undefined).

    Each statistic in ``PROJECT_STATISTICS`` comes with ``<name>_n_units`` and
    ``<name>_n_pairs``: the units that entered it and the rater pairs compared within them.
    ``n_rankings`` counts rankings after keeping one per (prompt, rater); ``n_prompts`` counts
    prompts with at least two of them; ``n_raters`` the raters with at least one.
    """
    table = one_ranking_per_rater(table)
    label_counts = _label_counts_per_unit(pair_labels(table))
    coincidences = _mid_rank_coincidences(table)
    value_totals = coincidences.matrix.sum(axis=0)
    results = {
        "pairwise_agreement": _pairwise_agreement_from_counts(label_counts),
        "pairwise_agreement_no_ties": _pairwise_agreement_from_counts(label_counts[:, [0, 2]]),
        "kappa": _fleiss_kappa_from_label_counts(label_counts),
        "alpha_ordinal": AgreementResult(
            value=_alpha_from_coincidences(coincidences, _ordinal_distances(value_totals)),
            n_units=coincidences.n_units,
            n_pairs=coincidences.n_pairs,
        ),
        "alpha_interval": AgreementResult(
            value=_alpha_from_coincidences(coincidences, _interval_distances(coincidences.values)),
            n_units=coincidences.n_units,
            n_pairs=coincidences.n_pairs,
        ),
        "kendall_w": kendall_w_mean(table),
    }
    summary: dict[str, float | int | None] = {}
    for name, result in results.items():
        summary[name] = _float_or_none(result.value)
        summary[f"{name}_n_units"] = result.n_units
        summary[f"{name}_n_pairs"] = result.n_pairs
    rankings_per_prompt = np.bincount(table.prompt_index, minlength=table.n_prompts)
    summary["n_prompts"] = int((rankings_per_prompt >= 2).sum())
    summary["n_rankings"] = table.n_rankings
    summary["n_raters"] = int(np.unique(table.rater_index).size)
    return summary
