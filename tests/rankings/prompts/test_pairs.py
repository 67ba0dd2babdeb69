"""Per-pair votes and agreement on the prompt page, against brute force on random rankings."""

from __future__ import annotations

import random
from itertools import combinations

import pytest

from rankings.prompts.pairs import pair_votes, pairs_matching


def random_groups(rng: random.Random, ids: list[int]) -> list[list[int]]:
    order = ids[:]
    rng.shuffle(order)
    groups: list[list[int]] = []
    for member in order:
        if groups and rng.random() < 0.3:
            groups[-1].append(member)
        else:
            groups.append([member])
    return groups


def label(groups: list[list[int]], first: int, second: int) -> str:
    place = {m: i for i, g in enumerate(groups) for m in g}
    if place[first] == place[second]:
        return "tie"
    return "first" if place[first] < place[second] else "second"


@pytest.mark.parametrize("seed", range(20))
def test_votes_and_agreement_match_brute_force(seed):
    rng = random.Random(seed)
    ids = list(range(100, 100 + rng.randint(2, 6)))
    rankings = [random_groups(rng, ids) for _ in range(rng.randint(0, 7))]
    for pair in pair_votes(response_ids=ids, rankings=rankings):
        labels = [label(groups, pair.first, pair.second) for groups in rankings]
        assert (pair.first_better, pair.second_better, pair.ties) == (
            labels.count("first"),
            labels.count("second"),
            labels.count("tie"),
        )
        # Agreement: the share of ordered rater pairs (i ≠ j) that give the same label.
        rater_pairs = [(a, b) for a in range(len(labels)) for b in range(len(labels)) if a != b]
        expected = (
            sum(labels[a] == labels[b] for a, b in rater_pairs) / len(rater_pairs)
            if rater_pairs
            else None
        )
        assert (
            pair.agreement == pytest.approx(expected)
            if expected is not None
            else (pair.agreement is None)
        )
    assert [(p.first, p.second) for p in pair_votes(response_ids=ids, rankings=rankings)] == list(
        combinations(ids, 2)
    )


@pytest.mark.parametrize("seed", range(20))
def test_gold_match_is_the_share_of_pairs_labelled_like_the_reference(seed):
    rng = random.Random(seed)
    ids = list(range(rng.randint(2, 6)))
    mine, reference = random_groups(rng, ids), random_groups(rng, ids)
    pairs = list(combinations(ids, 2))
    same = sum(label(mine, a, b) == label(reference, a, b) for a, b in pairs)
    assert pairs_matching(mine, reference) == pytest.approx(same / len(pairs))
    assert pairs_matching(reference, reference) == 1.0
