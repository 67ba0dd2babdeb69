"""Each rater's behaviour: gold accuracy, self-consistency on repeats, position bias,
straight-lining, speed relative to the project (``speed``), tie rate and length bias, each
with the count of evidence behind it; vectorized over all of a project's rankings at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rankings.stats import speed
from rankings.stats.groups import Columns, Owners, counted_rankings, ratio
from rankings.stats.tables import (
    FIRST_BETTER,
    TIE,
    BoolArray,
    FloatArray,
    LabelArray,
    RankingContext,
    RankingTable,
    float_or_none,
    pair_label_matrix,
    slot_pairs,
)


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
      (``speed.SPEED_LENGTH_BUCKETS`` quantile buckets).
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


def rater_quality(table: RankingTable, context: RankingContext) -> list[RaterQuality]:
    """Every rater's ``RaterQuality``, vectorized over all rankings (repeats included)."""
    columns = quality_columns(table, context, Owners(table.rater_index, table.n_raters))
    return [quality_row(columns, rater) for rater in range(table.n_raters)]


def binomial_two_sided_p_value(successes: npt.ArrayLike, trials: npt.ArrayLike) -> FloatArray:
    """Exact two-sided binomial test against p = 0.5 (as ``scipy.stats.binomtest``), vectorized.

    With p = 0.5 the distribution is symmetric, so the outcomes at least as unlikely as the
    observed one are the two tails: ``2 * P(X <= min(k, n - k))``, capped at 1. NaN for n = 0.
    """
    from scipy import stats  # here, not at the top: its import is slow (see bootstrap)

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


def _none_of(groups: Owners, *names: str) -> Columns:
    """Sums of statistics whose input is missing: zero, so the statistics are undefined."""
    return {name: np.zeros(groups.size, dtype=np.int64) for name in names}


def quality_columns(table: RankingTable, context: RankingContext, groups: Owners) -> Columns:
    counted = counted_rankings(table, context)
    return quality_from_sums(
        quality_sums(table, context, groups), speed.speed_columns(table, context, counted, groups)
    )


def quality_sums(table: RankingTable, context: RankingContext, groups: Owners) -> Columns:
    """Per group, the counts every statistic but speed is a ratio of (``SUM_COLUMNS``).

    Sums over disjoint sets of prompts add up: a project is summed part by part and
    ``quality_from_sums`` gives the statistics.
    """
    counted = counted_rankings(table, context)
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
        "gold_accuracy": ratio(sums["gold_matched"], sums["gold_pairs"]),
        "gold_pairs": sums["gold_pairs"],
        "gold_rankings": sums["gold_rankings"],
        "self_consistency": ratio(sums["repeat_matched"], sums["repeat_pairs"]),
        "repeat_pairs": sums["repeat_pairs"],
        "repeat_rankings": sums["repeat_rankings"],
        "first_shown_win_rate": ratio(sums["position_wins"], sums["position_pairs"]),
        "position_p_value": binomial_two_sided_p_value(
            sums["position_wins"], sums["position_pairs"]
        ),
        "position_pairs": sums["position_pairs"],
        "straight_lining_rate": ratio(sums["straight_lined"], eligible),
        "straight_lined": sums["straight_lined"],
        "straight_lining_chance": ratio(sums["straight_chance"], eligible),
        "median_seconds": speed["median_seconds"],
        "speed_ratio": speed["speed_ratio"],
        "timed_rankings": speed["timed_rankings"],
        "tie_rate": ratio(sums["tie_pairs"], sums["labelled_pairs"]),
        "labelled_pairs": sums["labelled_pairs"],
        "longer_win_rate": ratio(sums["length_wins"], sums["length_pairs"]),
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
