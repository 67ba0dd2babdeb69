"""Turn the rankings of one prompt into (chosen, rejected) pairs with margin and agreement.

Rater strategies pair each ranking on its own; the consensus strategy pairs the prompt's
consensus ranking once (computed elsewhere and handed in as tie groups with scores).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, NamedTuple

ALL_PAIRS = "all_pairs"
BEST_VS_REST = "best_vs_rest"
BEST_VS_WORST = "best_vs_worst"
CONSENSUS = "consensus"
STRATEGIES = (ALL_PAIRS, BEST_VS_REST, BEST_VS_WORST)
"""Strategies that pair each rater's ranking; `consensus` goes through `build_consensus_pairs`."""
HUMAN = "human"
AI = "ai"
"""A pair's `source`: raters' rankings, or an AI judge's verdict (`build_judge_pairs`)."""
CONSENSUS_MARGIN_DIGITS = 6
"""Score gaps are rounded so an export does not change with the solver's last bits."""

RATER_KEY_LENGTH = 16


class ResponseData(NamedTuple):
    response_id: int
    external_id: str
    text: str
    model: str


@dataclass(frozen=True, slots=True)
class PromptData:
    prompt_id: int
    external_id: str
    messages: list[dict[str, Any]]
    responses: dict[int, ResponseData]
    scores: dict[int, float] | None = None
    """Per response id, `response_scores` of the prompt's rankings; only where a format
    asks for them (UltraFeedback's `score_chosen` / `score_rejected`)."""


class RankingData(NamedTuple):
    ranking_id: int
    prompt_id: int
    rater_key: str
    groups: list[list[int]]
    """Tie groups of response ids, best group first."""
    strength: int | None = None
    """The rater's strength of preference (0 about the same … 3 much better) where collected."""


class Pair(NamedTuple):
    """One (chosen, rejected) row; a named tuple because exports build millions of them."""

    prompt_id: int
    chosen_id: int
    rejected_id: int
    margin: float
    """Group index distance between chosen and rejected, or the rater's strength label where
    collected, or the consensus score gap; 0 for a tie."""
    agreement: float
    """Share of the prompt's raters ranking both who ordered them the same way."""
    n_raters: int
    rater_keys: tuple[str, ...]
    chosen_votes: int = 0
    """Of the prompt's rankings that rank both responses, how many put chosen above rejected
    (the soft label's numerator: `chosen_votes / total_votes`)."""
    tie_votes: int = 0
    """How many of them tie the two (0 where the project does not allow ties)."""
    total_votes: int = 0
    """How many of the prompt's rankings rank both; rejected above chosen is the rest."""
    source: str = "human"
    """Who ranked: `human` (raters' rankings) or `ai` (an AI judge's verdict, exported only
    when asked for with the `source` parameter)."""


def pseudonymous_rater_key(project_secret: str, user_id: int) -> str:
    """A stable per-project rater key that does not reveal the user id."""
    digest = hmac.new(project_secret.encode(), str(user_id).encode(), hashlib.sha256)
    return digest.hexdigest()[:RATER_KEY_LENGTH]


