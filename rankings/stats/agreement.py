"""Pairwise agreement: per prompt, per rater (leave-one-out, with a Wilson interval), and the
chance level the consensus weights are measured against.

Every statistic is invariant to pair orientation: the two "better" labels are symmetric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rankings.stats.tables import (
    N_LABEL_CATEGORIES,
    TIE,
    FloatArray,
    IntArray,
    RankingTable,
    float_or_none,
    one_ranking_per_rater,
    orientation_free,
    pairs_of,
)


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
class PromptAgreementArrays:
    """Per prompt: rankings counted (one per rater), pairwise agreement and rater pairs."""

    n_rankings: IntArray
    agreement: FloatArray  # NaN where the prompt has no two rankings of a common pair
    n_pairs: IntArray


def prompt_pairwise_agreement(table: RankingTable) -> PromptAgreementArrays:
    """Pairwise agreement (ties included) of each prompt on its own."""
    table = one_ranking_per_rater(table)
    counts = table.unit_label_counts()
    rater_pairs = pairs_of(counts.sum(axis=2)).sum(axis=1)
    agreeing = pairs_of(counts).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        agreement = np.where(rater_pairs > 0, agreeing / rater_pairs, np.nan)
    return PromptAgreementArrays(
        n_rankings=np.bincount(table.prompt_index, minlength=table.n_prompts),
        agreement=agreement,
        n_pairs=rater_pairs,
    )


def wilson_bounds(
    successes: FloatArray, n: FloatArray, z: float = 1.96
) -> tuple[FloatArray, FloatArray]:
    """Wilson score intervals for binomial proportions, elementwise; NaN where n == 0."""
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
    return rater_agreement_from_sums(leave_one_out_sums(table, include_ties), z)


@dataclass(frozen=True)
class LeaveOneOutSums:
    """Per rater: labels matched by another rater of the unit, labels compared, rankings.

    Sums over disjoint sets of prompts add up (``merge``): a project is summed part by part.
    """

    agreed: FloatArray
    compared: FloatArray
    rankings: IntArray

    def merge(self, other: LeaveOneOutSums) -> LeaveOneOutSums:
        return LeaveOneOutSums(
            agreed=self.agreed + other.agreed,
            compared=self.compared + other.compared,
            rankings=self.rankings + other.rankings,
        )


def leave_one_out_sums(table: RankingTable, include_ties: bool = True) -> LeaveOneOutSums:
    """The sums behind ``rater_leave_one_out_agreement`` (one ranking per rater is kept)."""
    together, without_ties = leave_one_out_sums_both(table)
    return together if include_ties else without_ties


def leave_one_out_sums_both(table: RankingTable) -> tuple[LeaveOneOutSums, LeaveOneOutSums]:
    """``leave_one_out_sums`` with ties and without, from one count of each unit's labels.

    Leaving ties out drops the tied labels and nothing else: a decided label agrees with
    the same others, and is compared with the others less the unit's ties.
    """
    table = one_ranking_per_rater(table)
    labels, present = table.label_matrix()
    counts = table.unit_label_counts()
    tie = TIE + 1  # the category index of a tie (labels -1, 0, 1 count at 0, 1, 2)
    agreed, compared = np.zeros((2, table.n_raters)), np.zeros((2, table.n_raters))
    for pair in range(labels.shape[1]):
        rows = present[:, pair]
        unit_counts = counts[table.prompt_index[rows], pair]
        label = labels[rows, pair].astype(np.intp) + 1
        same_label_others = unit_counts[np.arange(len(label)), label] - 1
        other_raters = unit_counts.sum(axis=1) - 1
        raters = table.rater_index[rows]
        decided = label != tie
        others_decided = other_raters - unit_counts[:, tie]
        n = table.n_raters
        agreed[0] += np.bincount(raters, same_label_others, n)
        compared[0] += np.bincount(raters, other_raters, n)
        agreed[1] += np.bincount(raters[decided], same_label_others[decided], n)
        compared[1] += np.bincount(raters[decided], others_decided[decided], n)
    rankings = np.bincount(table.rater_index, minlength=table.n_raters).astype(np.int64)
    together, without_ties = (
        LeaveOneOutSums(agreed=agreed[index], compared=compared[index], rankings=rankings.copy())
        for index in range(2)
    )
    return together, without_ties


def rater_agreement_from_sums(sums: LeaveOneOutSums, z: float = 1.96) -> list[RaterAgreement]:
    agreed, compared = sums.agreed, sums.compared
    low, high = wilson_bounds(agreed, compared, z)
    return [
        RaterAgreement(
            rater_index=rater,
            agreement=float(agreed[rater] / compared[rater]) if compared[rater] else None,
            low=float_or_none(low[rater]),
            high=float_or_none(high[rater]),
            n_pairs=int(compared[rater]),
            n_rankings=int(sums.rankings[rater]),
        )
        for rater in range(len(agreed))
    ]


def chance_agreement(table: RankingTable) -> float | None:
    """Fleiss' chance agreement on pair labels: the sum of squared label shares.

    The agreement two raters reach by labelling at random with the project's label mix; the
    two "better" labels share their total (``orientation_free``), so the level does not
    depend on the order in which a prompt's responses were imported.
    """
    return chance_from_label_totals(chance_label_totals(table))


def chance_label_totals(table: RankingTable) -> IntArray:
    """The (3,) label totals over units with two or more labels; they add up over prompts."""
    counts = one_ranking_per_rater(table).unit_label_counts().reshape(-1, N_LABEL_CATEGORIES)
    totals: IntArray = counts[counts.sum(axis=1) >= 2].sum(axis=0).astype(np.int64)
    return totals


def chance_from_label_totals(totals: IntArray) -> float | None:
    total = totals.sum()
    if total == 0:
        return None
    return float(((orientation_free(totals) / total) ** 2).sum())
