"""The dense ranking table the statistics read, and the pair labels they share.

A project's rankings become one row per ranking: the tie level each response slot got
(1 = best, NaN where the prompt has no such slot). Every ranking then becomes one label per
response pair: first better (+1), second better (-1) or tie (0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
LabelArray = npt.NDArray[np.int8]

# Pair labels: the first slot of the pair is better, the second is better, or they tie.
FIRST_BETTER = 1
SECOND_BETTER = -1
TIE = 0
N_LABEL_CATEGORIES = 3


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
        cached: tuple[LabelArray, BoolArray] | None = self.__dict__.get("_label_matrix")
        if cached is None:
            cached = pair_label_matrix(self.ranks)
            object.__setattr__(self, "_label_matrix", cached)
        return cached

    def unit_label_counts(self) -> IntArray:
        """``(n_prompts, n_pairs, 3)`` label counts per unit, computed once per table."""
        cached: IntArray | None = self.__dict__.get("_unit_label_counts")
        if cached is None:
            labels, present = self.label_matrix()
            cached = unit_label_counts(self.prompt_index, labels, present, self.n_prompts)
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


def less_and_equal_counts(ranks: FloatArray) -> tuple[FloatArray, FloatArray]:
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
    better, equal = less_and_equal_counts(ranks)
    result = better + (equal + 1.0) / 2.0
    return np.where(np.isnan(ranks), np.nan, result)


def slot_pairs(k_max: int) -> list[tuple[int, int]]:
    """The response-slot pairs (i, j), i < j, in the order the pair label columns use."""
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


def orientation_free(label_totals: npt.ArrayLike) -> FloatArray:
    """Label totals ``(..., 3)`` with the two "better" labels replaced by their mean.

    A pair (i, j) has no natural orientation: which response counts as "first" comes from
    the import order. Chance agreement (Fleiss) computed from raw -1/+1 shares would change
    with that order; with the two folded together it is the same for any order.
    """
    folded = np.asarray(label_totals, dtype=np.float64).copy()
    better = (folded[..., 0] + folded[..., 2]) / 2
    folded[..., 0] = better
    folded[..., 2] = better
    return folded


def unit_label_counts(
    prompt_index: IntArray, labels: LabelArray, present: BoolArray, n_prompts: int
) -> IntArray:
    """``(n_prompts, n_pairs, 3)`` counts of rankings labelling each unit -1, 0 and +1.

    A unit is a (prompt, response pair).
    """
    n_pairs = labels.shape[1]
    counts = np.zeros((n_prompts, n_pairs, N_LABEL_CATEGORIES), dtype=np.int64)
    for pair in range(n_pairs):
        rows = present[:, pair]
        cell = prompt_index[rows] * N_LABEL_CATEGORIES + labels[rows, pair] + 1
        counts[:, pair, :] = np.bincount(cell, minlength=n_prompts * N_LABEL_CATEGORIES).reshape(
            n_prompts, N_LABEL_CATEGORIES
        )
    return counts


def without_tie_column(counts: IntArray) -> IntArray:
    """Label counts ``(..., 3)`` with the tie column dropped: ``(..., 2)``."""
    return counts[..., [0, 2]]


def pairs_of(count: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """How many pairs ``count`` things make, elementwise."""
    pairs: npt.NDArray[Any] = count * (count - 1) // 2
    return pairs


def float_or_none(value: float | None) -> float | None:
    """A finite float, or None for None, NaN and infinities (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


_ROW_HASH_MULTIPLIERS = np.random.default_rng(20261203).integers(
    1, 2**63, size=64, dtype=np.uint64
) | np.uint64(1)


def distinct_rows(rows: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], IntArray]:
    """``np.unique(rows, axis=0, return_inverse=True)``: the distinct rows in lexicographic
    order and each row's index among them, with the same answer but a fraction of the cost.

    ``np.unique`` sorts the rows field by field; here each row is hashed to one integer,
    the integers are sorted, the grouping is checked row for row, and only the distinct
    rows are put in order. Rows with NaN (which ``np.unique`` never merges), or a hash
    collision, take ``np.unique`` itself.
    """
    rows = np.asarray(rows)
    if rows.ndim != 2 or not 1 < rows.shape[1] <= len(_ROW_HASH_MULTIPLIERS):
        return _numpy_unique_rows(rows)  # one value a row: numpy's own sort is the fast way
    if len(rows) == 0 or rows.dtype.kind not in "fiub":
        return _numpy_unique_rows(rows)
    if rows.dtype.kind == "f":
        if np.isnan(rows).any():
            return _numpy_unique_rows(rows)
        rows = rows + 0.0  # -0.0 and 0.0 are equal rows: one bit pattern
    values = np.ascontiguousarray(rows)
    bits = values.view(np.dtype(f"u{values.dtype.itemsize}")).astype(np.uint64)
    hashed = (bits ^ (bits >> np.uint64(31))) * _ROW_HASH_MULTIPLIERS[: rows.shape[1]]
    keys = np.bitwise_xor.reduce(hashed, axis=1)
    _, first, by_key = np.unique(keys, return_index=True, return_inverse=True)
    candidates = values[first]
    if not np.array_equal(candidates[by_key], values):
        return _numpy_unique_rows(rows)  # a collision: two different rows, one hash
    order = np.lexsort(candidates.T[::-1])
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order))
    return candidates[order], place[by_key.reshape(-1)]


def _numpy_unique_rows(rows: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], IntArray]:
    distinct, inverse = np.unique(rows, axis=0, return_inverse=True)
    return distinct, inverse.reshape(-1).astype(np.int64)
