"""Davidson's Bradley-Terry model with ties, fitted for many prompts at once.

Per prompt a strength per response and a tie propensity, fitted by Newton's method on the
penalized likelihood of the raters' weighted pair labels; then the consensus tie levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rankings.stats.tables import TIE, BoolArray, FloatArray, RankingTable, slot_pairs

#: Gaussian prior precision on the log-strengths: keeps them finite when raters agree
#: unanimously (the plain maximum-likelihood estimate runs off to infinity) and pins their mean.
STRENGTH_PRIOR = 0.1
#: Gaussian prior precision on the log tie propensity (log nu), centred at nu = 1, where two
#: equal responses tie a third of the time.
TIE_PRIOR = 0.5
TOLERANCE = 1e-5
MAX_ITERATIONS = 100
# Strengths closer than this are equal (symmetric data gives exactly equal strengths).
EQUAL_STRENGTH = 1e-6


# --------------------------------------------------------------------------------------------
# Weighted pair counts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairCounts:
    """Per prompt, weighted counts of how its rankings order each pair of response slots.

    Pair-major, prompts last (so every operation runs over contiguous prompts): row ``q``
    is slot pair ``slot_pairs(k_max)[q] = (i, j)``; ``first_wins[q, p]`` is the weight of
    prompt p's rankings putting i above j, ``second_wins`` j above i, ``ties`` tying them.
    ``present[i, p]``: some ranking of p has slot i.
    """

    first_wins: FloatArray
    second_wins: FloatArray
    ties: FloatArray
    present: BoolArray

    @property
    def n_prompts(self) -> int:
        return int(self.present.shape[1])

    @property
    def k_max(self) -> int:
        return int(self.present.shape[0])

    def take(self, prompts: npt.NDArray[np.intp]) -> PairCounts:
        return PairCounts(
            first_wins=self.first_wins[:, prompts],
            second_wins=self.second_wins[:, prompts],
            ties=self.ties[:, prompts],
            present=self.present[:, prompts],
        )


def pair_counts(table: RankingTable, row_weights: FloatArray) -> PairCounts:
    """Weighted pair counts of every prompt of the table, one weight per ranking."""
    n_prompts, k_max = table.n_prompts, table.k_max
    labels, present = table.label_matrix()
    n_pairs = labels.shape[1]
    counts = np.zeros((3, n_pairs, n_prompts))
    prompt = table.prompt_index
    for pair in range(n_pairs):
        label = labels[:, pair]
        for target, chosen in enumerate((label == 1, label == -1, label == TIE)):
            rows = present[:, pair] & chosen
            counts[target, pair] = np.bincount(
                prompt[rows], weights=row_weights[rows], minlength=n_prompts
            )
    slot_present = np.zeros((k_max, n_prompts), dtype=bool)
    for slot in range(k_max):
        rows = ~np.isnan(table.ranks[:, slot])
        slot_present[slot] = np.bincount(prompt[rows], minlength=n_prompts) > 0
    return PairCounts(
        first_wins=counts[0], second_wins=counts[1], ties=counts[2], present=slot_present
    )


# --------------------------------------------------------------------------------------------
# Davidson's Bradley-Terry with ties
# --------------------------------------------------------------------------------------------
#
# For slots i, j of a prompt with strengths theta and tie propensity nu = exp(eta):
#   P(i above j) = e^theta_i / Z,  P(j above i) = e^theta_j / Z,  P(tie) = nu e^((theta_i +
#   theta_j) / 2) / Z,  Z the sum of the three numerators.
# The objective is the weighted log-likelihood minus STRENGTH_PRIOR / 2 * sum(theta^2) and
# TIE_PRIOR / 2 * eta^2. It is strictly concave (a log-sum-exp of linear functions, minus
# quadratics), so Newton's method with step halving finds its unique maximum. Internally
# parameters are ``(K + 1, P)``: the strengths, then eta.


def davidson_probabilities(
    difference: FloatArray, tie_log: FloatArray | float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """P(first above second), P(second above first), P(tie) and log Z at a log-strength
    ``difference`` (first minus second) and log tie propensity ``tie_log``, elementwise.

    Dividing the three numerators by e^((theta_i + theta_j) / 2) leaves e^(d/2), e^(-d/2)
    and nu: the outcome depends on the strengths through their difference only. ``log Z`` is
    the log of that centred partition. ``tie_log = -inf`` is Bradley-Terry without ties.
    The model-level leaderboard (``rankings.stats.leaderboard``) fits the same outcome model.
    """
    half = np.asarray(difference, dtype=np.float64) / 2.0
    tie = np.broadcast_to(np.asarray(tie_log, dtype=np.float64), half.shape)
    top = np.maximum(np.abs(half), tie)
    e_first, e_second, e_tie = np.exp(half - top), np.exp(-half - top), np.exp(tie - top)
    partition = e_first + e_second + e_tie
    return e_first / partition, e_second / partition, e_tie / partition, top + np.log(partition)


@dataclass(frozen=True)
class DavidsonFit:
    """Fitted log-strengths ``(P, K)`` (0 for absent slots) and log tie propensities ``(P,)``."""

    strength: FloatArray
    tie_log: FloatArray
    iterations: int
    converged: BoolArray


def _pair_slots(k_max: int) -> tuple[list[int], list[int]]:
    pairs = slot_pairs(k_max)
    return [i for i, _ in pairs], [j for _, j in pairs]


class _Model:
    """The Davidson model of some prompts at given parameters ``(K + 1, P)``.

    Holds the outcome probabilities per pair and prompt and the objective, so a Newton step
    computes each exponential once.
    """

    def __init__(self, parameters: FloatArray, counts: PairCounts) -> None:
        self.parameters = parameters
        self.counts = counts
        self.slots = _pair_slots(counts.k_max)
        first, second = self.slots
        a, b = parameters[first], parameters[second]
        c = parameters[-1] + (a + b) / 2.0
        self.p_first, self.p_second, self.p_tie, log_z_centred = davidson_probabilities(
            a - b, parameters[-1]
        )
        self.total = counts.first_wins + counts.second_wins + counts.ties
        log_z = (a + b) / 2.0 + log_z_centred
        likelihood = (
            counts.first_wins * a + counts.second_wins * b + counts.ties * c - self.total * log_z
        ).sum(axis=0)
        strength, tie_log = parameters[:-1], parameters[-1]
        prior = STRENGTH_PRIOR / 2.0 * (strength**2).sum(axis=0) + TIE_PRIOR / 2.0 * tie_log**2
        self.objective = likelihood - prior

    def take(self, keep: npt.NDArray[np.bool_]) -> _Model:
        model = object.__new__(_Model)
        model.parameters = self.parameters[:, keep]
        model.counts = self.counts.take(np.flatnonzero(keep))
        model.slots = self.slots
        for name in ("p_first", "p_second", "p_tie", "total"):
            setattr(model, name, getattr(self, name)[:, keep])
        model.objective = self.objective[keep]
        return model

    def newton_step(self) -> FloatArray:
        """The Newton step ``(K + 1, P)``: the negative Hessian's solution for the gradient.

        The Hessian is kept as its lower triangle of per-prompt vectors: a dense
        ``(K + 1, K + 1, P)`` array would cost more to allocate than to fill.
        """
        counts, total = self.counts, self.total
        size, n = self.parameters.shape
        eta = size - 1
        p_first, p_second, p_tie = self.p_first, self.p_second, self.p_tie
        # Expected derivatives of the outcome's exponent along (first, second, eta).
        mean_first = p_first + p_tie / 2.0
        mean_second = p_second + p_tie / 2.0
        first_gradient = counts.first_wins + counts.ties / 2.0 - total * mean_first
        second_gradient = counts.second_wins + counts.ties / 2.0 - total * mean_second
        # total times the covariance of those derivatives: the Hessian of total * log Z.
        tie_quarter = p_tie / 4.0
        cov_ff = total * (p_first + tie_quarter - mean_first**2)
        cov_ss = total * (p_second + tie_quarter - mean_second**2)
        cov_fs = total * (tie_quarter - mean_first * mean_second)
        weighted_tie = total * p_tie
        cov_fe = weighted_tie * (0.5 - mean_first)
        cov_se = weighted_tie * (0.5 - mean_second)
        gradient = [-STRENGTH_PRIOR * self.parameters[i] for i in range(eta)]
        gradient.append((counts.ties - weighted_tie).sum(axis=0) - TIE_PRIOR * self.parameters[eta])
        lower: list[list[FloatArray]] = [
            [np.zeros(n) for _ in range(row + 1)] for row in range(size)
        ]
        for i in range(eta):
            lower[i][i] += STRENGTH_PRIOR
        lower[eta][eta] = (weighted_tie * (1.0 - p_tie)).sum(axis=0) + TIE_PRIOR
        for pair, (i, j) in enumerate(zip(*self.slots, strict=True)):  # i < j
            gradient[i] += first_gradient[pair]
            gradient[j] += second_gradient[pair]
            lower[i][i] += cov_ff[pair]
            lower[j][j] += cov_ss[pair]
            lower[j][i] += cov_fs[pair]
            lower[eta][i] += cov_fe[pair]
            lower[eta][j] += cov_se[pair]
        return np.array(_solve_positive_definite(lower, gradient))


def _solve_positive_definite(
    matrix: list[list[FloatArray]], vector: list[FloatArray]
) -> list[FloatArray]:
    """Solve ``A x = b`` for every prompt at once by Cholesky.

    ``matrix[i][j]`` (j <= i) is the lower triangle of the symmetric positive definite A
    as vectors over prompts; loops run over the small matrix dimension only.
    """
    size = len(vector)
    factor: list[list[FloatArray]] = [[] for _ in range(size)]
    for i in range(size):
        for j in range(i + 1):
            value = matrix[i][j].copy()
            for k in range(j):
                value -= factor[i][k] * factor[j][k]
            factor[i].append(np.sqrt(value) if i == j else value / factor[j][j])
    forward: list[FloatArray] = []
    for i in range(size):
        value = vector[i].copy()
        for k in range(i):
            value -= factor[i][k] * forward[k]
        forward.append(value / factor[i][i])
    solution: list[FloatArray] = [np.empty(0)] * size
    for i in reversed(range(size)):
        value = forward[i].copy()
        for k in range(i + 1, size):
            value -= factor[k][i] * solution[k]
        solution[i] = value / factor[i][i]
    return solution


def _starting_point(counts: PairCounts) -> FloatArray:
    """Strengths from each slot's net win share, scaled to where fits usually land.

    Newton converges from anywhere (the objective is concave and steps are halved when
    needed); starting near the answer only saves iterations (about a fifth).
    """
    net = np.zeros((counts.k_max + 1, counts.n_prompts))
    compared = np.zeros((counts.k_max, counts.n_prompts))
    total = counts.first_wins + counts.second_wins + counts.ties
    for pair, (i, j) in enumerate(zip(*_pair_slots(counts.k_max), strict=True)):
        margin = counts.first_wins[pair] - counts.second_wins[pair]
        net[i] += margin
        net[j] -= margin
        compared[i] += total[pair]
        compared[j] += total[pair]
    net[:-1] *= 3.0 / (compared + 1.0)
    return net


# Prompts fitted together: bounds the memory of the per-pair arrays of a Newton step.
FIT_BLOCK = 32_768


def fit_davidson(
    counts: PairCounts, tolerance: float = TOLERANCE, max_iterations: int = MAX_ITERATIONS
) -> DavidsonFit:
    """Maximize ``davidson_objective`` for every prompt (Newton, step halving), in blocks.

    Prompts leave the iteration as they converge (largest step below ``tolerance``), so the
    work shrinks with them.
    """
    if counts.n_prompts <= FIT_BLOCK:
        return _fit_block(counts, tolerance, max_iterations)
    fits = [
        _fit_block(counts.take(np.arange(start, min(start + FIT_BLOCK, counts.n_prompts))),
                   tolerance, max_iterations)
        for start in range(0, counts.n_prompts, FIT_BLOCK)
    ]  # fmt: skip
    return DavidsonFit(
        strength=np.concatenate([fit.strength for fit in fits]),
        tie_log=np.concatenate([fit.tie_log for fit in fits]),
        iterations=max(fit.iterations for fit in fits),
        converged=np.concatenate([fit.converged for fit in fits]),
    )


def _fit_block(counts: PairCounts, tolerance: float, max_iterations: int) -> DavidsonFit:
    n_prompts = counts.n_prompts
    parameters = _starting_point(counts)
    converged = np.zeros(n_prompts, dtype=bool)
    active = np.arange(n_prompts)
    model = _Model(parameters, counts)
    iterations = 0
    while active.size and iterations < max_iterations:
        iterations += 1
        step = model.newton_step()
        trial = _Model(model.parameters + step, model.counts)
        scale = np.ones(active.size)
        for _ in range(60):
            worse = trial.objective < model.objective - 1e-12 * np.abs(model.objective)
            if not worse.any():
                break
            # Rare: halve the step of the prompts where the full step overshoots.
            scale = np.where(worse, scale / 2.0, scale)
            trial = _Model(model.parameters + scale * step, model.counts)
        parameters[:, active] = trial.parameters
        done = np.abs(scale * step).max(axis=0) < tolerance
        converged[active[done]] = True
        active = active[~done]
        model = trial.take(~done) if done.any() else trial
    return DavidsonFit(
        strength=np.ascontiguousarray(parameters[:-1].T),
        tie_log=parameters[-1].copy(),
        iterations=iterations,
        converged=converged,
    )


def consensus_levels(strength: FloatArray, tie_log: FloatArray, present: BoolArray) -> FloatArray:
    """Dense tie levels ``(P, K)`` (1 = best, NaN for absent slots) from fitted strengths.

    Responses in strength order; one joins the group of the group's strongest response when
    the model finds a tie the most likely outcome between them (nu * sqrt(pi_a * pi_b) >=
    max(pi_a, pi_b), i.e. their log-strength gap is at most 2 * eta), or when their
    strengths are equal.
    """
    n_prompts, k_max = strength.shape
    levels = np.full((n_prompts, k_max), np.nan)
    if k_max == 0:
        return levels
    order = np.argsort(np.where(present, -strength, np.inf), axis=1, kind="stable")
    sorted_strength = np.take_along_axis(strength, order, axis=1)
    sorted_present = np.take_along_axis(present, order, axis=1)
    tie_gap = np.maximum(2.0 * tie_log, EQUAL_STRENGTH)
    levels_sorted = np.full((n_prompts, k_max), np.nan)
    level = np.ones(n_prompts)
    leader = sorted_strength[:, 0]
    levels_sorted[:, 0] = np.where(sorted_present[:, 0], 1.0, np.nan)
    for position in range(1, k_max):
        new_group = leader - sorted_strength[:, position] > tie_gap
        level = np.where(new_group, level + 1.0, level)
        leader = np.where(new_group, sorted_strength[:, position], leader)
        levels_sorted[:, position] = np.where(sorted_present[:, position], level, np.nan)
    np.put_along_axis(levels, order, levels_sorted, axis=1)
    return levels
