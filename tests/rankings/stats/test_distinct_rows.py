"""``tables.distinct_rows`` answers as ``np.unique(rows, axis=0, return_inverse=True)``."""

from __future__ import annotations

import numpy as np
import pytest

from rankings.stats.tables import distinct_rows


@pytest.mark.parametrize("seed", range(6))
def test_distinct_rows_are_numpys_unique_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shapes = [(0, 3, float), (1, 2, float), (500, 39, float), (2000, 3, float),
              (300, 5, np.int64), (400, 1, float)]  # fmt: skip
    for n_rows, n_columns, dtype in shapes:
        rows = rng.integers(0, 3, size=(n_rows, n_columns)).astype(dtype)
        if dtype is float and n_rows:
            rows[rng.integers(0, n_rows, size=5)] *= -1.0  # some -0.0 among the 0.0
            rows[:, 0] += rng.choice([0.0, 0.5, 1e-12], size=n_rows)
        want, want_inverse = np.unique(rows, axis=0, return_inverse=True)
        got, got_inverse = distinct_rows(rows)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_inverse, want_inverse.reshape(-1))


def test_rows_with_nan_are_never_merged_as_numpy_does() -> None:
    rows = np.array([[1.0, np.nan], [1.0, np.nan], [0.0, 2.0], [0.0, 2.0]])
    got, inverse = distinct_rows(rows)
    want, want_inverse = np.unique(rows, axis=0, return_inverse=True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(inverse, want_inverse.reshape(-1))
    assert len(got) == 3


def test_one_dimensional_values_are_distinct_values() -> None:
    values = np.array([3.0, 1.0, 3.0, 2.0])
    got, inverse = distinct_rows(values)
    np.testing.assert_array_equal(got, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(inverse, [2, 0, 2, 1])
