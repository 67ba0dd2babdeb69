"""Which model wins: Bradley-Terry strengths with ties (Davidson) per model, with bootstrap
intervals over prompts, a win-rate matrix, and a length-controlled variant.

Every ranking of K responses gives K(K-1)/2 pair outcomes (ties kept). Weighting: each
(prompt, response pair) weighs 1 in total, shared equally among the prompt's rankings, so
a prompt's raters cast vote shares and a prompt with many raters counts as much as one with
few (the raters of a prompt see the same two responses: their votes are not independent
evidence about the models). Pairs of responses from the same model stay in the fit (they
inform the tie propensity and the length effect) but not in wins and losses.

The model, per comparison of models a and b: log-strength difference
``d = theta_a - theta_b + beta * x`` with ``x`` the relative length difference
``(len_a - len_b) / (len_a + len_b)`` (length control only, as Chatbot Arena's style
control adds style features to its Bradley-Terry regression), and Davidson's outcome
probabilities at ``d`` and the tie propensity ``nu`` (``davidson.davidson_probabilities``).
Strengths are therefore those at equal length. Weak Gaussian priors (``STRENGTH_PRIOR``,
``TIE_PRIOR``) keep every estimate finite (an unbeaten model, a project without ties) and
centre the strengths at mean 0; on real data their pull is negligible. Intervals are
percentile intervals over bootstrap resamples of prompts (seeded, in a canonical prompt
order, so the same data give the same intervals whatever the import order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from rankings.stats.bootstrap import percentile_interval
from rankings.stats.davidson import davidson_probabilities
from rankings.stats.model_comparisons import (
    FIRST_WINS,
    LENGTH_RESOLUTION,
    SECOND_WINS,
    TIES,
    ModelComparisons,
    compared_models,
    model_comparisons,
    only_compared_models,
    resampled_counts,
    win_matrices,
)
from rankings.stats.tables import BoolArray, FloatArray, IntArray, RankingTable

STRENGTH_PRIOR = 0.01
"""Gaussian prior precision on the model log-strengths and the length coefficient."""
TIE_PRIOR = 0.01
"""Gaussian prior precision on the log tie propensity (log nu), centred at nu = 1."""
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
TOLERANCE = 1e-9
MAX_ITERATIONS = 200


# --------------------------------------------------------------------------------------------
# The fit: Newton's method for many outcome tables at once (the data and its resamples)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeFit:
    """Per fitted outcome table: centred log-strengths ``(B, M)``, the length coefficient
    and log tie propensity ``(B,)`` (None when not fitted)."""

    strength: FloatArray
    length_effect: FloatArray | None
    tie_log: FloatArray | None
    converged: BoolArray
    parameters: FloatArray
    """The raw parameters ``(B, D)``, e.g. to start the resamples' fits from."""


class _Design:
    """The linear part ``d = X w``: a column per model (+1 first, -1 second), then the
    covariate; and the per-cell outer products of X's rows, for the Hessian."""

    def __init__(self, comparisons: ModelComparisons, length_control: bool) -> None:
        n_cells, n_models = comparisons.n_cells, comparisons.n_models
        self.size = n_models + int(length_control)
        cells = np.arange(n_cells)
        rows = [cells, cells]
        columns = [comparisons.first, comparisons.second]
        values = [np.ones(n_cells), -np.ones(n_cells)]
        if length_control:
            rows.append(cells)
            columns.append(np.full(n_cells, n_models))
            values.append(comparisons.covariate)
        matrix = sparse.coo_array(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
            shape=(n_cells, self.size),
        )
        self.matrix = matrix.tocsr()  # sums +1 and -1 of a model against itself to 0
        dense_rows = self.matrix.toarray()
        outer = np.einsum("ci,cj->cij", dense_rows, dense_rows).reshape(n_cells, -1)
        self.outer = sparse.csr_array(outer)

    def apply(self, weights: FloatArray) -> FloatArray:
        """``d`` per table and cell ``(B, C)`` from the linear weights ``(B, size)``."""
        return np.asarray((self.matrix @ weights.T).T)

    def gradient(self, per_cell: FloatArray) -> FloatArray:
        return np.asarray((self.matrix.T @ per_cell.T).T)

    def hessian(self, per_cell: FloatArray) -> FloatArray:
        flat = np.asarray((self.outer.T @ per_cell.T).T)
        return flat.reshape(len(per_cell), self.size, self.size)


