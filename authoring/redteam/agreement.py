"""Krippendorff's alpha on red-team labels: nominal (success, category) and ordinal
(severity), from the coincidence matrix of the attempts labelled by two people or more.

Pure: numpy arrays in, numbers out. The ordinal metric is the rankings statistics' own
(`rankings.stats.units.ordinal_distances`), so both kinds measure agreement alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rankings.stats.units import ordinal_distances

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Alpha:
    alpha: float | None
    """None when undefined: fewer than two pairable values, or no variation at all."""
    n_units: int
    """Attempts with at least two labels (the pairable ones)."""
    n_labels: int
    """Labels on those attempts."""

    def as_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "n_units": self.n_units, "n_labels": self.n_labels}


def coincidences(units: IntArray, values: IntArray, n_values: int) -> FloatArray:
    """The ``(V, V)`` coincidence matrix: each unit with m labels adds every ordered pair of
    its labels (from different labellers) with weight 1 / (m - 1)."""
    if len(units) == 0:
        return np.zeros((n_values, n_values))
    _, unit_index = np.unique(units, return_inverse=True)
    n_units = int(unit_index.max()) + 1
    counts = np.zeros((n_units, n_values))
    np.add.at(counts, (unit_index, values), 1.0)
    per_unit = counts.sum(axis=1)
    counts = counts[per_unit >= 2]
    weights = 1.0 / (per_unit[per_unit >= 2] - 1.0)
    weighted = counts * weights[:, np.newaxis]
    matrix: FloatArray = counts.T @ weighted - np.diag(weighted.sum(axis=0))
    return matrix


def alpha_of(units: IntArray, values: IntArray, n_values: int, *, level: str) -> Alpha:
    """Krippendorff's alpha at `level` ("nominal" or "ordinal"; ordinal values are the codes
    0..V-1 in their order)."""
    units = np.asarray(units, dtype=np.int64)
    values = np.asarray(values, dtype=np.int64)
    if len(units):
        _, unit_index, per_unit = np.unique(units, return_inverse=True, return_counts=True)
        pairable = per_unit[unit_index] >= 2
    else:
        per_unit, pairable = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    n_units, n_labels = int((per_unit >= 2).sum()), int(pairable.sum())
    matrix = coincidences(units, values, n_values)
    totals = matrix.sum(axis=0)
    n = totals.sum()
    if level == "nominal":
        distances: FloatArray = 1.0 - np.eye(n_values)
    elif level == "ordinal":
        distances = ordinal_distances(totals)
    else:
        raise ValueError(f"unknown level of measurement {level!r}")
    expected = float((np.outer(totals, totals) * distances).sum())
    if n <= 1 or expected <= 0:
        return Alpha(None, n_units, n_labels)
    observed = float((matrix * distances).sum())
    return Alpha(1.0 - (n - 1.0) * observed / expected, n_units, n_labels)


def label_agreement(
    attempts: IntArray,
    succeeded: IntArray,
    categories: IntArray,
    n_categories: int,
    severities: IntArray,
    n_severities: int,
) -> dict[str, Any]:
    """Alpha on success and category (nominal) and on severity (ordinal), one entry each."""
    return {
        "success": alpha_of(attempts, succeeded, 2, level="nominal").as_dict(),
        "category": alpha_of(attempts, categories, n_categories, level="nominal").as_dict(),
        "severity": alpha_of(attempts, severities, n_severities, level="ordinal").as_dict(),
    }
