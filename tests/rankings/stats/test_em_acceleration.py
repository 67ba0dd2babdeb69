"""The accelerated EM (rankings.stats.em_acceleration) on maps whose fixed point is known:
a slow linear contraction, which Anderson mixing solves in about as many passes as it has
dimensions where plain EM needs thousands, and a map whose secant steps overshoot into a
region the objective forbids, which the safeguard must undo."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from rankings.stats import em_acceleration
from rankings.stats.tables import FloatArray


@dataclass(frozen=True)
class Vector:
    values: FloatArray

    def moved(self, other: Vector) -> float:
        return float(np.abs(self.values - other.values).max())

    def as_vector(self) -> FloatArray:
        return self.values.copy()

    def is_inside(self) -> bool:
        return bool(np.all(np.isfinite(self.values)))


@dataclass
class ToyMap:
    """An EM map ``update`` with objective ``value``, counting passes."""

    update: Callable[[FloatArray], FloatArray]
    value: Callable[[FloatArray], float]
    passes: int = 0

    def em_update(self, params: Vector) -> Vector:
        return self.em_update_scored(params)[0]

    def em_update_scored(self, params: Vector) -> tuple[Vector, float]:
        self.passes += 1
        return Vector(self.update(params.values)), self.value(params.values)


def slow_contraction(
    rng: np.random.Generator, dimensions: int
) -> tuple[ToyMap, FloatArray, FloatArray]:
    """``F(x) = x* + A (x - x*)`` with A symmetric, eigenvalues up to 0.999 (plain EM's
    rate), and the objective ``-|x - x*|^2``, which every update raises."""
    basis, _ = np.linalg.qr(rng.normal(size=(dimensions, dimensions)))
    rates = np.concatenate([[0.999, 0.99], rng.uniform(0.1, 0.9, size=dimensions - 2)])
    contraction = basis @ np.diag(rates) @ basis.T
    answer = rng.normal(size=dimensions)
    toy = ToyMap(
        update=lambda x: answer + contraction @ (x - answer),
        value=lambda x: -float(np.sum((x - answer) ** 2)),
    )
    return toy, answer, answer + rng.normal(size=dimensions)


@pytest.mark.parametrize("seed", range(5))
def test_a_slow_linear_map_is_solved_in_about_as_many_passes_as_dimensions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    dimensions = int(rng.integers(3, em_acceleration.MEMORY))
    toy, answer, start = slow_contraction(rng, dimensions)
    fitted, converged = em_acceleration.fit_em(
        toy, Vector(start), Vector, max_iterations=200, tolerance=1e-9, accelerate=True
    )
    assert converged
    assert np.abs(fitted.values - answer).max() < 1e-7
    assert toy.passes <= dimensions + 6

    plain = ToyMap(update=toy.update, value=toy.value)
    stopped, plain_converged = em_acceleration.fit_em(
        plain, Vector(start), Vector, max_iterations=200, tolerance=1e-9, accelerate=False
    )
    assert not plain_converged and plain.passes == 200
    assert np.abs(stopped.values - answer).max() > 1e-3


def test_steps_that_lower_the_objective_are_undone() -> None:
    """``F(e) = 0.99 e - 0.005 e^2`` from e = 1 stays above 0 and falls toward it; the
    secant through two of its points (its residual is concave) lands below 0, where the
    objective is far lower: every such step is undone, and the fit goes on by plain EM."""
    toy = ToyMap(
        update=lambda e: 0.99 * e - 0.005 * e**2,
        value=lambda e: -float(e[0] ** 2) if e[0] >= 0 else -1e6,
    )
    seen: list[float] = []
    scored = toy.em_update_scored

    def recording(params: Vector) -> tuple[Vector, float]:
        seen.append(float(params.values[0]))
        return scored(params)

    toy.em_update_scored = recording  # type: ignore[method-assign]
    accepted = list(
        em_acceleration.accepted_points(toy, Vector(np.ones(1)), Vector, max_iterations=40)
    )
    assert any(e < 0 for e in seen)  # steps below 0 were tried ...
    assert all(point.point.values[0] >= 0 for point in accepted)  # ... and never kept
    values = [point.value for point in accepted]
    assert all(later >= earlier for earlier, later in itertools.pairwise(values))
    assert accepted[-1].point.values[0] < 1.0
    assert toy.passes == 40


def test_without_the_forbidden_region_the_same_map_is_solved_quickly() -> None:
    toy = ToyMap(update=lambda e: 0.99 * e - 0.005 * e**2, value=lambda e: -float(e[0] ** 2))
    fitted, converged = em_acceleration.fit_em(
        toy, Vector(np.ones(1)), Vector, max_iterations=100, tolerance=1e-10, accelerate=True
    )
    assert converged and abs(fitted.values[0]) < 1e-8
    assert toy.passes <= 20
    plain = ToyMap(update=toy.update, value=toy.value)
    _, plain_converged = em_acceleration.fit_em(
        plain, Vector(np.ones(1)), Vector, max_iterations=100, tolerance=1e-10, accelerate=False
    )
    assert not plain_converged


def test_a_history_the_least_squares_cannot_solve_gives_no_step() -> None:
    """An update that came back not finite leaves the normal equations unsolvable: the fit
    then takes the plain EM update instead of a step (``mixed`` is None)."""

    class Unchecked(Vector):
        def is_inside(self) -> bool:
            return True  # so only the least squares can refuse the step

    history = em_acceleration._History()
    for start, updated in ((0.0, 1.0), (1.0, np.nan)):
        history.add(
            em_acceleration.Accepted(
                Unchecked(np.full(3, start)), 0.0, Unchecked(np.full(3, updated))
            )
        )
    assert history.mixed(Unchecked) is None
    finite = em_acceleration._History()
    for start, updated in ((0.0, 1.0), (1.0, 1.5)):
        finite.add(
            em_acceleration.Accepted(Vector(np.full(3, start)), 0.0, Vector(np.full(3, updated)))
        )
    mixed = finite.mixed(Vector)
    assert mixed is not None  # the secant through (0 -> 1) and (1 -> 1.5): x = 2
    np.testing.assert_allclose(mixed.values, 2.0)
