"""Pair outcomes between models, from rankings: the data the leaderboard fits.

Every ranking of K responses gives K(K-1)/2 outcomes (ties kept); each (prompt, response
pair) weighs 1 in total, shared among the prompt's rankings. Outcomes are grouped into cells
(a model pair and, with length control, a rounded relative length difference) and kept per
prompt, so a bootstrap resample of prompts is one sparse product
(``rankings.stats.leaderboard`` says why and fits them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from rankings.stats.bootstrap import bootstrap_weight_blocks
from rankings.stats.davidson import pair_counts
from rankings.stats.tables import FloatArray, IntArray, RankingTable, slot_pairs

LENGTH_RESOLUTION = 0.01
"""Relative length differences are rounded to this step, so comparisons group into a few
thousand cells and every bootstrap fit is small; 0 keeps them exact."""

FIRST_WINS, SECOND_WINS, TIES = 0, 1, 2
OUTCOMES = 3


@dataclass(frozen=True)
class ModelComparisons:
    """Prompt-level outcomes between models, grouped into cells.

    A cell is a model pair ``first <= second`` and a length covariate (0 without length
    control). ``by_prompt[p, 3 c + o]`` is the weight prompt p puts on outcome o (first
    wins, second wins, tie) of cell c. Prompts without comparisons are dropped and the rest
    put in a canonical order; cells are sorted: both depend on the data only.
    """

    first: IntArray
    second: IntArray
    covariate: FloatArray
    by_prompt: sparse.csr_array
    n_models: int

    @property
    def n_cells(self) -> int:
        return len(self.first)

    @property
    def n_prompts(self) -> int:
        return int(self.by_prompt.shape[0])

    def totals(self) -> FloatArray:
        """``(3, C)`` outcome weights summed over the prompts."""
        summed = np.asarray(self.by_prompt.sum(axis=0), dtype=np.float64).reshape(-1)
        return summed.reshape(self.n_cells, OUTCOMES).T.copy()


def model_comparisons(
    table: RankingTable,
    model_index: IntArray,
    response_length: FloatArray | None = None,
    *,
    n_models: int,
    length_control: bool = False,
    length_resolution: float = LENGTH_RESOLUTION,
) -> ModelComparisons:
    """The comparisons of a table's rankings between the models of their responses.

    ``model_index[p, s]`` is the model of prompt p's slot s (-1: none, or absent);
    ``response_length[p, s]`` its length (needed with ``length_control``).
    """
    n_prompts, k_max = table.n_prompts, table.k_max
    model_index = np.asarray(model_index, dtype=np.int64).reshape(n_prompts, k_max)
    rankings_per_prompt = np.bincount(table.prompt_index, minlength=n_prompts)
    counts = pair_counts(table, 1.0 / rankings_per_prompt[table.prompt_index])
    parts: list[tuple[FloatArray, ...]] = []
    for pair, (i, j) in enumerate(slot_pairs(k_max)):
        first_model, second_model = model_index[:, i], model_index[:, j]
        wins = (counts.first_wins[pair], counts.second_wins[pair], counts.ties[pair])
        keep = (first_model >= 0) & (second_model >= 0) & (wins[0] + wins[1] + wins[2] > 0)
        covariate = np.zeros(n_prompts)
        if length_control:
            if response_length is None:
                raise ValueError("length control needs the response lengths")
            covariate = _relative_difference(response_length[:, i], response_length[:, j])
        prompts = np.flatnonzero(keep).astype(np.float64)
        parts.append(
            (
                prompts,
                first_model[keep].astype(np.float64),
                second_model[keep].astype(np.float64),
                covariate[keep],
                *(w[keep] for w in wins),
            )
        )
    prompt, first, second, covariate, first_wins, second_wins, ties = (
        np.concatenate([part[column] for part in parts]) if parts else np.zeros(0)
        for column in range(7)
    )
    # Orientation: the lower model index first; within a model, the longer response first.
    swap = (first > second) | ((first == second) & (covariate < 0))
    first, second = np.where(swap, second, first), np.where(swap, first, second)
    first_wins, second_wins = (
        np.where(swap, second_wins, first_wins),
        np.where(swap, first_wins, second_wins),
    )
    covariate = np.where(swap, -covariate, covariate)
    if length_resolution > 0:
        covariate = np.round(covariate / length_resolution) * length_resolution
    # A response pair of one model at equal length has no orientation: split its wins.
    unoriented = (first == second) & (covariate == 0)
    shared = (first_wins + second_wins) / 2.0
    first_wins = np.where(unoriented, shared, first_wins)
    second_wins = np.where(unoriented, shared, second_wins)
    return _grouped(
        prompt.astype(np.int64),
        first.astype(np.int64),
        second.astype(np.int64),
        covariate,
        np.stack([first_wins, second_wins, ties]),
        n_prompts=n_prompts,
        n_models=n_models,
    )


def _relative_difference(first: FloatArray, second: FloatArray) -> FloatArray:
    first, second = np.nan_to_num(first), np.nan_to_num(second)
    total = first + second
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (first - second) / total, 0.0)


def _grouped(
    prompt: IntArray,
    first: IntArray,
    second: IntArray,
    covariate: FloatArray,
    outcomes: FloatArray,
    *,
    n_prompts: int,
    n_models: int,
) -> ModelComparisons:
    # Integer cell keys (a 1-D unique is far faster than a unique of rows).
    levels, level_of = np.unique(covariate, return_inverse=True)
    pair_key = first * max(n_models, 1) + second
    keys = pair_key * max(len(levels), 1) + level_of.reshape(-1)
    cell_keys, cell_of = np.unique(keys, return_inverse=True)
    cell_of = cell_of.reshape(-1)
    n_cells = len(cell_keys)
    cell_pairs, cell_levels = np.divmod(cell_keys, max(len(levels), 1))
    rows = np.tile(prompt, OUTCOMES)
    columns = np.concatenate([cell_of * OUTCOMES + outcome for outcome in range(OUTCOMES)])
    values = outcomes.reshape(-1)
    nonzero = values != 0
    by_prompt = sparse.csr_array(
        (values[nonzero], (rows[nonzero], columns[nonzero])),
        shape=(n_prompts, n_cells * OUTCOMES),
    )
    by_prompt.sum_duplicates()
    by_prompt.sort_indices()
    return ModelComparisons(
        first=cell_pairs // max(n_models, 1),
        second=cell_pairs % max(n_models, 1),
        covariate=levels[cell_levels] if len(levels) else np.zeros(0),
        by_prompt=_canonical_prompts(by_prompt),
        n_models=n_models,
    )


def _canonical_prompts(by_prompt: sparse.csr_array) -> sparse.csr_array:
    """Prompts with comparisons, sorted by a fixed projection of their outcomes.

    Bootstrap resamples then depend on the data only, not on how prompts were numbered
    (import order); prompts with equal keys have equal outcomes and are interchangeable.
    """
    used = np.flatnonzero(np.diff(by_prompt.indptr) > 0)
    projection = np.random.default_rng(20240601).uniform(1.0, 2.0, by_prompt.shape[1])
    keys = np.round(by_prompt @ projection, 9)[used]
    order = used[np.argsort(keys, kind="stable")]
    canonical: sparse.csr_array = by_prompt[order]
    return canonical


def resampled_counts(
    comparisons: ModelComparisons, resamples: int, seed: int
) -> npt.NDArray[np.float64]:
    """``(resamples, 3, C)`` outcome tables of bootstrap resamples of the prompts."""
    rng = np.random.default_rng(seed)
    sums = np.zeros((resamples, comparisons.by_prompt.shape[1]))
    for start, stop, weights in bootstrap_weight_blocks(comparisons.n_prompts, resamples, rng):
        block = comparisons.by_prompt[start:stop]
        sums += np.asarray((block.T @ weights.T.astype(np.float64)).T)
    return sums.reshape(resamples, comparisons.n_cells, OUTCOMES).transpose(0, 2, 1)


def compared_models(comparisons: ModelComparisons) -> IntArray:
    """Models that met another model at least once, in index order."""
    across = comparisons.first != comparisons.second
    return np.unique(np.concatenate([comparisons.first[across], comparisons.second[across]]))


def only_compared_models(comparisons: ModelComparisons) -> ModelComparisons:
    """The comparisons of models that met another model, re-indexed densely; cells of a
    model that only ever met itself say nothing about the others and are dropped."""
    compared = compared_models(comparisons)
    new_index = np.full(comparisons.n_models, -1, dtype=np.int64)
    new_index[compared] = np.arange(len(compared))
    keep = (new_index[comparisons.first] >= 0) & (new_index[comparisons.second] >= 0)
    columns = (np.flatnonzero(keep)[:, np.newaxis] * OUTCOMES + np.arange(OUTCOMES)).reshape(-1)
    by_prompt = comparisons.by_prompt[:, columns]
    return ModelComparisons(
        first=new_index[comparisons.first[keep]],
        second=new_index[comparisons.second[keep]],
        covariate=comparisons.covariate[keep],
        by_prompt=_canonical_prompts(sparse.csr_array(by_prompt)),
        n_models=len(compared),
    )


def win_matrices(
    comparisons: ModelComparisons, totals: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """``wins[i, j]`` (weight of comparisons i won against j) and ``meetings[i, j]``."""
    size = comparisons.n_models
    wins = np.zeros((size, size))
    meetings = np.zeros((size, size))
    across = comparisons.first != comparisons.second
    first, second = comparisons.first[across], comparisons.second[across]
    np.add.at(wins, (first, second), totals[FIRST_WINS, across])
    np.add.at(wins, (second, first), totals[SECOND_WINS, across])
    met = totals[:, across].sum(axis=0)
    np.add.at(meetings, (first, second), met)
    np.add.at(meetings, (second, first), met)
    return wins, meetings
