"""Consensus ranking of one prompt from its raters' rankings; pure Python + numpy."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ConsensusResult:
    groups: list[list[int]]
    """Consensus tie groups of response ids, best first."""
    scores: dict[int, float] = field(default_factory=dict)
    """Strength per response id (higher is better)."""
    agreement: float | None = None
    """Weighted share of rater pair labels that agree with the consensus order."""
    method: str = "borda"


def borda_consensus(
    rankings: list[list[list[int]]], weights: list[float] | None = None
) -> ConsensusResult:
    """Borda count with mid-rank points for ties; the baseline consensus."""
    weights = weights or [1.0] * len(rankings)
    points: dict[int, float] = {}
    for groups, weight in zip(rankings, weights, strict=True):
        size = sum(len(group) for group in groups)
        position = 0
        for group in groups:
            mid_rank = position + (len(group) + 1) / 2
            for response_id in group:
                points[response_id] = points.get(response_id, 0.0) + weight * (size - mid_rank)
            position += len(group)
    ordered = sorted(points.items(), key=lambda item: (-item[1], item[0]))
    groups: list[list[int]] = []
    for response_id, score in ordered:
        if groups and abs(points[groups[-1][0]] - score) < 1e-12:
            groups[-1].append(response_id)
        else:
            groups.append([response_id])
    return ConsensusResult(groups=groups, scores=points, method="borda")


def consensus_ranking(
    rankings: list[list[list[int]]],
    weights: list[float] | None = None,
    method: str = "bradley_terry",
) -> ConsensusResult:
    """The consensus of a prompt's rankings (each a list of tie groups of response ids)."""
    return borda_consensus(rankings, weights)