class _State:
    """Outcome probabilities and the objective of each table at given parameters."""

    def __init__(self, parameters: FloatArray, design: _Design, counts: FloatArray, ties: bool):
        self.parameters = parameters
        linear = parameters[:, : design.size]
        self.tie_log = (
            parameters[:, design.size :] if ties else np.full((len(parameters), 1), -np.inf)
        )
        self.difference = design.apply(linear)
        self.p_first, self.p_second, self.p_tie, log_z = davidson_probabilities(
            self.difference, self.tie_log
        )
        first, second, tie = counts[:, FIRST_WINS], counts[:, SECOND_WINS], counts[:, TIES]
        likelihood = (first - second) * self.difference / 2.0 - (first + second + tie) * log_z
        if ties:
            likelihood = likelihood + tie * self.tie_log
        prior = STRENGTH_PRIOR / 2.0 * (linear**2).sum(axis=1)
        if ties:
            prior = prior + TIE_PRIOR / 2.0 * self.tie_log[:, 0] ** 2
        self.objective = likelihood.sum(axis=1) - prior


def _newton_step(state: _State, design: _Design, counts: FloatArray, ties: bool) -> FloatArray:
    first, second, tie = counts[:, FIRST_WINS], counts[:, SECOND_WINS], counts[:, TIES]
    total = first + second + tie
    mean = (state.p_first - state.p_second) / 2.0  # E[d log Z / d d]
    linear = state.parameters[:, : design.size]
    gradient = design.gradient((first - second) / 2.0 - total * mean) - STRENGTH_PRIOR * linear
    curvature = total * ((state.p_first + state.p_second) / 4.0 - mean**2)
    hessian = design.hessian(curvature) + STRENGTH_PRIOR * np.eye(design.size)
    if ties:
        tie_log = state.tie_log[:, 0]
        tie_gradient = (tie - total * state.p_tie).sum(axis=1) - TIE_PRIOR * tie_log
        cross = design.gradient(-total * mean * state.p_tie)
        tie_curvature = (total * state.p_tie * (1.0 - state.p_tie)).sum(axis=1) + TIE_PRIOR
        size = design.size + 1
        full = np.zeros((len(counts), size, size))
        full[:, :-1, :-1] = hessian
        full[:, :-1, -1] = cross
        full[:, -1, :-1] = cross
        full[:, -1, -1] = tie_curvature
        hessian = full
        gradient = np.column_stack([gradient, tie_gradient])
    step: FloatArray = np.linalg.solve(hessian, gradient[:, :, np.newaxis])[:, :, 0]
    return step


def fit_outcomes(
    comparisons: ModelComparisons,
    counts: FloatArray,
    *,
    length_control: bool,
    ties: bool,
    start: FloatArray | None = None,
) -> OutcomeFit:
    """Maximize the penalized Davidson log-likelihood of each outcome table ``(B, 3, C)``.

    Newton's method with step halving; the objective is strictly concave, so each table
    has one maximum. ``ties`` False fits Bradley-Terry without ties (nu = 0).
    """
    design = _Design(comparisons, length_control)
    counts = np.asarray(counts, dtype=np.float64)
    n_tables = len(counts)
    parameters = np.zeros((n_tables, design.size + int(ties)))
    if start is not None:  # near the answer (the data's own fit for its resamples)
        parameters[:] = start
    state = _State(parameters, design, counts, ties)
    converged = np.zeros(n_tables, dtype=bool)
    for _ in range(MAX_ITERATIONS):
        step = _newton_step(state, design, counts, ties)
        step[converged] = 0.0
        scale = np.ones(n_tables)
        trial = _State(state.parameters + step, design, counts, ties)
        for _ in range(60):
            worse = trial.objective < state.objective - 1e-12 * np.abs(state.objective)
            if not worse.any():
                break
            scale = np.where(worse, scale / 2.0, scale)
            trial = _State(state.parameters + scale[:, np.newaxis] * step, design, counts, ties)
        state = trial
        converged |= np.abs(scale[:, np.newaxis] * step).max(axis=1, initial=0.0) < TOLERANCE
        if converged.all():
            break
    strength = state.parameters[:, : comparisons.n_models]
    return OutcomeFit(
        strength=strength - strength.mean(axis=1, keepdims=True),
        length_effect=state.parameters[:, comparisons.n_models] if length_control else None,
        tie_log=state.parameters[:, -1] if ties else None,
        converged=converged,
        parameters=state.parameters,
    )


# --------------------------------------------------------------------------------------------
# The leaderboard
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelStanding:
    name: str
    strength: float | None
    """Log-strength (mean 0 over the models); with length control, at equal length."""
    low: float | None
    high: float | None
    wins: float
    ties: float
    losses: float
    comparisons: float
    """Prompt-level comparisons with other models (each a response pair of one prompt)."""


