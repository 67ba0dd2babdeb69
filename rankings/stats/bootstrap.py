"""Bootstrap intervals over prompts for the project statistics.

Every project statistic is a function of sums over prompts of a few per-prompt numbers
(agreeing and compared rater pairs, kappa's per-unit agreement and label totals, the alpha
coincidence matrix, W). A bootstrap resample of prompts is then just a weight per prompt
(how often it was drawn): the resampled statistic comes from ``weights @ features`` without
rebuilding any table.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rankings.stats.tables import FloatArray, IntArray, distinct_rows, orientation_free
from rankings.stats.units import (
    PromptUnits,
    interval_distances,
    mid_rank_domain,
    ordinal_distances,
)

#: Bootstrap defaults: resamples of prompts and the seed that makes a run reproducible.
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
# Prompts per block when the bootstrap multiplies resample weights by per-prompt sums;
# bounds the memory of a block whatever the project size.
BOOTSTRAP_BLOCK = 8192
# Prompts whose unit counts are told apart at once (``prompt_types``): about 50 numbers a
# prompt, 25 MB a block.
TYPES_BLOCK = 1 << 16


# Feature columns, then the upper triangle of the alpha coincidence matrix.
_AGREE, _PAIRS, _AGREE_NO_TIES, _PAIRS_NO_TIES = 0, 1, 2, 3
_KAPPA_UNIT_AGREEMENT, _KAPPA_UNITS, _KAPPA_CATEGORIES = 4, 5, slice(6, 9)
_W_SUM, _W_COUNT = 9, 10
_FIRST_COINCIDENCE = 11


def prompt_features(units: PromptUnits, prompts: IntArray) -> FloatArray:
    """``(len(prompts), F)`` per-prompt sums whose totals determine every statistic."""
    counts = units.label_counts[prompts].astype(np.float64)
    raters = counts.sum(axis=2)
    decided = counts[:, :, [0, 2]]
    decided_raters = decided.sum(axis=2)
    used = raters >= 2
    with np.errstate(divide="ignore", invalid="ignore"):
        unit_agreement = np.where(
            used, ((counts**2).sum(axis=2) - raters) / (raters * (raters - 1)), 0.0
        )
    values = units.value_counts[prompts].astype(np.float64)
    coders = values.sum(axis=2)
    with np.errstate(divide="ignore"):
        weight = np.where(coders >= 2, 1.0 / (coders - 1.0), 0.0)
    weighted = values * weight[:, :, np.newaxis]
    coincidence = np.einsum("pkv,pku->pvu", weighted, values)
    diagonal = np.arange(units.n_values)
    coincidence[:, diagonal, diagonal] -= weighted.sum(axis=1)
    upper = np.triu_indices(units.n_values)
    w = units.kendall_w[prompts]
    w_defined = ~np.isnan(w)
    return np.column_stack(
        [
            (counts * (counts - 1) / 2).sum(axis=(1, 2)),
            (raters * (raters - 1) / 2).sum(axis=1),
            (decided * (decided - 1) / 2).sum(axis=(1, 2)),
            (decided_raters * (decided_raters - 1) / 2).sum(axis=1),
            unit_agreement.sum(axis=1),
            used.sum(axis=1),
            orientation_free((counts * used[:, :, np.newaxis]).sum(axis=1)),
            np.where(w_defined, w, 0.0),
            w_defined,
            coincidence[:, upper[0], upper[1]],
        ]
    )


def statistics_from_sums(sums: FloatArray, n_values: int) -> dict[str, FloatArray]:
    """Every statistic of ``PROJECT_STATISTICS`` for each row of feature sums ``(B, F)``.

    NaN where a resample leaves the statistic undefined.
    """
    sums = np.asarray(sums, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pairwise = sums[:, _AGREE] / sums[:, _PAIRS]
        pairwise_no_ties = sums[:, _AGREE_NO_TIES] / sums[:, _PAIRS_NO_TIES]
        observed = sums[:, _KAPPA_UNIT_AGREEMENT] / sums[:, _KAPPA_UNITS]
        categories = sums[:, _KAPPA_CATEGORIES]
        chance = ((categories / categories.sum(axis=1, keepdims=True)) ** 2).sum(axis=1)
        kappa = np.where(chance < 1.0, (observed - chance) / (1.0 - chance), np.nan)
        kendall_w = sums[:, _W_SUM] / sums[:, _W_COUNT]

        upper = np.triu_indices(n_values)
        matrix = np.zeros((len(sums), n_values, n_values))
        matrix[:, upper[0], upper[1]] = sums[:, _FIRST_COINCIDENCE:]
        matrix[:, upper[1], upper[0]] = sums[:, _FIRST_COINCIDENCE:]
        totals = matrix.sum(axis=1)
        n_pairable = totals.sum(axis=1)
        outer = totals[:, :, np.newaxis] * totals[:, np.newaxis, :]

        def alpha(distances: FloatArray) -> FloatArray:
            observed = (matrix * distances).sum(axis=(1, 2))
            expected = (outer * distances).sum(axis=(1, 2)) / (n_pairable - 1)
            defined = (n_pairable > 1) & (expected > 0)
            return np.where(defined, 1.0 - observed / expected, np.nan)

        domain = mid_rank_domain((n_values + 1) // 2)
        return {
            "pairwise_agreement": pairwise,
            "pairwise_agreement_no_ties": pairwise_no_ties,
            "kappa": kappa,
            "alpha_ordinal": alpha(ordinal_distances(totals)),
            "alpha_interval": alpha(interval_distances(domain)),
            "kendall_w": kendall_w,
        }


@dataclass(frozen=True)
class PromptTypes:
    """The prompts that enter the statistics, as their distinct feature rows with counts.

    Prompts with equal features are interchangeable in every statistic and resample, so a
    project of millions of prompts is held as the few thousand kinds of prompts its
    rankings make (with K=4 and three raters a prompt is one of some tens of thousands);
    blocks of prompts merge by adding counts, which is what lets a run be computed part by
    part. ``key`` orders the types by a fixed projection of their features (then by the
    features themselves), so resamples depend only on the data, not on how prompts happen
    to be numbered or split into parts. ``totals`` are the feature sums of all the prompts.
    """

    rows: FloatArray  # (T, F) distinct feature rows
    counts: IntArray  # (T,) prompts of each
    key: FloatArray  # (T,)
    totals: FloatArray  # (F,)

    @property
    def n_prompts(self) -> int:
        return int(self.counts.sum())


def _projection(n_features: int) -> FloatArray:
    return np.random.default_rng(20240601).uniform(1.0, 2.0, n_features)


def no_prompt_types(n_features: int) -> PromptTypes:
    return PromptTypes(
        rows=np.zeros((0, n_features)),
        counts=np.zeros(0, dtype=np.int64),
        key=np.zeros(0),
        totals=np.zeros(n_features),
    )


def n_features_of(n_values: int) -> int:
    return _FIRST_COINCIDENCE + n_values * (n_values + 1) // 2


def prompt_types(units: PromptUnits, prompts: IntArray) -> PromptTypes:
    """The types of the given prompts (``prompt_features`` of each, counted), in blocks.

    Prompts with the same unit counts have the same features, and a block of prompts has
    few distinct counts (about one prompt in twelve at K=4 with three raters): the features
    are computed once per distinct counts (``_counts_kinds``), then counted over the
    prompts of each kind."""
    parts = [no_prompt_types(n_features_of(units.n_values))]
    for start in range(0, len(prompts), TYPES_BLOCK):
        block = prompts[start : start + TYPES_BLOCK]
        representatives, prompts_per_kind = _counts_kinds(units, block)
        features = prompt_features(units, representatives)
        rows, inverse = distinct_rows(features)
        counts = np.bincount(inverse, weights=prompts_per_kind, minlength=len(rows))
        totals = prompts_per_kind.astype(np.float64) @ features
        parts.append(_ordered(rows, np.rint(counts).astype(np.int64), totals))
    return merge_prompt_types(parts)


def _counts_kinds(units: PromptUnits, prompts: IntArray) -> tuple[IntArray, IntArray]:
    """One prompt of each distinct (label counts, value counts, W) among ``prompts``, in
    the order of the distinct rows (not the prompts'), and how many prompts have each."""
    n = len(prompts)
    counts = np.column_stack(
        [
            units.label_counts[prompts].reshape(n, -1),
            units.value_counts[prompts].reshape(n, -1),
            # W is in [0, 1]: -1 stands for undefined (NaN rows would not be merged).
            np.nan_to_num(units.kendall_w[prompts], nan=-1.0),
        ]
    )
    kinds, inverse = distinct_rows(counts)
    first = np.empty(len(kinds), dtype=np.int64)
    first[inverse[::-1]] = np.arange(n - 1, -1, -1)  # each kind's first prompt
    return prompts[first], np.bincount(inverse, minlength=len(kinds))


def merge_prompt_types(parts: list[PromptTypes]) -> PromptTypes:
    """The types of the union of disjoint sets of prompts."""
    rows = np.concatenate([part.rows for part in parts])
    counts = np.concatenate([part.counts for part in parts])
    totals = np.sum([part.totals for part in parts], axis=0)
    if len(rows) == 0:
        return PromptTypes(rows=rows, counts=counts, key=np.zeros(0), totals=totals)
    distinct, inverse = distinct_rows(rows)
    merged = np.bincount(inverse, weights=counts, minlength=len(distinct))
    return _ordered(distinct, np.rint(merged).astype(np.int64), totals)


def _ordered(rows: FloatArray, counts: IntArray, totals: FloatArray) -> PromptTypes:
    key = np.round(rows @ _projection(rows.shape[1]), 6)
    order = np.lexsort((*rows.T[::-1], key)) if len(rows) else np.zeros(0, dtype=np.int64)
    return PromptTypes(rows=rows[order], counts=counts[order], key=key[order], totals=totals)


# Up to this many prompts the bootstrap draws exactly (multinomial counts); beyond it each
# prompt's count is an independent Poisson(1) (the multinomial's limit, the "Poisson
# bootstrap"), which costs a fraction and is indistinguishable at that size.
MULTINOMIAL_LIMIT = 50_000


@functools.cache
def _poisson_one() -> npt.NDArray[np.float32]:
    """Poisson(1) quantiles at 2**16 evenly spaced probabilities: a uniform 16-bit draw
    indexes a Poisson(1) count. Built at first use, with scipy.stats imported then: that
    import alone takes a second or more, and every process (a command, a web worker)
    would pay it at start."""
    from scipy import stats

    quantiles = stats.poisson.ppf((np.arange(2**16) + 0.5) / 2**16, 1.0)
    return np.asarray(quantiles, dtype=np.float32)


def bootstrap_weight_blocks(
    n_prompts: int, resamples: int, rng: np.random.Generator, block: int = BOOTSTRAP_BLOCK
) -> Iterator[tuple[int, int, npt.NDArray[np.float32]]]:
    """Yield ``(start, stop, weights)``: how often each prompt of a block was drawn, per resample.

    Each resample draws ``n_prompts`` prompts with replacement. The draws are split among
    blocks first (multinomial by block size), then spread within each block, which gives
    exactly the multinomial counts of drawing from all prompts while holding only one
    ``(resamples, block)`` array at a time. Past ``MULTINOMIAL_LIMIT`` prompts, Poisson(1)
    counts instead.
    """
    starts = np.arange(0, n_prompts, block)
    sizes = np.diff(np.append(starts, n_prompts))
    if n_prompts > MULTINOMIAL_LIMIT:
        for start, size in zip(starts.tolist(), sizes.tolist(), strict=True):
            uniform = rng.integers(0, 2**16, size=(resamples, size), dtype=np.uint16)
            yield start, start + size, _poisson_one()[uniform]
        return
    per_block = rng.multinomial(n_prompts, sizes / n_prompts, size=resamples)
    owners = np.arange(resamples, dtype=np.int64)
    for number, (start, size) in enumerate(zip(starts.tolist(), sizes.tolist(), strict=True)):
        draws = per_block[:, number]
        owner = np.repeat(owners, draws)
        picked = rng.integers(0, size, size=int(draws.sum()))
        weights = np.bincount(owner * size + picked, minlength=resamples * size)
        yield start, start + size, weights.reshape(resamples, size).astype(np.float32)


def bootstrap_draws(
    types: PromptTypes, n_values: int, resamples: int, seed: int
) -> dict[str, FloatArray]:
    """The statistics of ``resamples`` bootstrap resamples of the prompts.

    Drawn as if every prompt were listed in type order (``bootstrap_weight_blocks``); the
    draws of a type's prompts are summed before they multiply its one feature row, so only a
    block of draws is held at a time, never a row per prompt.
    """
    rng = np.random.default_rng(seed)
    sums = np.zeros((resamples, types.rows.shape[1]))
    ends = np.cumsum(types.counts)
    for start, stop, weights in bootstrap_weight_blocks(types.n_prompts, resamples, rng):
        first = int(np.searchsorted(ends, start, side="right"))
        last = int(np.searchsorted(ends, stop - 1, side="right"))
        cuts = np.maximum(ends[first:last] - start, 0)
        starts = np.concatenate([[0], cuts]).astype(np.intp)
        per_type = np.add.reduceat(weights, starts, axis=1).astype(np.float64)
        sums += per_type @ types.rows[first : last + 1]
    return statistics_from_sums(sums, n_values)


def percentile_interval(draws: FloatArray, confidence: float) -> list[float] | None:
    defined = draws[np.isfinite(draws)]
    if defined.size == 0:
        return None
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return [float(low), float(high)]
