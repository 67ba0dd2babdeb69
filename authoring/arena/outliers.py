"""Raters whose arena votes disagree with the crowd's leaderboard more than chance allows.

Pure numpy. Each counted vote is a comparison of two models with an outcome (first wins,
second wins, tie). The leaderboard's Davidson model (Bradley-Terry with ties, fitted on
every rater's votes) gives each vote's outcome probabilities p. A rater's *agreement* is
the mean probability of the outcomes they chose. For a rater who votes as the crowd does,
each vote's chosen probability has mean sum(p^2) and variance sum(p^3) - sum(p^2)^2, so the
rater's total has a known mean and variance and

    z = (sum chosen - sum expected) / sqrt(sum variance)

is about standard normal. A rater is an outlier with at least ``min_votes`` votes, ``z``
at or below ``-z_threshold`` and an agreement below the crowd's median agreement: far less
in line with the leaderboard than chance explains, and below the typical rater.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rankings.stats.davidson import davidson_probabilities
from rankings.stats.tables import FloatArray, IntArray

FIRST_WINS, SECOND_WINS, TIE = 0, 1, 2


@dataclass(frozen=True)
class VoterFit:
    votes: int
    agreement: float | None
    """Mean model probability of the outcomes the rater chose."""
    expected: float | None
    """The mean a rater voting as the model predicts would reach on the same comparisons."""
    z: float | None


def outcome_probabilities(difference: FloatArray, tie_log: float) -> FloatArray:
    """``(n, 3)``: P(first wins), P(second wins), P(tie) per comparison."""
    first, second, tie, _ = davidson_probabilities(np.asarray(difference, dtype=float), tie_log)
    return np.stack([first, second, tie], axis=1)


def voter_fits(
    rater_index: IntArray,
    difference: FloatArray,
    outcome: IntArray,
    tie_log: float,
    n_raters: int,
) -> list[VoterFit]:
    """Each rater's agreement and its z score (see the module docstring)."""
    rater_index = np.asarray(rater_index, dtype=np.int64)
    outcome = np.asarray(outcome, dtype=np.int64)
    p = outcome_probabilities(difference, tie_log)
    chosen = p[np.arange(len(outcome)), outcome]
    mean = (p**2).sum(axis=1)
    variance = np.maximum((p**3).sum(axis=1) - mean**2, 0.0)
    votes = np.bincount(rater_index, minlength=n_raters)
    chosen_sum = np.bincount(rater_index, weights=chosen, minlength=n_raters)
    mean_sum = np.bincount(rater_index, weights=mean, minlength=n_raters)
    variance_sum = np.bincount(rater_index, weights=variance, minlength=n_raters)
    fits = []
    for r in range(n_raters):
        if votes[r] == 0:
            fits.append(VoterFit(votes=0, agreement=None, expected=None, z=None))
            continue
        z = (
            float((chosen_sum[r] - mean_sum[r]) / np.sqrt(variance_sum[r]))
            if variance_sum[r] > 0
            else None
        )
        fits.append(
            VoterFit(
                votes=int(votes[r]),
                agreement=float(chosen_sum[r] / votes[r]),
                expected=float(mean_sum[r] / votes[r]),
                z=z,
            )
        )
    return fits


def crowd_median(fits: list[VoterFit], *, min_votes: int) -> float | None:
    values = [fit.agreement for fit in fits if fit.agreement is not None and fit.votes >= min_votes]
    return float(np.median(values)) if values else None


def is_outlier(fit: VoterFit, *, median: float | None, min_votes: int, z_threshold: float) -> bool:
    return (
        fit.votes >= min_votes
        and fit.z is not None
        and fit.z <= -z_threshold
        and fit.agreement is not None
        and median is not None
        and fit.agreement < median
    )