def build_pairs(
    prompt: PromptData,
    rankings: list[RankingData],
    strategy: str,
    include_ties: bool = False,
    source: str = HUMAN,
) -> list[Pair]:
    """Pairs from each ranking of `prompt`, one row per ranking and pair.

    Rows are ordered by ranking id, then by the chosen response's group and id, then by the
    rejected response's group and id. A tie pair (only with `include_ties`) is emitted once
    per ranking with the lower response id as "chosen" and margin 0. The margin of a decided
    pair is the group distance, or the ranking's `strength` when the rater gave one.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown pair strategy {strategy!r}; expected one of {STRATEGIES}")
    ordered = sorted(rankings, key=lambda ranking: ranking.ranking_id)
    for ranking in ordered:
        _check_ranking(prompt, ranking)
    agreement = _AgreementTable([_group_positions(ranking.groups) for ranking in ordered])
    decided, tied = agreement.decided, agreement.tied
    prompt_id, n_raters = prompt.prompt_id, len(ordered)
    output: list[Pair] = []
    append = output.append
    new_pair = tuple.__new__  # this loop runs once per exported pair: skip NamedTuple.__new__
    for ranking in ordered:
        rater_keys = (ranking.rater_key,)
        strength = ranking.strength
        for chosen_id, rejected_id, distance in _ranking_pairs(
            ranking.groups, strategy, include_ties
        ):
            shares = tied if distance == 0 else decided
            key = (chosen_id, rejected_id)
            votes = shares.get(key)
            if votes is None:
                votes = agreement.remember(chosen_id, rejected_id, distance == 0)
            share, chosen_votes, tie_votes, total_votes = votes
            margin = float(distance if strength is None or distance == 0 else strength)
            append(
                new_pair(
                    Pair,
                    (
                        prompt_id,
                        chosen_id,
                        rejected_id,
                        margin,
                        share,
                        n_raters,
                        rater_keys,
                        chosen_votes,
                        tie_votes,
                        total_votes,
                        source,
                    ),
                )
            )
    return output


def build_judge_pairs(
    prompt: PromptData,
    verdict: RankingData,
    orders: list[RankingData],
    strategy: str,
    include_ties: bool = False,
) -> list[Pair]:
    """An AI judge's pairs (`source` "ai") from its combined `verdict` of `prompt`, paired by
    the same strategies as a rater's ranking (`consensus`, the verdict being the judge's
    own combination of its two orders, pairs it like `all_pairs`).

    `orders` are the judge's verdicts in each shown order (original, reversed): a pair's
    votes, `agreement` and `n_raters` count them, so a pair both orders agree on has
    agreement 1 and one that flipped with the order (low confidence) 0.5 or less —
    `min_agreement` 1 keeps only the position-consistent pairs. The margin is the group
    distance in the verdict; `rater_keys` are the orders' keys.
    """
    _check_ranking(prompt, verdict)
    for order in orders:
        _check_ranking(prompt, order)
    agreement = _AgreementTable([_group_positions(order.groups) for order in orders])
    rater_keys = tuple(order.rater_key for order in orders)
    paired = strategy if strategy in STRATEGIES else ALL_PAIRS
    output = []
    for chosen_id, rejected_id, distance in _ranking_pairs(verdict.groups, paired, include_ties):
        share, chosen_votes, tie_votes, total_votes = agreement.votes(
            chosen_id, rejected_id, tied=distance == 0
        )
        output.append(
            Pair(
                prompt.prompt_id,
                chosen_id,
                rejected_id,
                float(distance),
                share,
                len(orders),
                rater_keys,
                chosen_votes,
                tie_votes,
                total_votes,
                AI,
            )
        )
    return output


def build_consensus_pairs(
    prompt: PromptData,
    rankings: list[RankingData],
    consensus_groups: list[list[int]],
    scores: dict[int, float],
    include_ties: bool = False,
) -> list[Pair]:
    """One pair per response pair of the prompt, ordered by the consensus ranking.

    `consensus_groups` are the consensus tie groups best first and `scores` its strength per
    response id. The margin is the score gap (rounded), the agreement the share of raters
    ranking both who ordered them as the consensus does, and every pair carries all raters.
    """
    ordered = sorted(rankings, key=lambda ranking: ranking.ranking_id)
    for ranking in ordered:
        _check_ranking(prompt, ranking)
    consensus = RankingData(0, prompt.prompt_id, "", consensus_groups)
    _check_ranking(prompt, consensus)
    agreement = _AgreementTable([_group_positions(ranking.groups) for ranking in ordered])
    rater_keys = tuple(ranking.rater_key for ranking in ordered)
    output = []
    for chosen_id, rejected_id, distance in _ranking_pairs(
        consensus_groups, ALL_PAIRS, include_ties
    ):
        share, chosen_votes, tie_votes, total_votes = agreement.votes(
            chosen_id, rejected_id, tied=distance == 0
        )
        output.append(
            Pair(
                prompt.prompt_id,
                chosen_id,
                rejected_id,
                _score_gap(scores, chosen_id, rejected_id) if distance else 0.0,
                share,
                len(ordered),
                rater_keys,
                chosen_votes,
                tie_votes,
                total_votes,
            )
        )
    return output


SCORE_DIGITS = 4


def response_scores(prompt: PromptData, rankings: list[RankingData]) -> dict[int, float]:
    """Each ranked response's score on UltraFeedback's 1-10 scale, from the raters' rankings.

    The score is `1 + 9 * share`, where share is the fraction of the response's pairwise
    comparisons it won over all the prompt's rankings, a tie counting half: 10 means every
    rater put it strictly above every other response, 1 strictly below, 5.5 an even record.
    It does not depend on the pair strategy or the pair filters, only on the rankings read.
    Responses no ranking names get no score.
    """
    won: dict[int, float] = {}
    compared: dict[int, int] = {}
    for ranking in rankings:
        size = sum(len(group) for group in ranking.groups)
        below = size
        for group in ranking.groups:
            below -= len(group)
            for response_id in group:
                won[response_id] = won.get(response_id, 0.0) + below + (len(group) - 1) / 2
                compared[response_id] = compared.get(response_id, 0) + size - 1
    return {
        response_id: round(1 + 9 * won[response_id] / count, SCORE_DIGITS) + 0.0
        for response_id, count in compared.items()
        if count and response_id in prompt.responses
    }


def _score_gap(scores: dict[int, float], chosen_id: int, rejected_id: int) -> float:
    gap = float(scores[chosen_id]) - float(scores[rejected_id])
    # round() can leave -0.0, which would print differently from 0.0.
    return round(gap, CONSENSUS_MARGIN_DIGITS) + 0.0


def _check_ranking(prompt: PromptData, ranking: RankingData) -> None:
    if ranking.prompt_id != prompt.prompt_id:
        raise ValueError(
            f"ranking {ranking.ranking_id} is for prompt {ranking.prompt_id}, "
            f"not prompt {prompt.prompt_id}"
        )
    seen: set[int] = set()
    for group in ranking.groups:
        for response_id in group:
            if response_id not in prompt.responses:
                raise ValueError(
                    f"ranking {ranking.ranking_id} names response {response_id}, "
                    f"which prompt {prompt.prompt_id} does not have"
                )
            if response_id in seen:
                raise ValueError(f"ranking {ranking.ranking_id} names response {response_id} twice")
            seen.add(response_id)


def _group_positions(groups: list[list[int]]) -> dict[int, int]:
    return {response_id: index for index, group in enumerate(groups) for response_id in group}


def _ranking_pairs(
    groups: list[list[int]], strategy: str, include_ties: bool
) -> list[tuple[int, int, int]]:
    """(chosen id, rejected id, group distance) in output order for one ranking."""
    if strategy == ALL_PAIRS:
        return _all_pairs(groups, include_ties)
    sorted_groups = [sorted(group) for group in groups if group]
    last = len(sorted_groups) - 1
    chosen_groups = range(len(sorted_groups)) if strategy == ALL_PAIRS else range(min(1, last + 1))
    output: list[tuple[int, int, int]] = []
    append = output.append
    for chosen_index in chosen_groups:
        chosen_group = sorted_groups[chosen_index]
        rejected_groups = [
            (sorted_groups[rejected_index], rejected_index - chosen_index)
            for rejected_index in _rejected_groups(strategy, chosen_index, last)
        ]
        for position, chosen_id in enumerate(chosen_group):
            if include_ties:
                for tied_id in chosen_group[position + 1 :]:
                    append((chosen_id, tied_id, 0))
            for rejected_group, distance in rejected_groups:
                for rejected_id in rejected_group:
                    append((chosen_id, rejected_id, distance))
    return output


def _all_pairs(groups: list[list[int]], include_ties: bool) -> list[tuple[int, int, int]]:
    """All pairs by walking index pairs a < b of the ranking flattened best to worst (ids
    sorted within a group): for each a, the rest of its group (ties) comes first, then the
    lower groups in order, which is the documented output order."""
    if all(len(group) == 1 for group in groups):  # strict rankings: the common case
        flat = [group[0] for group in groups]
        return [(flat[a], flat[b], distance) for a, b, distance in _index_pairs(len(flat))]
    flat, level = [], []
    for index, group in enumerate(group for group in groups if group):
        for response_id in sorted(group):
            flat.append(response_id)
            level.append(index)
    return [
        (flat[a], flat[b], level[b] - level[a])
        for a, b, _ in _index_pairs(len(flat))
        if include_ties or level[a] != level[b]
    ]


_INDEX_PAIRS: dict[int, list[tuple[int, int, int]]] = {}


def _index_pairs(size: int) -> list[tuple[int, int, int]]:
    pairs = _INDEX_PAIRS.get(size)
    if pairs is None:
        pairs = _INDEX_PAIRS[size] = [
            (a, b, b - a) for a in range(size) for b in range(a + 1, size)
        ]
    return pairs


def _rejected_groups(strategy: str, chosen_index: int, last: int) -> range:
    if strategy == BEST_VS_WORST:
        return range(last, last + 1) if last > chosen_index else range(0)
    return range(chosen_index + 1, last + 1)


Votes = tuple[float, int, int, int]
"""A pair's agreement share, chosen votes, tie votes and total votes."""


