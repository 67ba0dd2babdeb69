"""Per-prompt unit counts behind the project statistics: label counts per response pair,
mid-rank counts per response (Krippendorff's alpha) and Kendall's W per prompt.

Every project statistic is a function of sums of these over prompts (see ``bootstrap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rankings.stats.tables import (
    FloatArray,
    IntArray,
    RankingTable,
    less_and_equal_counts,
    mid_ranks,
)


def mid_rank_domain(k_max: int) -> FloatArray:
    """Mid-ranks are multiples of 1/2 in [1, k_max]: ``2 * mid_rank - 2`` indexes this domain."""
    return 1.0 + np.arange(max(2 * k_max - 1, 1)) / 2.0


def unit_value_counts(
    table: RankingTable, midranks: FloatArray | None = None
) -> npt.NDArray[np.integer[Any]]:
    """``(n_prompts, k_max, V)`` counts of raters giving each (prompt, slot) each mid-rank."""
    k_max = table.k_max
    n_values = len(mid_rank_domain(k_max))
    if midranks is None:
        midranks = mid_ranks(table.ranks)
    n_cells = table.n_prompts * k_max * n_values
    code = np.rint(2.0 * np.nan_to_num(midranks, nan=1.0) - 2.0).astype(np.int64)
    unit = table.prompt_index[:, np.newaxis] * k_max + np.arange(k_max)
    # Absent slots go to one extra cell past the end, dropped after counting.
    cell = np.where(np.isnan(midranks), n_cells, unit * n_values + code)
    counts = np.bincount(cell.ravel(), minlength=n_cells + 1)[:n_cells].astype(np.int32)
    return counts.reshape(table.n_prompts, k_max, n_values)


def ordinal_distances(value_totals: FloatArray) -> FloatArray:
    """Krippendorff's ordinal metric: (sum of n_g from c to k - (n_c + n_k) / 2) ** 2.

    ``value_totals`` may carry leading batch dimensions ``(..., V)``.
    """
    cumulative = np.cumsum(value_totals, axis=-1)
    index = np.arange(value_totals.shape[-1])
    low, high = np.minimum.outer(index, index), np.maximum.outer(index, index)
    between = cumulative[..., high] - cumulative[..., low] + value_totals[..., low]
    distances: FloatArray = (
        between - (value_totals[..., low] + value_totals[..., high]) / 2.0
    ) ** 2
    return distances


def interval_distances(values: FloatArray) -> FloatArray:
    """Krippendorff's interval metric: the squared difference of the values."""
    distances: FloatArray = np.subtract.outer(values, values) ** 2
    return distances


def kendall_w_per_prompt(
    table: RankingTable, midranks: FloatArray | None = None
) -> tuple[FloatArray, IntArray]:
    """Kendall's W (tie corrected) per prompt, NaN where undefined, and the raters behind it.

    Only rankings covering all of the prompt's responses count; a prompt needs two such
    rankings, two responses and some non-tied ranking, otherwise its W is undefined.
    """
    present = ~np.isnan(table.ranks)
    slots_per_row = present.sum(axis=1)
    slots_per_prompt = np.zeros(table.n_prompts, dtype=np.int64)
    np.maximum.at(slots_per_prompt, table.prompt_index, slots_per_row)
    complete = (slots_per_row == slots_per_prompt[table.prompt_index]) & (slots_per_row >= 2)
    if midranks is None:
        midranks = mid_ranks(table.ranks)
    table, present, midranks = table.take(complete), present[complete], midranks[complete]
    # Each of the t members of a tie group adds t^2 - 1: t^3 - t per group.
    group_size = less_and_equal_counts(table.ranks)[1]
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


@dataclass(frozen=True)
class PromptUnits:
    """Per-prompt unit counts of a table reduced to one ranking per rater."""

    label_counts: IntArray  # (P, n_pairs, 3)
    value_counts: npt.NDArray[np.integer[Any]]  # (P, k_max, V)
    kendall_w: FloatArray  # (P,) NaN where undefined

    @property
    def n_values(self) -> int:
        return int(self.value_counts.shape[2])


def prompt_units(table: RankingTable) -> PromptUnits:
    """Per-prompt unit counts of a table already reduced to one ranking per rater."""
    midranks = mid_ranks(table.ranks)
    return PromptUnits(
        label_counts=table.unit_label_counts(),
        value_counts=unit_value_counts(table, midranks),
        kendall_w=kendall_w_per_prompt(table, midranks)[0],
    )