@dataclass(frozen=True)
class Leaderboard:
    models: list[ModelStanding]
    """Strongest first; the matrices below use this order."""
    win_rate: list[list[float | None]]
    """``win_rate[i][j]``: share of comparisons of model i with model j that i won, ties
    counting half; None where the two never met."""
    comparisons: list[list[float]]
    tie_propensity: float | None
    length_effect: float | None
    """Log-odds of preferring a response with ``x = 1`` (the other one empty) over an equal one."""
    length_effect_interval: list[float] | None
    n_prompts: int
    n_rankings: int
    length_controlled: bool
    resamples: int
    seed: int
    confidence: float
    converged: bool


def model_leaderboard(
    table: RankingTable,
    model_index: IntArray,
    model_names: list[str],
    response_length: FloatArray | None = None,
    *,
    length_control: bool = False,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
    length_resolution: float = LENGTH_RESOLUTION,
) -> Leaderboard:
    """The leaderboard of the models behind a table's rankings (see the module docstring).

    ``model_index[p, s]`` indexes ``model_names`` (-1: no model). For the consensus, pass a
    table with one ranking per prompt.
    """
    # Models indexed in name order: cells, and so the canonical prompt order and the
    # resamples, then do not depend on how the caller numbered the models.
    by_name = sorted(range(len(model_names)), key=lambda index: model_names[index])
    renumber = np.full(len(model_names) + 1, -1, dtype=np.int64)
    renumber[by_name] = np.arange(len(model_names))
    model_index = renumber[np.asarray(model_index, dtype=np.int64)]  # -1 stays -1
    model_names = [model_names[index] for index in by_name]
    comparisons = model_comparisons(
        table,
        model_index,
        response_length,
        n_models=len(model_names),
        length_control=length_control,
        length_resolution=length_resolution,
    )
    comparisons = only_compared_models(comparisons)
    totals = comparisons.totals()
    names = [model_names[index] for index in compared_models(comparisons)]
    wins, meetings = win_matrices(comparisons, totals)
    has_ties = bool(totals[TIES].sum() > 0)
    fitted = len(names) >= 2
    strength = np.full(len(names), np.nan)
    draws = np.full((0, len(names)), np.nan)
    point: OutcomeFit | None = None
    resampled: OutcomeFit | None = None
    if fitted:
        point = fit_outcomes(
            comparisons, totals[np.newaxis], length_control=length_control, ties=has_ties
        )
        strength = point.strength[0]
        if resamples > 0:
            resampled = fit_outcomes(
                comparisons,
                resampled_counts(comparisons, resamples, seed),
                length_control=length_control,
                ties=has_ties,
                start=point.parameters[0],
            )
            draws = resampled.strength
    order = sorted(
        range(len(names)), key=lambda m: (-np.nan_to_num(strength[m], nan=-np.inf), names[m])
    )
    standings = []
    for m in order:
        interval = percentile_interval(draws[:, m], confidence) if len(draws) else None
        won = float(wins[m].sum())
        lost = float(wins[:, m].sum())
        met = float(meetings[m].sum())
        standings.append(
            ModelStanding(
                name=names[m],
                strength=_number(strength[m]),
                low=interval[0] if interval else None,
                high=interval[1] if interval else None,
                # Sums of vote shares: rounded so 1/3 + 2/3 reads 1, and no tie is -1e-15.
                wins=round(won, 9),
                ties=round(met - won - lost, 9) + 0.0,
                losses=round(lost, 9),
                comparisons=round(met, 9),
            )
        )
    effect_draws = resampled.length_effect if resampled is not None else None
    return Leaderboard(
        models=standings,
        win_rate=[
            [
                None
                if meetings[i, j] == 0
                else float(
                    (wins[i, j] + (meetings[i, j] - wins[i, j] - wins[j, i]) / 2) / meetings[i, j]
                )
                for j in order
            ]
            for i in order
        ],
        comparisons=[[float(meetings[i, j]) for j in order] for i in order],
        tie_propensity=(
            float(np.exp(point.tie_log[0]))
            if point is not None and point.tie_log is not None
            else (None if not fitted else 0.0)
        ),
        length_effect=(
            float(point.length_effect[0])
            if point is not None and point.length_effect is not None
            else None
        ),
        length_effect_interval=(
            percentile_interval(effect_draws, confidence) if effect_draws is not None else None
        ),
        n_prompts=comparisons.n_prompts,
        n_rankings=table.n_rankings,
        length_controlled=length_control,
        resamples=resamples if fitted else 0,
        seed=seed,
        confidence=confidence,
        converged=bool(point is None or point.converged.all())
        and bool(resampled is None or resampled.converged.all()),
    )


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
