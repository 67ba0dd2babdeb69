"""EM accelerated by SQUAREM (Varadhan & Roland 2008, scheme S3), over any EM map whose
points can be written as unconstrained vectors and whose update can also give the
objective at the point it starts from (``EMMap``). ``rankings.stats.reliability`` fits its
model with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, Self

import numpy as np

from rankings.stats.tables import FloatArray

SHORTEST_STEP = 0.01
"""A step closer than this to plain EM's is taken as plain EM's."""
ROUNDING = 1e-12
"""Relative slack when comparing objectives: sums over millions of labels differ by about
this much with the order of summation, and a fit by blocks must decide as one in memory."""


class Point(Protocol):
    def moved(self, other: Self) -> float:
        """How far the farthest coordinate is from ``other``'s (the stopping rule's)."""
        ...

    def as_vector(self) -> FloatArray:
        """The point where SQUAREM extrapolates (any vector maps back to a point)."""
        ...

    def is_inside(self) -> bool:
        """False for a point an extrapolation overflowed."""
        ...


class EMMap[P: Point](Protocol):
    passes: int  # updates so far: each is a pass over the data

    def em_update(self, params: P) -> P: ...

    def em_update_scored(self, params: P) -> tuple[P, float]:
        """``em_update`` and the objective at ``params``, from the same pass."""
        ...


def fit_em[P: Point](
    em: EMMap[P],
    start: P,
    from_vector: Callable[[FloatArray], P],
    *,
    max_iterations: int,
    tolerance: float,
    accelerate: bool,
) -> tuple[P, bool]:
    """EM from ``start`` until an update moves no coordinate by ``tolerance`` or more
    (converged) or ``max_iterations`` passes are spent; accelerated by SQUAREM unless
    ``accelerate`` is false (plain EM: one update per pass)."""
    if accelerate:
        return _squarem(em, start, from_vector, max_iterations=max_iterations, tolerance=tolerance)
    params = start
    while em.passes < max_iterations:
        new = em.em_update(params)
        moved = new.moved(params)
        params = new
        if moved < tolerance:
            return params, True
    return params, False


def _squarem[P: Point](
    em: EMMap[P],
    params: P,
    from_vector: Callable[[FloatArray], P],
    *,
    max_iterations: int,
    tolerance: float,
) -> tuple[P, bool]:
    """Three passes a cycle: from x, two EM updates F(x) and F(F(x)); with r = F(x) - x and
    v = F(F(x)) - 2 F(x) + x (as vectors), the step alpha = -|r| / |v| (at most -1),
    x' = x - 2 alpha r + alpha^2 v, then one stabilising update F(x'). A step whose point
    overflows is halved toward -1 (alpha = -1 gives x' = F(F(x))) until x' is inside.
    Where x' has a lower objective than x (beyond rounding), the cycle ends at F(F(x)), the
    plain EM point, instead: the objective never decreases from one cycle to the next
    (EM's own guarantee carries it from x' to F(x')). The objective at x and at x' comes
    with the update from them, so the check costs no extra pass. (Halving a rejected step
    and trying again, at a pass each, cost more passes than it saved on test data.)"""
    while em.passes < max_iterations:
        first, value = em.em_update_scored(params)
        if first.moved(params) < tolerance:
            return first, True
        if em.passes >= max_iterations:
            return first, False
        second = em.em_update(first)
        if second.moved(first) < tolerance:
            return second, True
        start, middle = params.as_vector(), first.as_vector()
        change = middle - start
        curvature = second.as_vector() - 2.0 * middle + start
        curvature_norm = float(np.linalg.norm(curvature))
        alpha = -float(np.linalg.norm(change)) / curvature_norm if curvature_norm > 0 else -1.0
        jumped = _step_inside(from_vector, start, change, curvature, alpha)
        params = second
        if jumped is None or em.passes >= max_iterations:
            continue  # x' is F(F(x)): the next cycle starts there
        stabilised, jumped_value = em.em_update_scored(jumped)
        if jumped_value >= value - ROUNDING * abs(value):
            params = stabilised
            if stabilised.moved(jumped) < tolerance:
                return params, True
    return params, False


def _step_inside[P: Point](
    from_vector: Callable[[FloatArray], P],
    start: FloatArray,
    change: FloatArray,
    curvature: FloatArray,
    alpha: float,
) -> P | None:
    """The SQUAREM point of step ``alpha`` (at most -1), the step halved toward -1 until the
    point is inside (only an overflow leaves it); None once the step is within
    ``SHORTEST_STEP`` of -1 (the point is then F(F(x)) itself)."""
    alpha = min(alpha, -1.0)
    while alpha < -1.0 - SHORTEST_STEP:
        jumped = from_vector(start - 2.0 * alpha * change + alpha**2 * curvature)
        if jumped.is_inside():
            return jumped
        alpha = (alpha - 1.0) / 2.0
    return None
