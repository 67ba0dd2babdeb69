"""Turn the rankings of one prompt into (chosen, rejected) pairs with margin and agreement."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ALL_PAIRS = "all_pairs"
BEST_VS_REST = "best_vs_rest"
BEST_VS_WORST = "best_vs_worst"
STRATEGIES = (ALL_PAIRS, BEST_VS_REST, BEST_VS_WORST)

RATER_KEY_LENGTH = 16


@dataclass(frozen=True, slots=True)
class ResponseData:
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


@dataclass(frozen=True, slots=True)
class RankingData:
    ranking_id: int
    prompt_id: int
    rater_key: str
    groups: list[list[int]]
    """Tie groups of response ids, best group first."""


@dataclass(frozen=True, slots=True)
class Pair:
    prompt_id: int
    chosen_id: int
    rejected_id: int
    margin: float
    """Group index distance between chosen and rejected; 0 for a tie."""
    agreement: float
    """Share of the prompt's raters ranking both who ordered them the same way."""
    n_raters: int
    rater_keys: tuple[str, ...]


def pseudonymous_rater_key(project_secret: str, user_id: int) -> str:
    """A stable per-project rater key that does not reveal the user id."""
    digest = hmac.new(project_secret.encode(), str(user_id).encode(), hashlib.sha256)
    return digest.hexdigest()[:RATER_KEY_LENGTH]


def build_pairs(
    prompt: PromptData,
    rankings: list[RankingData],
    strategy: str,
    include_ties: bool = False,
) -> list[Pair]:
    """Pairs from each ranking of `prompt`, one row per ranking and pair.

    Rows are ordered by ranking id, then by the chosen response's group and id, then by the
    rejected response's group and id. A tie pair (only with `include_ties`) is emitted once
    per ranking with the lower response id as "chosen" and margin 0.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown pair strategy {strategy!r}; expected one of {STRATEGIES}")
    ordered = sorted(rankings, key=lambda ranking: ranking.ranking_id)
    for ranking in ordered:
        _check_ranking(prompt, ranking)
    agreement = _AgreementTable([_group_positions(ranking.groups) for ranking in ordered])
    prompt_id, n_raters = prompt.prompt_id, len(ordered)
    # Positional construction: this loop runs once per exported pair.
    return [
        Pair(
            prompt_id,
            chosen_id,
            rejected_id,
            float(margin),
            agreement.share(chosen_id, rejected_id, tied=margin == 0),
            n_raters,
            (ranking.rater_key,),
        )
        for ranking in ordered
        for chosen_id, rejected_id, margin in _ranking_pairs(ranking.groups, strategy, include_ties)
    ]


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
) -> Iterator[tuple[int, int, int]]:
    """(chosen id, rejected id, group distance) in output order for one ranking."""
    sorted_groups = [sorted(group) for group in groups if group]
    last = len(sorted_groups) - 1
    chosen_groups = range(len(sorted_groups)) if strategy == ALL_PAIRS else range(min(1, last + 1))
    for chosen_index in chosen_groups:
        chosen_group = sorted_groups[chosen_index]
        for position, chosen_id in enumerate(chosen_group):
            if include_ties:
                for tied_id in chosen_group[position + 1 :]:
                    yield chosen_id, tied_id, 0
            for rejected_index in _rejected_groups(strategy, chosen_index, last):
                for rejected_id in sorted_groups[rejected_index]:
                    yield chosen_id, rejected_id, rejected_index - chosen_index


def _rejected_groups(strategy: str, chosen_index: int, last: int) -> range:
    if strategy == BEST_VS_WORST:
        return range(last, last + 1) if last > chosen_index else range(0)
    return range(chosen_index + 1, last + 1)


class _AgreementTable:
    """Per-prompt agreement shares, memoized because every rater repeats the same pairs."""

    def __init__(self, positions: list[dict[int, int]]) -> None:
        self._positions = positions
        self._shares: dict[tuple[int, int, bool], float] = {}

    def share(self, chosen_id: int, rejected_id: int, *, tied: bool) -> float:
        key = (chosen_id, rejected_id, tied)
        share = self._shares.get(key)
        if share is None:
            share = self._compute(chosen_id, rejected_id, tied)
            self._shares[key] = share
        return share

    def _compute(self, chosen_id: int, rejected_id: int, tied: bool) -> float:
        judged = same = 0
        for positions in self._positions:
            chosen_group = positions.get(chosen_id)
            rejected_group = positions.get(rejected_id)
            if chosen_group is None or rejected_group is None:
                continue
            judged += 1
            if (chosen_group == rejected_group) if tied else (chosen_group < rejected_group):
                same += 1
        return same / judged if judged else 0.0
