"""Each rater's behaviour: gold accuracy, self-consistency on repeats, position bias,
straight-lining, speed relative to the project, tie rate and length bias, each with the count
of evidence behind it; vectorized over all of a project's rankings at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from rankings.stats.tables import (
    FIRST_BETTER,
    TIE,
    BoolArray,
    FloatArray,
    IntArray,
    LabelArray,
    RankingContext,
    RankingTable,
    distinct_rows,
    float_or_none,
    pair_label_matrix,
    slot_pairs,
)

#: Speed is compared within buckets of prompts of similar total response length.
SPEED_LENGTH_BUCKETS = 5


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
class Owners:
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
    columns = quality_columns(table, context, Owners(table.rater_index, table.n_raters))
    return [quality_row(columns, rater) for rater in range(table.n_raters)]


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


def quality_row(columns: Columns, index: int) -> RaterQuality:
    values: dict[str, Any] = {}
    for name, column in columns.items():
        if np.issubdtype(column.dtype, np.integer):
            values[name] = int(column[index])
        else:
            values[name] = float_or_none(float(column[index]))
    return RaterQuality(rater_index=index, **values)


def _ratio(numerator: npt.NDArray[Any], denominator: npt.NDArray[Any]) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _unknown(groups: Owners, values: tuple[str, ...], counts: tuple[str, ...]) -> Columns:
    """Columns of statistics whose input is missing: values undefined, counts zero."""
    columns: Columns = {name: np.full(groups.size, np.nan) for name in values}
    columns.update({name: np.zeros(groups.size, dtype=np.int64) for name in counts})
    return columns


def _none_of(groups: Owners, *names: str) -> Columns:
    """Sums of statistics whose input is missing: zero, so the statistics are undefined."""
    return {name: np.zeros(groups.size, dtype=np.int64) for name in names}


def quality_columns(table: RankingTable, context: RankingContext, groups: Owners) -> Columns:
    counted = _counted(table, context)
    return quality_from_sums(
        quality_sums(table, context, groups), _speed(table, context, counted, groups)
    )


def _counted(table: RankingTable, context: RankingContext) -> BoolArray:
    if context.is_repeat is None:
        return np.ones(table.n_rankings, dtype=bool)
    counted: BoolArray = ~context.is_repeat
    return counted


def quality_sums(table: RankingTable, context: RankingContext, groups: Owners) -> Columns:
    """Per group, the counts every statistic but speed is a ratio of (``SUM_COLUMNS``).

    Sums over disjoint sets of prompts add up: a project is summed part by part and
    ``quality_from_sums`` gives the statistics.
    """
    counted = _counted(table, context)
    is_repeat = ~counted
    labels, present = table.label_matrix()
    labelled = present & counted[:, np.newaxis]
    columns: Columns = {
        "rankings": groups.count(counted),
        "labelled_pairs": groups.count(labelled.sum(axis=1)),
        "tie_pairs": groups.count((labelled & (labels == TIE)).sum(axis=1)),
    }
    columns.update(_gold_accuracy(table, context, counted, labels, present, groups))
    columns.update(_self_consistency(table, is_repeat, labels, present, groups))
    columns.update(_position_bias(table, context, counted, groups))
    columns.update(_straight_lining(table, context, counted, groups))
    columns.update(_length_bias(table, context, counted, labels, present, groups))
    return columns


def quality_from_sums(sums: Columns, speed: Columns) -> Columns:
    """The ``RaterQuality`` columns from ``quality_sums`` and the speed columns."""
    eligible = sums["straight_eligible"]
    return {
        "rankings": sums["rankings"],
        "gold_accuracy": _ratio(sums["gold_matched"], sums["gold_pairs"]),
        "gold_pairs": sums["gold_pairs"],
        "gold_rankings": sums["gold_rankings"],
        "self_consistency": _ratio(sums["repeat_matched"], sums["repeat_pairs"]),
        "repeat_pairs": sums["repeat_pairs"],
        "repeat_rankings": sums["repeat_rankings"],
        "first_shown_win_rate": _ratio(sums["position_wins"], sums["position_pairs"]),
        "position_p_value": binomial_two_sided_p_value(
            sums["position_wins"], sums["position_pairs"]
        ),
        "position_pairs": sums["position_pairs"],
        "straight_lining_rate": _ratio(sums["straight_lined"], eligible),
        "straight_lined": sums["straight_lined"],
        "straight_lining_chance": _ratio(sums["straight_chance"], eligible),
        "median_seconds": speed["median_seconds"],
        "speed_ratio": speed["speed_ratio"],
        "timed_rankings": speed["timed_rankings"],
        "tie_rate": _ratio(sums["tie_pairs"], sums["labelled_pairs"]),
        "labelled_pairs": sums["labelled_pairs"],
        "longer_win_rate": _ratio(sums["length_wins"], sums["length_pairs"]),
        "length_pairs": sums["length_pairs"],
    }


def merge_sums(parts: list[Columns]) -> Columns:
    """Sums of disjoint sets of prompts added up, column by column."""
    return {name: np.sum([part[name] for part in parts], axis=0) for name in parts[0]}


def _gold_accuracy(
    table: RankingTable,
    context: RankingContext,
    counted: BoolArray,
    labels: LabelArray,
    present: BoolArray,
    groups: Owners,
) -> Columns:
    if context.gold_ranks is None:
        return _none_of(groups, "gold_matched", "gold_pairs", "gold_rankings")
    gold_labels, gold_present = pair_label_matrix(context.gold_ranks)
    is_gold = gold_present.any(axis=1)
    rows = np.flatnonzero(counted & is_gold[table.prompt_index])
    prompts = table.prompt_index[rows]
    compared = present[rows] & gold_present[prompts]
    matched = compared & (labels[rows] == gold_labels[prompts])
    return {
        "gold_matched": groups.count(matched.sum(axis=1), rows),
        "gold_pairs": groups.count(compared.sum(axis=1), rows),
        "gold_rankings": groups.count(np.ones(len(rows)), rows),
    }


def _self_consistency(
    table: RankingTable,
    is_repeat: BoolArray,
    labels: LabelArray,
    present: BoolArray,
    groups: Owners,
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
    return {
        "repeat_matched": groups.count(matched.sum(axis=1), repeats),
        "repeat_pairs": groups.count(compared.sum(axis=1), repeats),
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
    table: RankingTable, context: RankingContext, counted: BoolArray, groups: Owners
) -> Columns:
    if context.shown_slots is None or context.shown_slots.shape[1] < 2:
        return _none_of(groups, "position_wins", "position_pairs")
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
    return {
        "position_wins": groups.count(earlier_wins_per_row),
        "position_pairs": groups.count(decided_per_row),
    }


def _straight_lining(
    table: RankingTable, context: RankingContext, counted: BoolArray, groups: Owners
) -> Columns:
    if context.shown_slots is None:
        return {
            **_none_of(groups, "straight_lined", "straight_eligible"),
            "straight_chance": np.zeros(groups.size),
        }
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
    return {
        "straight_lined": groups.count(eligible & in_shown_order),
        "straight_eligible": groups.count(eligible),
        "straight_chance": groups.sum(np.where(eligible, chance_of_size[present_slots], 0.0)),
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
    table: RankingTable, context: RankingContext, counted: BoolArray, groups: Owners
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
    groups: Owners,
) -> Columns:
    if context.response_length is None:
        return _none_of(groups, "length_wins", "length_pairs")
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
    return {
        "length_wins": groups.count(longer_wins_per_row),
        "length_pairs": groups.count(pairs_per_row),
    }


# Speed, part by part -------------------------------------------------------------------------
#
# Medians do not add up, but counts of distinct values do: a part counts its rankings' prompt
# lengths (the speed buckets' edges are quantiles of them), then, given the edges, its
# (rater, bucket, seconds) triples; the medians of the merged counts are those of all the
# rankings. Seconds are reported to a tenth, so the triples are few.


@dataclass(frozen=True)
class ValueCounts:
    """Distinct rows of values (sorted) and how often each occurs; parts merge by adding."""

    values: FloatArray  # (n,) or (n, columns)
    counts: IntArray

    def merge(self, other: ValueCounts) -> ValueCounts:
        return value_counts(
            np.concatenate([self.values, other.values]),
            np.concatenate([self.counts, other.counts]),
        )


def value_counts(values: FloatArray, counts: IntArray | None = None) -> ValueCounts:
    weights = np.ones(len(values), dtype=np.int64) if counts is None else counts
    if len(values) == 0:
        return ValueCounts(values=values, counts=np.zeros(0, dtype=np.int64))
    distinct, inverse = distinct_rows(values)
    summed = np.bincount(inverse, weights=weights, minlength=len(distinct))
    return ValueCounts(values=distinct, counts=np.rint(summed).astype(np.int64))


def _timed(table: RankingTable, context: RankingContext) -> IntArray:
    if context.seconds is None:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(_counted(table, context) & ~np.isnan(context.seconds))


def speed_lengths(table: RankingTable, context: RankingContext) -> ValueCounts:
    """The prompt lengths (total characters of its responses) of the timed rankings."""
    if context.response_length is None:
        return value_counts(np.zeros(0))
    prompt_length = np.nansum(context.response_length, axis=1)
    return value_counts(prompt_length[table.prompt_index[_timed(table, context)]])


def speed_bucket_edges(
    lengths: ValueCounts, n_buckets: int = SPEED_LENGTH_BUCKETS
) -> FloatArray | None:
    """``speed_length_buckets``' edges from counted lengths: numpy's linear quantiles of the
    lengths, each repeated its count; None without lengths (one bucket)."""
    n = int(lengths.counts.sum())
    if n == 0:
        return None
    ends = np.cumsum(lengths.counts)
    virtual = (n - 1) * (np.arange(1, n_buckets) / n_buckets)
    below = np.floor(virtual)
    gamma = virtual - below
    above = np.minimum(below + 1, n - 1)
    a = lengths.values[np.searchsorted(ends, below, side="right")]
    b = lengths.values[np.searchsorted(ends, above, side="right")]
    difference = b - a
    edges: FloatArray = np.where(gamma >= 0.5, b - difference * (1 - gamma), a + difference * gamma)
    return edges


def speed_counts(
    table: RankingTable, context: RankingContext, edges: FloatArray | None, groups: Owners
) -> ValueCounts:
    """(group, length bucket, seconds) of the timed rankings, counted."""
    timed = _timed(table, context)
    if edges is None or context.response_length is None:
        bucket = np.zeros(len(timed), dtype=np.int64)
    else:
        prompt_length = np.nansum(context.response_length, axis=1)
        bucket = np.searchsorted(edges, prompt_length[table.prompt_index[timed]], side="right")
    seconds = context.seconds[timed] if context.seconds is not None else np.zeros(0)
    rows = np.column_stack([groups.index[timed], bucket, seconds]).astype(np.float64)
    return value_counts(rows.reshape(-1, 3))


def speed_from_counts(counted: ValueCounts, n_groups: int) -> Columns:
    """The speed columns (as ``_speed``) from ``speed_counts`` of every ranking."""
    rows = counted.values.reshape(-1, 3)
    group, bucket, seconds = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2]
    weights = counted.counts
    project_median = weighted_group_medians(bucket, seconds, weights, SPEED_LENGTH_BUCKETS)
    ratio = _ratio(seconds, project_median[bucket])
    return {
        "median_seconds": weighted_group_medians(group, seconds, weights, n_groups),
        "speed_ratio": weighted_group_medians(group, ratio, weights, n_groups),
        "timed_rankings": np.bincount(group, weights=weights, minlength=n_groups).astype(np.int64),
    }


def weighted_group_medians(
    group: IntArray, values: FloatArray, weights: IntArray, n_groups: int
) -> FloatArray:
    """``group_medians`` of values each repeated ``weights`` times."""
    keep = ~np.isnan(values) & (weights > 0)
    group, values, weights = group[keep], values[keep], weights[keep]
    medians = np.full(n_groups, np.nan)
    if values.size == 0:
        return medians
    order = np.lexsort((values, group))
    group, values, weights = group[order], values[order], weights[order]
    ends = np.cumsum(weights)
    totals = np.bincount(group, weights=weights, minlength=n_groups).astype(np.int64)
    starts = np.cumsum(totals) - totals
    has = totals > 0
    low = values[np.searchsorted(ends, (starts + (totals - 1) // 2)[has], side="right")]
    high = values[np.searchsorted(ends, (starts + totals // 2)[has], side="right")]
    medians[has] = (low + high) / 2.0
    return medians
