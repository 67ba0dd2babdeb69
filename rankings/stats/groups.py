"""Per-owner sums, counts and medians over rankings (an owner is a rater, or one group for
a pooled baseline): what the rater statistics (``raters``, ``speed``) are built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rankings.stats.tables import BoolArray, FloatArray, IntArray, RankingContext, RankingTable

Columns = dict[str, npt.NDArray[Any]]


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


def ratio(numerator: npt.NDArray[Any], denominator: npt.NDArray[Any]) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def unknown_columns(groups: Owners, values: tuple[str, ...], counts: tuple[str, ...]) -> Columns:
    """Columns of statistics whose input is missing: values undefined, counts zero."""
    columns: Columns = {name: np.full(groups.size, np.nan) for name in values}
    columns.update({name: np.zeros(groups.size, dtype=np.int64) for name in counts})
    return columns


def counted_rankings(table: RankingTable, context: RankingContext) -> BoolArray:
    if context.is_repeat is None:
        return np.ones(table.n_rankings, dtype=bool)
    counted: BoolArray = ~context.is_repeat
    return counted
