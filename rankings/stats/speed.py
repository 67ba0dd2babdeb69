"""Each rater's speed against the project's, within buckets of prompts of similar total
response length; in one go over every ranking, or part by part from counts that add up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rankings.stats.groups import (
    Columns,
    Owners,
    counted_rankings,
    group_medians,
    ratio,
    unknown_columns,
    weighted_group_medians,
)
from rankings.stats.tables import (
    BoolArray,
    FloatArray,
    IntArray,
    RankingContext,
    RankingTable,
    distinct_rows,
)

#: Speed is compared within buckets of prompts of similar total response length.
SPEED_LENGTH_BUCKETS = 5


def speed_length_buckets(
    total_length: FloatArray, n_buckets: int = SPEED_LENGTH_BUCKETS
) -> IntArray:
    """Bucket of each value by quantiles of the values themselves (0 = shortest)."""
    known = total_length[~np.isnan(total_length)]
    if known.size == 0:
        return np.zeros(len(total_length), dtype=np.int64)
    edges = np.quantile(known, np.arange(1, n_buckets) / n_buckets)
    return np.searchsorted(edges, total_length, side="right").astype(np.int64)


def speed_columns(
    table: RankingTable, context: RankingContext, counted: BoolArray, groups: Owners
) -> Columns:
    """Per owner: median seconds, the median of seconds over the project's median for
    prompts of the same length bucket, and how many rankings were timed."""
    if context.seconds is None:
        return unknown_columns(groups, ("median_seconds", "speed_ratio"), ("timed_rankings",))
    timed = np.flatnonzero(counted & ~np.isnan(context.seconds))
    seconds = context.seconds[timed]
    if context.response_length is not None:
        prompt_length = np.nansum(context.response_length, axis=1)
        bucket = speed_length_buckets(prompt_length[table.prompt_index[timed]])
    else:
        bucket = np.zeros(len(timed), dtype=np.int64)
    project_median = group_medians(bucket, seconds, SPEED_LENGTH_BUCKETS)[bucket]
    relative = ratio(seconds, project_median)
    return {
        "median_seconds": groups.medians(seconds, timed),
        "speed_ratio": groups.medians(relative, timed),
        "timed_rankings": groups.count(np.ones(len(timed)), timed),
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
    return np.flatnonzero(counted_rankings(table, context) & ~np.isnan(context.seconds))


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
    """The speed columns (as ``speed_columns``) from ``speed_counts`` of every ranking."""
    rows = counted.values.reshape(-1, 3)
    group, bucket, seconds = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2]
    weights = counted.counts
    project_median = weighted_group_medians(bucket, seconds, weights, SPEED_LENGTH_BUCKETS)
    relative = ratio(seconds, project_median[bucket])
    return {
        "median_seconds": weighted_group_medians(group, seconds, weights, n_groups),
        "speed_ratio": weighted_group_medians(group, relative, weights, n_groups),
        "timed_rankings": np.bincount(group, weights=weights, minlength=n_groups).astype(np.int64),
    }
