"""Pair building from hand-made rankings: strategies, ties, margins, agreement, rater keys."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random

import pytest

from exports.pairs import (
    Pair,
    PromptData,
    RankingData,
    ResponseData,
    build_consensus_pairs,
    build_pairs,
    pseudonymous_rater_key,
    response_scores,
)
from rankings.stats.consensus import consensus_ranking

PROMPT_ID = 7


def make_prompt(response_ids: tuple[int, ...] = (1, 2, 3, 4)) -> PromptData:
    return PromptData(
        prompt_id=PROMPT_ID,
        external_id="p-7",
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
        responses={
            response_id: ResponseData(response_id, f"r-{response_id}", f"text {response_id}", "m")
            for response_id in response_ids
        },
    )


def ranking(ranking_id: int, rater_key: str, groups: list[list[int]]) -> RankingData:
    return RankingData(
        ranking_id=ranking_id, prompt_id=PROMPT_ID, rater_key=rater_key, groups=groups
    )


def triples(pairs: list[Pair]) -> list[tuple[int, int, float]]:
    return [(pair.chosen_id, pair.rejected_id, pair.margin) for pair in pairs]


# Three raters over responses 1..4. Rater "a" ties 2 and 3.
RANKING_A = ranking(10, "a", [[1], [3, 2], [4]])
RANKING_B = ranking(11, "b", [[2], [1], [3], [4]])
RANKING_C = ranking(12, "c", [[1], [2], [4], [3]])
THREE_RANKINGS = [RANKING_C, RANKING_A, RANKING_B]  # deliberately out of id order


def test_all_pairs_drops_ties_by_default() -> None:
    pairs = build_pairs(make_prompt(), [RANKING_A], "all_pairs")

    assert triples(pairs) == [(1, 2, 1.0), (1, 3, 1.0), (1, 4, 2.0), (2, 4, 1.0), (3, 4, 1.0)]


def test_all_pairs_of_a_strict_ranking_has_every_ordered_pair_with_rank_distance() -> None:
    pairs = build_pairs(make_prompt(), [RANKING_B], "all_pairs")

    assert triples(pairs) == [
        (2, 1, 1.0),
        (2, 3, 2.0),
        (2, 4, 3.0),
        (1, 3, 1.0),
        (1, 4, 2.0),
        (3, 4, 1.0),
    ]


def test_all_pairs_emits_one_row_per_rater_ordered_by_ranking_id() -> None:
    pairs = build_pairs(make_prompt(), THREE_RANKINGS, "all_pairs")

    assert [pair.rater_keys for pair in pairs] == [("a",)] * 5 + [("b",)] * 6 + [("c",)] * 6
    assert all(pair.n_raters == 3 for pair in pairs)
    assert all(pair.prompt_id == PROMPT_ID for pair in pairs)


def test_agreement_is_share_of_raters_ordering_the_pair_the_same_way() -> None:
    pairs = build_pairs(make_prompt(), THREE_RANKINGS, "all_pairs")
    agreement = {(pair.chosen_id, pair.rejected_id): pair.agreement for pair in pairs}

    # 1 over 2: a and c yes, b no.
    assert agreement[(1, 2)] == pytest.approx(2 / 3)
    assert agreement[(2, 1)] == pytest.approx(1 / 3)
    # 2 over 3: a tied them, b and c put 2 first.
    assert agreement[(2, 3)] == pytest.approx(2 / 3)
    # 4 over 3 only by c.
    assert agreement[(4, 3)] == pytest.approx(1 / 3)
    assert agreement[(3, 4)] == pytest.approx(2 / 3)
    # everyone put 1 over 4.
    assert agreement[(1, 4)] == 1.0


def test_agreement_counts_only_raters_who_ranked_both_responses() -> None:
    prompt = make_prompt((1, 2, 3))
    rankings = [ranking(1, "a", [[1], [2], [3]]), ranking(2, "b", [[2], [1]])]

    pairs = build_pairs(prompt, rankings, "all_pairs")
    agreement = {(pair.chosen_id, pair.rejected_id): pair.agreement for pair in pairs}

    assert agreement[(1, 3)] == 1.0  # only "a" saw both
    assert agreement[(1, 2)] == 0.5
    assert all(pair.n_raters == 2 for pair in pairs)


def test_include_ties_emits_tie_once_per_ranking_lower_id_first_with_zero_margin() -> None:
    pairs = build_pairs(make_prompt(), [RANKING_A], "all_pairs", include_ties=True)

    assert triples(pairs) == [
        (1, 2, 1.0),
        (1, 3, 1.0),
        (1, 4, 2.0),
        (2, 3, 0.0),
        (2, 4, 1.0),
        (3, 4, 1.0),
    ]


def test_tie_agreement_is_share_of_raters_who_also_tied_the_pair() -> None:
    rankings = [RANKING_A, ranking(20, "d", [[1], [2, 3], [4]]), RANKING_B]

    pairs = build_pairs(make_prompt(), rankings, "all_pairs", include_ties=True)
    ties = [pair for pair in pairs if pair.margin == 0.0]

    assert [(pair.chosen_id, pair.rejected_id, pair.rater_keys) for pair in ties] == [
        (2, 3, ("a",)),
        (2, 3, ("d",)),
    ]
    assert all(pair.agreement == pytest.approx(2 / 3) for pair in ties)


def test_best_vs_rest_pairs_top_group_with_every_lower_group() -> None:
    pairs = build_pairs(make_prompt(), [RANKING_A, RANKING_B], "best_vs_rest")

    assert [
        (*triple, pair.rater_keys) for triple, pair in zip(triples(pairs), pairs, strict=True)
    ] == [
        (1, 2, 1.0, ("a",)),
        (1, 3, 1.0, ("a",)),
        (1, 4, 2.0, ("a",)),
        (2, 1, 1.0, ("b",)),
        (2, 3, 2.0, ("b",)),
        (2, 4, 3.0, ("b",)),
    ]


def test_best_vs_rest_with_a_tied_top_group_pairs_each_best_and_ties_them_only_on_request() -> None:
    tied_top = ranking(5, "a", [[2, 1], [4], [3]])

    assert triples(build_pairs(make_prompt(), [tied_top], "best_vs_rest")) == [
        (1, 4, 1.0),
        (1, 3, 2.0),
        (2, 4, 1.0),
        (2, 3, 2.0),
    ]
    assert triples(build_pairs(make_prompt(), [tied_top], "best_vs_rest", include_ties=True)) == [
        (1, 2, 0.0),
        (1, 4, 1.0),
        (1, 3, 2.0),
        (2, 4, 1.0),
        (2, 3, 2.0),
    ]


def test_best_vs_worst_pairs_top_group_with_bottom_group_only() -> None:
    pairs = build_pairs(make_prompt(), THREE_RANKINGS, "best_vs_worst")

    assert [
        (*triple, pair.agreement) for triple, pair in zip(triples(pairs), pairs, strict=True)
    ] == [
        (1, 4, 2.0, 1.0),
        (2, 4, 3.0, 1.0),
        (1, 3, 3.0, 1.0),
    ]


def test_best_vs_worst_with_tied_bottom_group_pairs_best_with_each_of_them() -> None:
    pairs = build_pairs(make_prompt(), [ranking(1, "a", [[3], [1], [4, 2]])], "best_vs_worst")

    assert triples(pairs) == [(3, 2, 2.0), (3, 4, 2.0)]


def test_all_tied_ranking_yields_nothing_unless_ties_are_included() -> None:
    everything_tied = ranking(1, "a", [[3, 1, 2]])

    for strategy in ("all_pairs", "best_vs_rest", "best_vs_worst"):
        assert build_pairs(make_prompt((1, 2, 3)), [everything_tied], strategy) == []
        with_ties = build_pairs(make_prompt((1, 2, 3)), [everything_tied], strategy, True)
        assert triples(with_ties) == [(1, 2, 0.0), (1, 3, 0.0), (2, 3, 0.0)]
        assert all(pair.agreement == 1.0 for pair in with_ties)


def test_build_pairs_is_deterministic_whatever_the_input_order() -> None:
    forwards = build_pairs(make_prompt(), THREE_RANKINGS, "all_pairs", include_ties=True)
    backwards = build_pairs(make_prompt(), THREE_RANKINGS[::-1], "all_pairs", include_ties=True)

    assert forwards == backwards


def test_margin_is_the_raters_strength_label_where_collected() -> None:
    prompt = make_prompt((1, 2))
    strong = RankingData(1, PROMPT_ID, "a", [[2], [1]], strength=3)
    slight = RankingData(2, PROMPT_ID, "b", [[1], [2]], strength=0)
    unlabelled = RankingData(3, PROMPT_ID, "c", [[2], [1]])
    tied = RankingData(4, PROMPT_ID, "d", [[1, 2]], strength=2)

    pairs = build_pairs(prompt, [strong, slight, unlabelled, tied], "all_pairs", True)

    assert [
        (pair.rater_keys, *triple) for triple, pair in zip(triples(pairs), pairs, strict=True)
    ] == [
        (("a",), 2, 1, 3.0),
        (("b",), 1, 2, 0.0),
        (("c",), 2, 1, 1.0),  # no strength: rank distance
        (("d",), 1, 2, 0.0),  # a tie is margin 0 whatever the label
    ]


# --- consensus ------------------------------------------------------------------------------


def test_consensus_gives_one_pair_per_response_pair_in_consensus_order() -> None:
    groups = [[1], [2], [3], [4]]
    scores = {1: 3.5, 2: 2.0, 3: 1.25, 4: 0.0}

    pairs = build_consensus_pairs(make_prompt(), THREE_RANKINGS, groups, scores)

    assert [(pair.chosen_id, pair.rejected_id) for pair in pairs] == [
        (1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4),
    ]  # fmt: skip
    margins = {(pair.chosen_id, pair.rejected_id): pair.margin for pair in pairs}
    assert margins[(1, 2)] == 1.5 and margins[(1, 4)] == 3.5 and margins[(3, 4)] == 1.25
    # Agreement: share of raters ordering the pair as the consensus does.
    agreement = {(pair.chosen_id, pair.rejected_id): pair.agreement for pair in pairs}
    assert agreement[(1, 2)] == pytest.approx(2 / 3)
    assert agreement[(2, 3)] == pytest.approx(2 / 3)  # "a" tied them
    assert agreement[(1, 4)] == 1.0
    assert all(pair.n_raters == 3 and pair.rater_keys == ("a", "b", "c") for pair in pairs)


def test_consensus_ties_are_dropped_unless_asked_for_and_then_have_zero_margin() -> None:
    groups = [[1], [3, 2], [4]]
    scores = {1: 2.0, 2: 1.0, 3: 1.0, 4: 0.0}

    without = build_consensus_pairs(make_prompt(), [RANKING_A], groups, scores)
    with_ties = build_consensus_pairs(make_prompt(), [RANKING_A], groups, scores, True)

    assert (2, 3) not in {(pair.chosen_id, pair.rejected_id) for pair in without}
    [tie] = [pair for pair in with_ties if pair.margin == 0.0]
    assert (tie.chosen_id, tie.rejected_id, tie.agreement) == (2, 3, 1.0)
    assert len(with_ties) == len(without) + 1 == 6


def test_consensus_margin_is_a_rounded_score_gap_never_negative_zero() -> None:
    groups = [[1], [2]]
    pairs = build_consensus_pairs(
        make_prompt((1, 2)), [ranking(1, "a", [[1], [2]])], groups, {1: 0.1 + 0.2, 2: 0.0}
    )

    assert pairs[0].margin == 0.3
    assert str(round(-1e-9, 6) + 0.0) == "0.0"


def test_consensus_pairs_from_the_rankings_consensus_function() -> None:
    rankings = [
        ranking(1, "a", [[1], [2], [3]]),
        ranking(2, "b", [[1], [3], [2]]),
        ranking(3, "c", [[2], [1], [3]]),
    ]
    result = consensus_ranking([r.groups for r in rankings])

    pairs = build_consensus_pairs(make_prompt((1, 2, 3)), rankings, result.groups, result.scores)

    assert pairs[0].chosen_id == 1  # two of three raters put 1 first
    assert len(pairs) == 3
    assert all(pair.margin > 0 for pair in pairs)


def test_consensus_naming_an_unknown_response_is_refused() -> None:
    with pytest.raises(ValueError, match="does not have"):
        build_consensus_pairs(make_prompt((1, 2)), [], [[1], [9]], {1: 1.0, 9: 0.0})


def test_no_rankings_gives_no_pairs() -> None:
    assert build_pairs(make_prompt(), [], "all_pairs") == []


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pair strategy 'consensus'"):
        build_pairs(make_prompt(), [RANKING_A], "consensus")


def test_ranking_of_another_prompt_is_refused() -> None:
    stray = RankingData(ranking_id=1, prompt_id=99, rater_key="a", groups=[[1], [2]])

    with pytest.raises(ValueError, match="prompt 99"):
        build_pairs(make_prompt(), [stray], "all_pairs")


def test_ranking_naming_unknown_or_repeated_response_is_refused() -> None:
    with pytest.raises(ValueError, match="response 9"):
        build_pairs(make_prompt(), [ranking(1, "a", [[1], [9]])], "all_pairs")
    with pytest.raises(ValueError, match="twice"):
        build_pairs(make_prompt(), [ranking(1, "a", [[1], [2, 1]])], "all_pairs")


def test_pair_is_frozen() -> None:
    pair = build_pairs(make_prompt(), [RANKING_A], "all_pairs")[0]

    with pytest.raises(AttributeError):
        pair.margin = 5.0  # type: ignore[misc]


def test_pseudonymous_rater_key_is_stable_short_hex() -> None:
    key = pseudonymous_rater_key("project-secret", 42)

    assert key == pseudonymous_rater_key("project-secret", 42)
    assert len(key) == 16
    assert all(character in "0123456789abcdef" for character in key)


def test_pseudonymous_rater_key_matches_hmac_sha256_prefix() -> None:
    expected = hmac.new(b"s3cret", b"42", hashlib.sha256).hexdigest()[:16]

    assert pseudonymous_rater_key("s3cret", 42) == expected


def test_pseudonymous_rater_keys_differ_between_users_and_projects() -> None:
    keys = {pseudonymous_rater_key("secret-a", user_id) for user_id in range(2000)}

    assert len(keys) == 2000
    assert pseudonymous_rater_key("secret-a", 1) != pseudonymous_rater_key("secret-b", 1)


# --- response scores (UltraFeedback's score_chosen / score_rejected) ----------------------


def test_response_score_is_the_share_of_comparisons_won_on_a_1_to_10_scale() -> None:
    scores = response_scores(make_prompt(), THREE_RANKINGS)

    # Wins out of 9 comparisons, a tie counting half: 1 → 8, 2 → 6.5, 3 → 2.5, 4 → 1.
    assert scores == {1: 9.0, 2: 7.5, 3: 3.5, 4: 2.0}


def test_response_scores_are_10_and_1_for_unanimous_best_and_worst() -> None:
    unanimous = [ranking(index, f"k{index}", [[1], [2], [3], [4]]) for index in range(3)]

    scores = response_scores(make_prompt(), unanimous)

    assert scores[1] == 10.0 and scores[4] == 1.0


def test_responses_no_ranking_names_get_no_score() -> None:
    prompt = make_prompt((1, 2, 3))

    scores = response_scores(prompt, [ranking(1, "a", [[2], [1]])])

    assert scores == {2: 10.0, 1: 1.0}


def reference_scores(rankings: list[RankingData]) -> dict[int, float]:
    """From pair labels: every unordered pair of a ranking gives its winner 1, a tie ½ each."""
    won: dict[int, float] = {}
    compared: dict[int, int] = {}
    for item in rankings:
        level = {rid: index for index, group in enumerate(item.groups) for rid in group}
        for first, second in itertools.combinations(sorted(level), 2):
            for rid in (first, second):
                compared[rid] = compared.get(rid, 0) + 1
                won.setdefault(rid, 0.0)
            if level[first] == level[second]:
                won[first] += 0.5
                won[second] += 0.5
            else:
                won[first if level[first] < level[second] else second] += 1
    return {rid: 1 + 9 * won[rid] / compared[rid] for rid in compared}


def test_response_scores_match_a_pair_label_reference_on_random_rankings() -> None:
    rng = random.Random(17)
    for _ in range(200):
        ids = tuple(range(1, rng.randint(2, 9) + 1))
        rankings = []
        for index in range(rng.randint(1, 5)):
            order = rng.sample(ids, rng.randint(2, len(ids)))
            groups: list[list[int]] = []
            for response_id in order:
                if groups and rng.random() < 0.3:
                    groups[-1].append(response_id)
                else:
                    groups.append([response_id])
            rankings.append(ranking(index, f"k{index}", groups))

        scores = response_scores(make_prompt(ids), rankings)

        expected = reference_scores(rankings)
        assert scores.keys() == expected.keys()
        for response_id, score in scores.items():
            assert score == pytest.approx(expected[response_id], abs=1e-4)
