"""Per-pair votes and agreement of one prompt's rankings (pure; no Django).

For each pair of responses, how many raters put the first above, the second above, or
tied them, and the pair's agreement: the share of rater pairs giving it the same label
(the project-level pairwise agreement, for one pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True)
class PairVotes:
    first: int  # response id (earlier in import order)
    second: int
    first_better: int
    second_better: int
    ties: int

    @property
    def raters(self) -> int:
        return self.first_better + self.second_better + self.ties

    @property
    def agreement(self) -> float | None:
        n = self.raters
        if n < 2:
            return None
        same = sum(c * (c - 1) for c in (self.first_better, self.second_better, self.ties))
        return same / (n * (n - 1))


def rank_levels(groups: Sequence[Sequence[int]]) -> dict[int, int]:
    """Response id → its group's place, 0 for the best."""
    return {int(member): level for level, group in enumerate(groups) for member in group}


def pair_votes(
    *, response_ids: Sequence[int], rankings: Sequence[Sequence[Sequence[int]]]
) -> list[PairVotes]:
    """Votes per pair of `response_ids` (in import order) over `rankings` (tie groups).
    A ranking that leaves a response out does not vote on its pairs."""
    levels = [rank_levels(groups) for groups in rankings]
    pairs = []
    for first, second in combinations(response_ids, 2):
        counts = [0, 0, 0]
        for level in levels:
            if first not in level or second not in level:
                continue
            a, b = level[first], level[second]
            counts[0 if a < b else 1 if b < a else 2] += 1
        pairs.append(PairVotes(first, second, counts[0], counts[1], counts[2]))
    return pairs


def pairs_matching(
    groups: Sequence[Sequence[int]], reference: Sequence[Sequence[int]]
) -> float | None:
    """Share of response pairs a ranking labels as the reference does (gold accuracy of
    one ranking); None when they share fewer than two responses."""
    mine, theirs = rank_levels(groups), rank_levels(reference)
    common = sorted(set(mine) & set(theirs))
    total = same = 0
    for first, second in combinations(common, 2):
        total += 1
        ours = (mine[first] > mine[second]) - (mine[first] < mine[second])
        ref = (theirs[first] > theirs[second]) - (theirs[first] < theirs[second])
        same += ours == ref
    return same / total if total else None
