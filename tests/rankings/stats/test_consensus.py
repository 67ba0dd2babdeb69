"""Consensus rankings: hand-made cases, Borda, and Davidson's model checked with scipy.optimize."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize

from rankings.stats import consensus
from rankings.stats.consensus import (
    BORDA,
    BRADLEY_TERRY,
    competence_weights,
    consensus_ranking,
    prompt_consensus,
    reliability_weights,
)
from rankings.stats.davidson import consensus_levels, fit_davidson, pair_counts
from rankings.stats.tables import RankingTable, ranks_from_groups
from tests.rankings.references import borda_consensus, davidson_objective

# --------------------------------------------------------------------------------------------
# Hand-made cases through the public entry point
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [BRADLEY_TERRY, BORDA])
def test_unanimous_raters_give_their_ranking(method: str) -> None:
    rankings = [[[3], [1], [2]]] * 3
    result = consensus_ranking(rankings, method=method)
    assert result.groups == [[3], [1], [2]]
    assert result.agreement == 1.0
    assert result.scores[3] > result.scores[1] > result.scores[2]
    assert result.method == method


def test_majority_order_wins_and_agreement_counts_the_dissent() -> None:
    rankings = [[[1], [2], [3]], [[1], [2], [3]], [[1], [3], [2]]]
    result = consensus_ranking(rankings)
    assert result.groups == [[1], [2], [3]]
    # 9 labels; the dissenter disagrees on the (2, 3) pair only.
    assert result.agreement == pytest.approx(8 / 9)


def test_an_even_split_is_a_tie() -> None:
    result = consensus_ranking([[[1], [2]], [[2], [1]]])
    assert result.groups == [[1, 2]]
    assert result.scores[1] == pytest.approx(result.scores[2])
    assert result.agreement == 0.0


def test_raters_who_tie_two_responses_tie_them_in_the_consensus() -> None:
    result = consensus_ranking([[[1, 2], [3]], [[1, 2], [3]], [[2, 1], [3]]])
    assert result.groups == [[1, 2], [3]]
    assert result.agreement == 1.0


def test_everything_tied_is_one_group() -> None:
    result = consensus_ranking([[[4, 5, 6]], [[4, 5, 6]]])
    assert [sorted(group) for group in result.groups] == [[4, 5, 6]]


def test_weights_decide_a_split() -> None:
    rankings = [[[1], [2]], [[2], [1]]]
    assert consensus_ranking(rankings, weights=[1.0, 0.2]).groups == [[1], [2]]
    assert consensus_ranking(rankings, weights=[0.2, 1.0]).groups == [[2], [1]]
    heavy = consensus_ranking(rankings, weights=[1.0, 0.2])
    assert heavy.agreement == pytest.approx(1.0 / 1.2)


def test_one_ranking_and_no_ranking() -> None:
    assert consensus_ranking([[[7], [5, 6]]]).groups == [[7], [5, 6]]
    empty = consensus_ranking([])
    assert empty.groups == [] and empty.scores == {} and empty.agreement is None


def test_rankings_of_different_responses_are_merged() -> None:
    # The second rater never saw response 3 (a missing rater for that response).
    result = consensus_ranking([[[1], [2], [3]], [[2], [1]]])
    assert sorted(itertools.chain(*result.groups)) == [1, 2, 3]
    assert result.groups[-1] == [3]


def test_borda_gives_mid_rank_points() -> None:
    result = consensus_ranking([[[1], [2, 3]], [[2], [1], [3]]], method=BORDA)
    # Sizes 3: points = 3 - mid-rank. First: 1 -> 2, 2 and 3 -> 0.5. Second: 2, 1, 0.
    assert result.scores == {1: 3.0, 2: 2.5, 3: 0.5}
    assert result.groups == [[1], [2], [3]]
    assert borda_consensus([[[1], [2, 3]], [[2], [1], [3]]]).scores == result.scores


def test_unknown_method_and_wrong_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown consensus method"):
        consensus_ranking([[[1], [2]]], method="kemeny")
    with pytest.raises(ValueError, match="one weight per ranking"):
        consensus_ranking([[[1], [2]]], weights=[1.0, 2.0])


# --------------------------------------------------------------------------------------------
# Davidson's model: the fit maximizes its objective
# --------------------------------------------------------------------------------------------


def random_table(seed: int, n_prompts: int, k: int) -> tuple[RankingTable, np.ndarray]:
    rng = np.random.default_rng(seed)
    identity = {slot: slot for slot in range(k)}
    prompts, raters, rows = [], [], []
    for prompt in range(n_prompts):
        quality = rng.normal(size=k)
        for rater in range(int(rng.integers(1, 6))):
            noisy = np.rint(quality + rng.normal(0, 0.8, size=k))
            groups = [
                [int(s) for s in np.flatnonzero(noisy == value)]
                for value in sorted(set(noisy.tolist()), reverse=True)
            ]
            prompts.append(prompt)
            raters.append(rater)
            rows.append(ranks_from_groups(groups, identity, k))
    table = RankingTable(np.array(prompts), np.array(raters), np.array(rows))
    return table, rng.uniform(0.2, 1.0, size=len(rows))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_fit_maximizes_the_penalized_likelihood_like_scipy(seed: int, k: int) -> None:
    table, weights = random_table(seed, n_prompts=6, k=k)
    counts = pair_counts(table, weights)

    fit = fit_davidson(counts)

    assert fit.converged.all()
    for prompt in range(counts.n_prompts):
        one = counts.take(np.array([prompt]))

        def negative(parameters: np.ndarray, one=one) -> float:
            value = davidson_objective(parameters[np.newaxis, :k], parameters[k:], one)
            return -float(value[0])

        reference = minimize(negative, np.zeros(k + 1), method="BFGS", options={"gtol": 1e-10})
        found = np.append(fit.strength[prompt], fit.tie_log[prompt])
        assert -negative(found) >= -reference.fun - 1e-9
        np.testing.assert_allclose(found, reference.x, atol=1e-4)


def test_fit_is_a_stationary_point_for_every_prompt() -> None:
    table, weights = random_table(9, n_prompts=40, k=4)
    counts = pair_counts(table, weights)
    fit = fit_davidson(counts)
    step = 1e-6
    for prompt in range(counts.n_prompts):
        one = counts.take(np.array([prompt]))
        base = np.append(fit.strength[prompt], fit.tie_log[prompt])
        for coordinate in range(len(base)):
            up, down = base.copy(), base.copy()
            up[coordinate] += step
            down[coordinate] -= step
            value_up = davidson_objective(up[np.newaxis, :4], up[4:], one)[0]
            value_down = davidson_objective(down[np.newaxis, :4], down[4:], one)[0]
            assert (value_up - value_down) / (2 * step) == pytest.approx(0.0, abs=1e-5)


def test_unanimous_raters_get_finite_strengths() -> None:
    table = RankingTable(
        prompt_index=np.zeros(3, dtype=np.int64),
        rater_index=np.arange(3),
        ranks=np.array([[1.0, 2.0, 3.0]] * 3),
    )
    fit = fit_davidson(pair_counts(table, np.ones(3)))
    assert np.isfinite(fit.strength).all()
    assert fit.strength[0, 0] > fit.strength[0, 1] > fit.strength[0, 2]
    assert fit.tie_log[0] < 0  # nobody tied anything


def test_a_tie_joins_the_group_when_a_tie_is_the_likeliest_outcome() -> None:
    strength = np.array([[1.0, 0.7, -2.0]])
    present = np.ones((1, 3), dtype=bool)
    # Gap 0.3: tied when 2 * eta >= 0.3.
    assert consensus_levels(strength, np.array([0.2]), present).tolist() == [[1.0, 1.0, 2.0]]
    assert consensus_levels(strength, np.array([0.1]), present).tolist() == [[1.0, 2.0, 3.0]]
    absent = np.array([[True, True, False]])
    levels = consensus_levels(strength, np.array([-1.0]), absent)
    assert levels[0, :2].tolist() == [1.0, 2.0] and np.isnan(levels[0, 2])


# --------------------------------------------------------------------------------------------
# Whole projects
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prompt_consensus_agrees_with_one_prompt_at_a_time(seed: int) -> None:
    table, _ = random_table(seed, n_prompts=25, k=4)
    rater_weights = np.random.default_rng(seed).uniform(0.1, 1.0, size=table.n_raters)

    result = prompt_consensus(table, rater_weights)

    for prompt in range(table.n_prompts):
        rows = np.flatnonzero(table.prompt_index == prompt)
        rankings = [
            [
                [int(slot) for slot in np.flatnonzero(table.ranks[row] == level)]
                for level in sorted(set(table.ranks[row][~np.isnan(table.ranks[row])]))
            ]
            for row in rows
        ]
        single = consensus_ranking(
            rankings, weights=rater_weights[table.rater_index[rows]].tolist()
        )
        expected_levels = {s: g for g, group in enumerate(single.groups, 1) for s in group}
        assert {
            slot: level for slot, level in enumerate(result.levels[prompt]) if not np.isnan(level)
        } == expected_levels
        assert result.agreement[prompt] == pytest.approx(single.agreement)
        assert result.n_rankings[prompt] == len(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_consensus_agreement_is_the_weighted_share_of_labels_it_matches(seed: int) -> None:
    table, _ = random_table(seed, n_prompts=20, k=3)
    rater_weights = np.random.default_rng(seed).uniform(0.1, 1.0, size=table.n_raters)
    result = prompt_consensus(table, rater_weights, method=BORDA)
    for prompt in range(table.n_prompts):
        consensus_level = result.levels[prompt]
        matched = compared = 0.0
        for row in np.flatnonzero(table.prompt_index == prompt):
            weight = rater_weights[table.rater_index[row]]
            for i, j in itertools.combinations(range(3), 2):
                a, b = table.ranks[row, i], table.ranks[row, j]
                if np.isnan(a) or np.isnan(b):
                    continue
                compared += weight
                matched += weight * (
                    np.sign(b - a) == np.sign(consensus_level[j] - consensus_level[i])
                )
        if compared:
            assert result.agreement[prompt] == pytest.approx(matched / compared)
        else:
            assert np.isnan(result.agreement[prompt])


def test_reliability_weights_rescale_agreement_above_chance() -> None:
    weights = reliability_weights([0.9, 0.5, 0.3, np.nan, 1.0], chance=0.5, floor=0.05)
    # The rater without agreement gets the median of the others: (0.05 + 0.8) / 2.
    assert weights.tolist() == pytest.approx([0.8, 0.05, 0.05, 0.425, 1.0])
    assert reliability_weights([np.nan, np.nan], chance=None).tolist() == [1.0, 1.0]
    assert reliability_weights([0.4], chance=None).tolist() == pytest.approx([0.4])


def test_competence_weights_floor_the_competence_and_fall_back_without_one() -> None:
    weights = competence_weights([0.9, 0.01, np.nan, 1.2], fallback=[0.5, 0.5, 0.3, 0.5])
    assert weights.tolist() == pytest.approx([0.9, 0.05, 0.3, 1.0])


def test_consensus_in_blocks_is_the_consensus_of_the_whole() -> None:
    table, _ = random_table(5, n_prompts=30, k=4)
    rater_weights = np.random.default_rng(5).uniform(0.1, 1.0, size=table.n_raters)
    whole = prompt_consensus(table, rater_weights)
    blocks = list(consensus.prompt_consensus_blocks(table, rater_weights, block=7))
    assert [(start, stop) for start, stop, _ in blocks][-1] == (28, 30)
    levels = np.concatenate([block.levels for _, _, block in blocks])
    np.testing.assert_array_equal(levels, whole.levels)
    strength = np.concatenate([block.strength for _, _, block in blocks])
    np.testing.assert_allclose(strength, whole.strength, atol=1e-8)
    agreement = np.concatenate([block.agreement for _, _, block in blocks])
    np.testing.assert_allclose(agreement, whole.agreement)
