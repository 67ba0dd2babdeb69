"""Consensus ranking per prompt from its raters' rankings; pure numpy, vectorized over prompts.

Bradley-Terry with ties in Davidson's form is the default: per prompt a strength per response
and a tie propensity, fitted by Newton's method on the penalized likelihood of the raters'
pair labels, each rater weighted by reliability. Borda count is the baseline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rankings.metrics import (
    TIE,
    BoolArray,
    FloatArray,
    IntArray,
    RankingTable,
    mid_ranks,
    one_ranking_per_rater,
    pair_label_matrix,
    ranks_from_groups,
    slot_pairs,
)

BRADLEY_TERRY = "bradley_terry"
BORDA = "borda"
METHODS = (BRADLEY_TERRY, BORDA)

#: Gaussian prior precision on the log-strengths: keeps them finite when raters agree
#: unanimously (the plain maximum-likelihood estimate runs off to infinity) and pins their mean.
STRENGTH_PRIOR = 0.1
#: Gaussian prior precision on the log tie propensity (log nu), centred at nu = 1, where two
#: equal responses tie a third of the time.
TIE_PRIOR = 0.5
TOLERANCE = 1e-5
MAX_ITERATIONS = 100
#: Reliability weights never drop below this, so no rater's ranking is ignored outright.
RELIABILITY_FLOOR = 0.05
# Strengths closer than this are equal (symmetric data gives exactly equal strengths).
EQUAL_STRENGTH = 1e-6


@dataclass(frozen=True)
class ConsensusResult:
    groups: list[list[int]]
    """Consensus tie groups of response ids, best first."""
    scores: dict[int, float] = field(default_factory=dict)
    """Strength per response id (higher is better)."""
    agreement: float | None = None
    """Weighted share of rater pair labels that agree with the consensus order."""
    method: str = BORDA


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


@dataclass(frozen=True)
class DavidsonFit:
    """Fitted log-strengths ``(P, K)`` (0 for absent slots) and log tie propensities ``(P,)``."""

    strength: FloatArray
    tie_log: FloatArray
    iterations: int
    converged: BoolArray


def davidson_objective(strength: FloatArray, tie_log: FloatArray, counts: PairCounts) -> FloatArray:
    """The penalized log-likelihood per prompt that ``fit_davidson`` maximizes.

    ``strength`` is ``(P, K)``, ``tie_log`` ``(P,)``.
    """
    parameters = np.vstack([np.asarray(strength, dtype=np.float64).T, tie_log])
    return _Model(parameters, counts).objective


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
        top = np.maximum(np.maximum(a, b), c)
        e_first, e_second, e_tie = np.exp(a - top), np.exp(b - top), np.exp(c - top)
        partition = e_first + e_second + e_tie
        self.p_first = e_first / partition
        self.p_second = e_second / partition
        self.p_tie = e_tie / partition
        self.total = counts.first_wins + counts.second_wins + counts.ties
        log_z = top + np.log(partition)
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


# --------------------------------------------------------------------------------------------
# Prompt consensus for a whole project
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptConsensus:
    """Consensus of every prompt of a table.

    ``levels`` are dense tie levels per slot like ``RankingTable.ranks`` (NaN: absent);
    ``strength`` the fitted log-strengths (Borda points for Borda); ``agreement`` the
    weighted share of the rankings' pair labels that match the consensus labels (NaN for a
    prompt without pairs); ``n_rankings`` the rankings behind it (one per rater).
    """

    levels: FloatArray
    strength: FloatArray
    agreement: FloatArray
    n_rankings: IntArray
    method: str


def reliability_weights(
    agreement: npt.ArrayLike, chance: float | None, floor: float = RELIABILITY_FLOOR
) -> FloatArray:
    """A weight per rater from leave-one-out agreement, rescaled so chance level is 0.

    ``(agreement - chance) / (1 - chance)``, clipped to [floor, 1]: a random clicker weighs
    ``floor``, a rater who always agrees 1. Raters without agreement (no co-raters) get the
    median weight of the others, or 1 when nobody has one.
    """
    values = np.asarray(agreement, dtype=np.float64)
    chance = chance if chance is not None and 0.0 <= chance < 1.0 else 0.0
    weights = np.clip((values - chance) / (1.0 - chance), floor, 1.0)
    known = ~np.isnan(weights)
    fill = float(np.median(weights[known])) if known.any() else 1.0
    return np.where(known, weights, fill)


def prompt_consensus(
    table: RankingTable, rater_weights: FloatArray | None = None, method: str = BRADLEY_TERRY
) -> PromptConsensus:
    """The consensus of every prompt of the table (one ranking per rater and prompt)."""
    blocks = [result for _, _, result in prompt_consensus_blocks(table, rater_weights, method)]
    if len(blocks) == 1:
        return blocks[0]
    return PromptConsensus(
        levels=np.concatenate([block.levels for block in blocks]).reshape(-1, table.k_max),
        strength=np.concatenate([block.strength for block in blocks]).reshape(-1, table.k_max),
        agreement=np.concatenate([np.zeros(0), *(block.agreement for block in blocks)]),
        n_rankings=np.concatenate(
            [np.zeros(0, dtype=np.int64), *(block.n_rankings for block in blocks)]
        ),
        method=method,
    )


def prompt_consensus_blocks(
    table: RankingTable,
    rater_weights: FloatArray | None = None,
    method: str = BRADLEY_TERRY,
    block: int = FIT_BLOCK,
) -> Iterator[tuple[int, int, PromptConsensus]]:
    """``prompt_consensus`` of prompts ``start`` to ``stop``, block after block.

    A caller can store one block while the next is fitted; the memory of a fit stays that
    of a block.
    """
    if method not in METHODS:
        raise ValueError(f"unknown consensus method {method!r}; use one of {METHODS}")
    table = one_ranking_per_rater(table)
    if rater_weights is None:
        weights = np.ones(table.n_rankings)
    else:
        weights = np.asarray(rater_weights, dtype=np.float64)[table.rater_index]
    by_prompt = np.argsort(table.prompt_index, kind="stable")
    bounds = np.searchsorted(table.prompt_index[by_prompt], np.arange(0, table.n_prompts, block))
    bounds = np.append(bounds, table.n_rankings)
    for number, start in enumerate(range(0, max(table.n_prompts, 1), block)):
        stop = min(start + block, table.n_prompts)
        rows = by_prompt[bounds[number] : bounds[number + 1]] if table.n_prompts else by_prompt
        part = RankingTable(
            prompt_index=table.prompt_index[rows] - start,
            rater_index=table.rater_index[rows],
            ranks=table.ranks[rows],
            n_prompts=stop - start,
            n_raters=table.n_raters,
            one_per_rater=True,
        )
        yield start, stop, _consensus_of(part, weights[rows], method)


def _consensus_of(table: RankingTable, row_weights: FloatArray, method: str) -> PromptConsensus:
    counts = pair_counts(table, row_weights)
    present = counts.present.T
    if method == BRADLEY_TERRY:
        fit = fit_davidson(counts)
        strength = fit.strength
        levels = consensus_levels(strength, fit.tie_log, present)
    else:
        strength = _borda_points(table, row_weights)
        levels = consensus_levels(strength, np.zeros(table.n_prompts), present)
    return PromptConsensus(
        levels=levels,
        strength=np.where(present, strength, np.nan),
        agreement=_agreement_with(table, row_weights, levels),
        n_rankings=np.bincount(table.prompt_index, minlength=table.n_prompts),
        method=method,
    )


def _borda_points(table: RankingTable, row_weights: FloatArray) -> FloatArray:
    """Weighted Borda points per slot: K minus the mid-rank in each ranking."""
    present = ~np.isnan(table.ranks)
    size = present.sum(axis=1, keepdims=True)
    points = np.where(present, size - mid_ranks(table.ranks), 0.0) * row_weights[:, np.newaxis]
    totals = np.zeros((table.n_prompts, table.k_max))
    np.add.at(totals, table.prompt_index, points)
    return totals


def _agreement_with(table: RankingTable, row_weights: FloatArray, levels: FloatArray) -> FloatArray:
    labels, present = table.label_matrix()
    consensus_labels, consensus_present = pair_label_matrix(levels)
    prompt = table.prompt_index
    compared = present & consensus_present[prompt]
    matched = compared & (labels == consensus_labels[prompt])
    weights = row_weights[:, np.newaxis]
    compared_weight = np.bincount(
        prompt, weights=(compared * weights).sum(axis=1), minlength=table.n_prompts
    )
    matched_weight = np.bincount(
        prompt, weights=(matched * weights).sum(axis=1), minlength=table.n_prompts
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(compared_weight > 0, matched_weight / compared_weight, np.nan)


# --------------------------------------------------------------------------------------------
# One prompt
# --------------------------------------------------------------------------------------------


def borda_consensus(
    rankings: list[list[list[int]]], weights: list[float] | None = None
) -> ConsensusResult:
    """Borda count with mid-rank points for ties; the baseline consensus."""
    return consensus_ranking(rankings, weights, method=BORDA)


def consensus_ranking(
    rankings: list[list[list[int]]],
    weights: list[float] | None = None,
    method: str = BRADLEY_TERRY,
) -> ConsensusResult:
    """The consensus of one prompt's rankings (each a list of tie groups of response ids).

    ``weights`` (one per ranking, default 1) say how much each ranking counts, e.g.
    ``reliability_weights`` of its rater. ``method`` is ``bradley_terry`` (Davidson's
    model with ties; scores are log-strengths) or ``borda`` (scores are weighted points).
    """
    if method not in METHODS:
        raise ValueError(f"unknown consensus method {method!r}; use one of {METHODS}")
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("give one weight per ranking")
    response_ids = sorted({int(item) for groups in rankings for group in groups for item in group})
    if not response_ids:
        return ConsensusResult(groups=[], scores={}, agreement=None, method=method)
    slot_of = {response_id: slot for slot, response_id in enumerate(response_ids)}
    table = RankingTable(
        prompt_index=np.zeros(len(rankings), dtype=np.int64),
        rater_index=np.arange(len(rankings), dtype=np.int64),
        ranks=np.array([ranks_from_groups(groups, slot_of, len(slot_of)) for groups in rankings]),
    )
    result = prompt_consensus(table, np.asarray(weights, dtype=np.float64), method)
    levels, strength = result.levels[0], result.strength[0]
    groups: dict[int, list[int]] = {}
    for slot in np.argsort(-strength, kind="stable").tolist():
        groups.setdefault(int(levels[slot]), []).append(response_ids[slot])
    agreement = float(result.agreement[0])
    return ConsensusResult(
        groups=[groups[level] for level in sorted(groups)],
        scores={response_ids[slot]: float(strength[slot]) for slot in range(len(response_ids))},
        agreement=agreement if np.isfinite(agreement) else None,
        method=method,
    )
