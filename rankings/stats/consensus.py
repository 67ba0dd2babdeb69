"""Consensus ranking per prompt from its raters' rankings; pure numpy, vectorized over prompts.

Bradley-Terry with ties in Davidson's form (``davidson``) is the default, each rater weighted
by reliability; Borda count is the baseline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rankings.stats.davidson import FIT_BLOCK, consensus_levels, fit_davidson, pair_counts
from rankings.stats.tables import (
    FloatArray,
    IntArray,
    RankingTable,
    mid_ranks,
    one_ranking_per_rater,
    pair_label_matrix,
    ranks_from_groups,
)

BRADLEY_TERRY = "bradley_terry"
BORDA = "borda"
METHODS = (BRADLEY_TERRY, BORDA)

#: Reliability weights never drop below this, so no rater's ranking is ignored outright.
RELIABILITY_FLOOR = 0.05


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


def competence_weights(
    competence: npt.ArrayLike, fallback: npt.ArrayLike, floor: float = RELIABILITY_FLOOR
) -> FloatArray:
    """A weight per rater from the reliability model's competence (the share of their labels
    given carefully), clipped to [floor, 1]; ``fallback`` where the model has none (NaN)."""
    values = np.asarray(competence, dtype=np.float64)
    return np.where(
        np.isnan(values), np.asarray(fallback, dtype=np.float64), np.clip(values, floor, 1.0)
    )


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