class _AgreementTable:
    """Per-prompt agreement shares and vote counts; callers memoize in `decided` and `tied`
    because every rater repeats the same pairs."""

    def __init__(self, positions: list[dict[int, int]]) -> None:
        self._positions = positions
        self.decided: dict[tuple[int, int], Votes] = {}
        self.tied: dict[tuple[int, int], Votes] = {}

    def votes(self, chosen_id: int, rejected_id: int, *, tied: bool) -> Votes:
        shares = self.tied if tied else self.decided
        key = (chosen_id, rejected_id)
        votes = shares.get(key)
        if votes is None:
            votes = self.remember(chosen_id, rejected_id, tied)
        return votes

    def remember(self, chosen_id: int, rejected_id: int, tied: bool) -> Votes:
        """`compute`, memoized for the pair and for its reverse: the rankings that rank both
        are the same, and those not ranking chosen above or level rank rejected above."""
        votes = self.compute(chosen_id, rejected_id, tied)
        share, above, level, judged = votes
        below = judged - above - level
        shares = self.tied if tied else self.decided
        shares[chosen_id, rejected_id] = votes
        reverse_share = share if tied else (below / judged if judged else 0.0)
        shares[rejected_id, chosen_id] = (reverse_share, below, level, judged)
        return votes

    def compute(self, chosen_id: int, rejected_id: int, tied: bool) -> Votes:
        """The share of the rankings ranking both that agree with the pair (ordered as it
        is, or tied for a tie pair), and the votes: chosen above, tied, ranked both."""
        judged = above = level = 0
        for positions in self._positions:
            chosen_group = positions.get(chosen_id)
            rejected_group = positions.get(rejected_id)
            if chosen_group is None or rejected_group is None:
                continue
            judged += 1
            if chosen_group < rejected_group:
                above += 1
            elif chosen_group == rejected_group:
                level += 1
        same = level if tied else above
        return (same / judged if judged else 0.0), above, level, judged
