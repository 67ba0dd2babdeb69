"""Agreement statistics checked against brute-force references and the krippendorff package.

The single-statistic references (``tests/rankings/references.py``) are checked against brute
force, krippendorff and scipy; the project summary is held to them.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from dataclasses import replace

import krippendorff
import numpy as np
import pytest
from scipy.stats import kendalltau, rankdata, spearmanr

from rankings.stats import bootstrap
from rankings.stats.agreement import rater_leave_one_out_agreement
from rankings.stats.project import PROJECT_STATISTICS, project_agreement
from rankings.stats.tables import (
    RankingTable,
    mid_ranks,
    one_ranking_per_rater,
    ranks_from_groups,
    slot_pairs,
)
from rankings.stats.units import prompt_units
from tests.rankings.references import (
    AgreementResult,
    fleiss_kappa_from_counts,
    fleiss_kappa_pairs,
    kendall_w_mean,
    krippendorff_alpha_interval,
    krippendorff_alpha_ordinal,
    pair_labels,
    pairwise_agreement,
    wilson_interval,
)

SEEDS = [0, 1, 2, 3, 4]
K_MAX = 6


# --------------------------------------------------------------------------------------------
# Random data: a few prompts with 2..6 responses, a varying subset of raters each, ties.
# --------------------------------------------------------------------------------------------


def random_groups(rng: np.random.Generator, true_quality: np.ndarray) -> list[list[int]]:
    """Tie groups of slots, best first: noisy quality rounded so that ties happen often."""
    noisy = np.rint(true_quality + rng.normal(0.0, 1.0, size=len(true_quality)))
    return [
        [int(slot) for slot in np.flatnonzero(noisy == level)]
        for level in sorted(set(noisy.tolist()), reverse=True)
    ]


def random_rankings(
    seed: int, n_prompts: int = 40, n_raters: int = 8
) -> tuple[RankingTable, list[tuple[int, int, list[list[int]]]]]:
    """A table plus the same rankings as (prompt, rater, tie groups of slots) for references."""
    rng = np.random.default_rng(seed)
    records: list[tuple[int, int, list[list[int]]]] = []
    for prompt in range(n_prompts):
        k = int(rng.integers(2, K_MAX + 1))
        true_quality = rng.uniform(0.0, 3.0, size=k)
        n_prompt_raters = int(rng.integers(1, n_raters + 1))
        for rater in rng.choice(n_raters, size=n_prompt_raters, replace=False):
            records.append((prompt, int(rater), random_groups(rng, true_quality)))
    return table_from_records(records, n_raters=n_raters), records


def table_from_records(
    records: list[tuple[int, int, list[list[int]]]], k_max: int = K_MAX, n_raters: int = 0
) -> RankingTable:
    identity = {slot: slot for slot in range(k_max)}
    ranks = [ranks_from_groups(groups, identity, k_max) for _, _, groups in records]
    return RankingTable(
        prompt_index=np.array([prompt for prompt, _, _ in records], dtype=np.int64),
        rater_index=np.array([rater for _, rater, _ in records], dtype=np.int64),
        ranks=np.array(ranks).reshape(len(records), k_max),
        n_raters=n_raters,
    )


def brute_force_labels(
    records: list[tuple[int, int, list[list[int]]]], include_ties: bool
) -> dict[tuple[int, int, int], dict[int, int]]:
    """(prompt, slot i, slot j) -> {rater: label}, straight from the tie groups."""
    units: dict[tuple[int, int, int], dict[int, int]] = defaultdict(dict)
    for prompt, rater, groups in records:
        level = {slot: g for g, group in enumerate(groups) for slot in group}
        for i, j in itertools.combinations(sorted(level), 2):
            label = 1 if level[i] < level[j] else -1 if level[i] > level[j] else 0
            if include_ties or label != 0:
                units[(prompt, i, j)][rater] = label
    return units


def reliability_matrix(records: list[tuple[int, int, list[list[int]]]]) -> np.ndarray:
    """Raters x (prompt, slot) units of mid-ranks, computed with scipy's average ranking."""
    columns = sorted({(p, slot) for p, _, groups in records for g in groups for slot in g})
    column_of = {unit: c for c, unit in enumerate(columns)}
    n_raters = max(rater for _, rater, _ in records) + 1
    data = np.full((n_raters, len(columns)), np.nan)
    for prompt, rater, groups in records:
        slots = [slot for group in groups for slot in group]
        group_of = [g for g, group in enumerate(groups) for _ in group]
        for slot, mid_rank in zip(slots, rankdata(group_of, method="average"), strict=True):
            data[rater, column_of[(prompt, slot)]] = mid_rank
    return data


# --------------------------------------------------------------------------------------------
# Representation helpers
# --------------------------------------------------------------------------------------------


def test_ranks_from_groups_gives_dense_levels_and_nan_for_missing_slots() -> None:
    row = ranks_from_groups([[12], [11, 13]], {11: 0, 12: 1, 13: 2}, k_max=4)
    np.testing.assert_array_equal(row, [2.0, 1.0, 2.0, np.nan])


def test_mid_ranks_give_tied_responses_the_mean_of_their_span() -> None:
    row = ranks_from_groups([[1], [2, 3], [4]], {1: 0, 2: 1, 3: 2, 4: 3}, k_max=5)
    np.testing.assert_array_equal(mid_ranks(row), [1.0, 2.5, 2.5, 4.0, np.nan])
    many = np.array([[1.0, 2.0, 2.0, 3.0], [1.0, 1.0, 1.0, np.nan]])
    np.testing.assert_array_equal(mid_ranks(many), [[1, 2.5, 2.5, 4], [2, 2, 2, np.nan]])


def test_pair_labels_say_which_slot_of_the_pair_is_better() -> None:
    table = RankingTable(
        prompt_index=np.array([0]), rater_index=np.array([0]), ranks=np.array([[2.0, 1.0, 2.0]])
    )
    labels = pair_labels(table)
    assert slot_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert labels.pair_slot.tolist() == [0, 1, 2]
    assert labels.label.tolist() == [-1, 0, 1]


def test_repeat_rankings_by_the_same_rater_keep_only_the_first() -> None:
    table = RankingTable(
        prompt_index=np.array([0, 0, 0]),
        rater_index=np.array([0, 1, 0]),
        ranks=np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0]]),
    )
    assert one_ranking_per_rater(table).ranks.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert pairwise_agreement(table) == AgreementResult(value=1.0, n_units=1, n_pairs=1)


# --------------------------------------------------------------------------------------------
# Pairwise agreement and leave-one-out agreement against brute force
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("include_ties", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_pairwise_agreement_matches_brute_force_count(seed: int, include_ties: bool) -> None:
    table, records = random_rankings(seed)
    agreeing = total = n_units = 0
    for raters in brute_force_labels(records, include_ties).values():
        if len(raters) >= 2:
            n_units += 1
            for a, b in itertools.combinations(raters.values(), 2):
                total += 1
                agreeing += a == b

    result = pairwise_agreement(table, include_ties=include_ties)

    assert result.n_units == n_units
    assert result.n_pairs == total
    assert result.value == pytest.approx(agreeing / total, abs=1e-12)


@pytest.mark.parametrize("include_ties", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_rater_leave_one_out_agreement_matches_brute_force(seed: int, include_ties: bool) -> None:
    table, records = random_rankings(seed)
    units = brute_force_labels(records, include_ties)
    results = rater_leave_one_out_agreement(table, include_ties=include_ties)

    assert [r.rater_index for r in results] == list(range(table.n_raters))
    for result in results:
        rater = result.rater_index
        agreed = compared = 0
        for raters in units.values():
            if rater in raters:
                for other, label in raters.items():
                    if other != rater:
                        compared += 1
                        agreed += label == raters[rater]
        assert result.n_pairs == compared
        assert result.n_rankings == sum(1 for _, r, _ in records if r == rater)
        if compared == 0:
            assert result.agreement is result.low is result.high is None
        else:
            assert result.agreement == pytest.approx(agreed / compared, abs=1e-12)
            low, high = wilson_interval(agreed, compared)
            assert result.low == pytest.approx(low)
            assert result.high == pytest.approx(high)
            assert result.low <= result.agreement <= result.high


def test_wilson_interval_matches_textbook_formula_for_8_of_10() -> None:
    z, n, p = 1.96, 10, 0.8
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half_width = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))

    low, high = wilson_interval(8, 10)

    assert low == pytest.approx(centre - half_width, abs=1e-12)
    assert high == pytest.approx(centre + half_width, abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)


def test_wilson_interval_stays_within_zero_and_one_and_is_nan_without_data() -> None:
    low, high = wilson_interval(0, 5)
    assert low == pytest.approx(0.0, abs=1e-12) and 0 < high < 1
    low, high = wilson_interval(5, 5)
    assert 0 < low < 1 and high == pytest.approx(1.0, abs=1e-12)
    assert all(math.isnan(bound) for bound in wilson_interval(0, 0))


# --------------------------------------------------------------------------------------------
# Krippendorff's alpha against the krippendorff package
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_alpha_ordinal_matches_krippendorff_package_on_random_rankings(seed: int) -> None:
    table, records = random_rankings(seed)
    expected = krippendorff.alpha(
        reliability_data=reliability_matrix(records), level_of_measurement="ordinal"
    )
    assert krippendorff_alpha_ordinal(table).value == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_alpha_interval_matches_krippendorff_package_on_random_rankings(seed: int) -> None:
    table, records = random_rankings(seed)
    expected = krippendorff.alpha(
        reliability_data=reliability_matrix(records), level_of_measurement="interval"
    )
    assert krippendorff_alpha_interval(table).value == pytest.approx(expected, abs=1e-9)


def test_alpha_ordinal_does_not_depend_on_unobserved_values_in_the_domain() -> None:
    _, records = random_rankings(7)
    data = reliability_matrix(records)
    full_domain = 1.0 + np.arange(2 * K_MAX - 1) / 2.0
    assert krippendorff.alpha(
        reliability_data=data, value_domain=full_domain, level_of_measurement="ordinal"
    ) == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"))


def test_alpha_counts_units_with_two_raters_and_their_rater_pairs() -> None:
    table, records = random_rankings(3)
    coders = (~np.isnan(reliability_matrix(records))).sum(axis=0)
    result = krippendorff_alpha_ordinal(table)
    assert result.n_units == int((coders >= 2).sum())
    assert result.n_pairs == int((coders * (coders - 1) // 2).sum())


# --------------------------------------------------------------------------------------------
# Fleiss' kappa and Kendall's W
# --------------------------------------------------------------------------------------------


def test_fleiss_kappa_reproduces_the_textbook_example() -> None:
    # Fleiss (1971) as tabulated on Wikipedia: 10 subjects, 14 raters, 5 categories.
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa_from_counts(counts) == pytest.approx(0.20993, abs=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_fleiss_kappa_on_pair_labels_matches_brute_force(seed: int) -> None:
    table, records = random_rankings(seed)
    units = [r for r in brute_force_labels(records, include_ties=True).values() if len(r) >= 2]
    unit_agreements, category_totals = [], {-1: 0, 0: 0, 1: 0}
    for raters in units:
        labels = list(raters.values())
        n = len(labels)
        same = sum(labels.count(c) * (labels.count(c) - 1) for c in (-1, 0, 1))
        unit_agreements.append(same / (n * (n - 1)))
        for label in labels:
            category_totals[label] += 1
    total = sum(category_totals.values())
    # Either response of a pair may be "first": the two "better" labels share their total.
    better = (category_totals[-1] + category_totals[1]) / 2
    chance = 2 * (better / total) ** 2 + (category_totals[0] / total) ** 2
    observed = sum(unit_agreements) / len(unit_agreements)

    result = fleiss_kappa_pairs(table)

    assert result.n_units == len(units)
    assert result.value == pytest.approx((observed - chance) / (1 - chance), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_kendall_w_mean_matches_tie_corrected_formula_per_prompt(seed: int) -> None:
    table, records = random_rankings(seed)
    by_prompt: dict[int, list[list[list[int]]]] = defaultdict(list)
    for prompt, _, groups in records:
        by_prompt[prompt].append(groups)
    ws = []
    for rankings in by_prompt.values():
        m = len(rankings)
        n = sum(len(group) for group in rankings[0])
        rank_sums = np.zeros(n)
        ties = 0.0
        for groups in rankings:
            group_of = {slot: g for g, group in enumerate(groups) for slot in group}
            rank_sums += rankdata([group_of[slot] for slot in range(n)], method="average")
            ties += sum(len(group) ** 3 - len(group) for group in groups)
        denominator = m**2 * (n**3 - n) - m * ties
        if m >= 2 and denominator > 0:
            squared_deviation = ((rank_sums - m * (n + 1) / 2) ** 2).sum()
            ws.append(12 * squared_deviation / denominator)

    result = kendall_w_mean(table)

    assert result.n_units == len(ws)
    assert result.value == pytest.approx(sum(ws) / len(ws), abs=1e-12)


def test_kendall_w_is_one_when_raters_agree_and_ignores_incomplete_rankings() -> None:
    table = RankingTable(
        prompt_index=np.array([0, 0, 0]),
        rater_index=np.array([0, 1, 2]),
        ranks=np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, np.nan, 2.0]]),
    )
    result = kendall_w_mean(table)
    assert result.value == pytest.approx(1.0)
    assert (result.n_units, result.n_pairs) == (1, 1)


# --------------------------------------------------------------------------------------------
# Edge cases and the project summary
# --------------------------------------------------------------------------------------------


def test_one_rater_per_prompt_leaves_every_statistic_undefined() -> None:
    table = RankingTable(
        prompt_index=np.array([0, 1]),
        rater_index=np.array([0, 1]),
        ranks=np.array([[1.0, 2.0, 3.0], [2.0, 1.0, np.nan]]),
    )
    for result in (
        pairwise_agreement(table),
        pairwise_agreement(table, include_ties=False),
        krippendorff_alpha_ordinal(table),
        krippendorff_alpha_interval(table),
        fleiss_kappa_pairs(table),
        kendall_w_mean(table),
    ):
        assert result == AgreementResult(value=None, n_units=0, n_pairs=0)
    summary = project_agreement(table)
    assert summary["n_prompts"] == 0 and summary["pairwise_agreement_n_units"] == 0
    assert summary["pairwise_agreement"] is None and summary["alpha_ordinal"] is None


def test_rater_without_co_raters_gets_no_agreement() -> None:
    table = RankingTable(
        prompt_index=np.array([0, 0, 1]),
        rater_index=np.array([0, 1, 2]),
        ranks=np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0]]),
        n_raters=4,
    )
    results = rater_leave_one_out_agreement(table)
    assert [(r.agreement, r.n_pairs, r.n_rankings) for r in results] == [
        (0.0, 1, 1),
        (0.0, 1, 1),
        (None, 0, 1),
        (None, 0, 0),
    ]
    assert results[2].low is None and results[2].high is None


def test_all_ties_agree_perfectly_with_ties_and_are_undefined_without() -> None:
    table = RankingTable(
        prompt_index=np.array([0, 0, 0]),
        rater_index=np.array([0, 1, 2]),
        ranks=np.ones((3, 4)),
    )
    assert pairwise_agreement(table) == AgreementResult(value=1.0, n_units=6, n_pairs=18)
    assert pairwise_agreement(table, include_ties=False) == AgreementResult(None, 0, 0)
    assert krippendorff_alpha_ordinal(table).value is None  # no variation: alpha undefined
    assert krippendorff_alpha_ordinal(table).n_units == 4
    assert kendall_w_mean(table).value is None
    assert fleiss_kappa_pairs(table).value is None


def test_perfect_agreement_with_two_responses_gives_one_everywhere() -> None:
    table = RankingTable(
        prompt_index=np.array([0, 0, 1, 1, 1]),
        rater_index=np.array([0, 1, 0, 1, 2]),
        ranks=np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 1.0], [2.0, 1.0]]),
    )
    summary = project_agreement(table)
    assert summary == {
        "pairwise_agreement": 1.0,
        "pairwise_agreement_n_units": 2,
        "pairwise_agreement_n_pairs": 4,
        "pairwise_agreement_ci": [1.0, 1.0],
        "pairwise_agreement_no_ties": 1.0,
        "pairwise_agreement_no_ties_n_units": 2,
        "pairwise_agreement_no_ties_n_pairs": 4,
        "pairwise_agreement_no_ties_ci": [1.0, 1.0],
        "kappa": 1.0,
        "kappa_n_units": 2,
        "kappa_n_pairs": 4,
        "kappa_ci": [1.0, 1.0],
        "alpha_ordinal": 1.0,
        "alpha_ordinal_n_units": 4,
        "alpha_ordinal_n_pairs": 8,
        "alpha_ordinal_ci": [1.0, 1.0],
        "alpha_interval": 1.0,
        "alpha_interval_n_units": 4,
        "alpha_interval_n_pairs": 8,
        "alpha_interval_ci": [1.0, 1.0],
        "kendall_w": 1.0,
        "kendall_w_n_units": 2,
        "kendall_w_n_pairs": 4,
        "kendall_w_ci": [1.0, 1.0],
        "n_prompts": 2,
        "n_rankings": 5,
        "n_raters": 3,
    }


def test_opposite_rankings_with_two_responses_disagree_completely() -> None:
    table = RankingTable(
        prompt_index=np.array([0, 0]),
        rater_index=np.array([0, 1]),
        ranks=np.array([[1.0, 2.0], [2.0, 1.0]]),
    )
    assert pairwise_agreement(table).value == 0.0
    assert krippendorff_alpha_ordinal(table).value is not None
    assert krippendorff_alpha_ordinal(table).value < 0


@pytest.mark.parametrize("seed", SEEDS)
def test_project_agreement_is_json_serializable_and_consistent(seed: int) -> None:
    table, _ = random_rankings(seed)
    summary = project_agreement(table)
    json.dumps(summary, allow_nan=False)
    assert summary["pairwise_agreement"] == pairwise_agreement(table).value
    no_ties = pairwise_agreement(table, include_ties=False).value
    assert summary["pairwise_agreement_no_ties"] == pytest.approx(no_ties)
    assert summary["kappa"] == pytest.approx(fleiss_kappa_pairs(table).value)
    assert summary["kendall_w"] == pytest.approx(kendall_w_mean(table).value)
    ordinal = krippendorff_alpha_ordinal(table)
    assert summary["alpha_ordinal"] == pytest.approx(ordinal.value)
    assert summary["alpha_ordinal_n_units"] == ordinal.n_units
    assert summary["kappa_n_pairs"] == fleiss_kappa_pairs(table).n_pairs
    assert summary["alpha_interval"] == pytest.approx(krippendorff_alpha_interval(table).value)
    assert summary["n_rankings"] == table.n_rankings


def test_empty_table_gives_an_all_none_summary() -> None:
    table = RankingTable(
        prompt_index=np.zeros(0, dtype=np.int64),
        rater_index=np.zeros(0, dtype=np.int64),
        ranks=np.zeros((0, 4)),
    )
    summary = project_agreement(table)
    json.dumps(summary, allow_nan=False)
    assert summary["n_rankings"] == 0 and summary["pairwise_agreement"] is None
    assert rater_leave_one_out_agreement(table) == []


# --------------------------------------------------------------------------------------------
# Bootstrap intervals over prompts
# --------------------------------------------------------------------------------------------


def duplicated_table(records, weights) -> RankingTable:
    """Each prompt's rankings repeated as ``weights[prompt]`` separate prompts: a resample."""
    prompts = sorted({prompt for prompt, _, _ in records})
    copies: list[tuple[int, int, list[list[int]]]] = []
    for prompt in prompts:
        for copy in range(int(weights[prompt])):
            copies.extend(
                (prompt * 100 + copy, rater, groups) for p, rater, groups in records if p == prompt
            )
    return table_from_records(copies, n_raters=8)


@pytest.mark.parametrize("seed", SEEDS)
def test_resampled_statistics_equal_the_statistics_of_a_resampled_table(seed: int) -> None:
    """The bootstrap's shortcut (weights times per-prompt sums) against rebuilding the table."""
    table, records = random_rankings(seed, n_prompts=15)
    one_per_rater = one_ranking_per_rater(table)
    units = prompt_units(one_per_rater)
    prompts = np.arange(table.n_prompts)
    features = bootstrap.prompt_features(units, prompts)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(table.n_prompts, np.full(table.n_prompts, 1 / table.n_prompts))
    resampled = bootstrap.statistics_from_sums((weights @ features)[np.newaxis], units.n_values)

    expected = project_agreement(duplicated_table(records, weights), resamples=0)

    for name in PROJECT_STATISTICS:
        value = resampled[name][0]
        if expected[name] is None:
            assert np.isnan(value), name
        else:
            assert value == pytest.approx(expected[name], abs=1e-9), name


@pytest.mark.parametrize("seed", SEEDS)
def test_interval_is_the_percentile_interval_of_brute_force_resamples(seed: int) -> None:
    table, records = random_rankings(seed, n_prompts=12)
    resamples = 25
    summary = project_agreement(table, resamples=resamples, seed=seed)

    # The same resample weights, applied by rebuilding tables: prompts with two rankings in
    # the order the bootstrap uses, drawn by the same generator.
    one_per_rater = one_ranking_per_rater(table)
    units = prompt_units(one_per_rater)
    counted = np.flatnonzero(np.bincount(one_per_rater.prompt_index) >= 2)
    features = bootstrap.prompt_features(units, counted)
    order = counted[
        np.argsort(np.round(features @ _projection(features.shape[1]), 6), kind="stable")
    ]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in PROJECT_STATISTICS}
    for _, _, weights in bootstrap.bootstrap_weight_blocks(len(order), resamples, rng):
        for row in weights:
            full = np.zeros(table.n_prompts)
            full[order] = row
            resampled = project_agreement(duplicated_table(records, full), resamples=0)
            for name in draws:
                draws[name].append(np.nan if resampled[name] is None else resampled[name])

    for name in PROJECT_STATISTICS:
        values = np.array(draws[name])
        values = values[np.isfinite(values)]
        expected = np.quantile(values, [0.025, 0.975])
        assert summary[f"{name}_ci"] == pytest.approx(expected.tolist(), abs=1e-6), name
        assert summary[f"{name}_ci"][0] <= summary[name] + 1e-9 or name == "kendall_w"


def _projection(n_features: int) -> np.ndarray:
    return np.random.default_rng(20240601).uniform(1.0, 2.0, n_features)


def test_interval_does_not_depend_on_how_prompts_and_raters_are_numbered() -> None:
    table, _ = random_rankings(5, n_prompts=60)
    rng = np.random.default_rng(1)
    prompt_relabel = rng.permutation(table.n_prompts)
    rater_relabel = rng.permutation(table.n_raters)
    rows = rng.permutation(table.n_rankings)
    shuffled = RankingTable(
        prompt_index=prompt_relabel[table.prompt_index][rows],
        rater_index=rater_relabel[table.rater_index][rows],
        ranks=table.ranks[rows],
    )
    before, after = project_agreement(table), project_agreement(shuffled)
    for name in PROJECT_STATISTICS:
        assert after[name] == pytest.approx(before[name])
        assert after[f"{name}_ci"] == pytest.approx(before[f"{name}_ci"])


def test_interval_is_seeded_and_brackets_the_value_on_real_sized_data() -> None:
    table, _ = random_rankings(2, n_prompts=300)
    first, again = project_agreement(table, seed=3), project_agreement(table, seed=3)
    other_seed = project_agreement(table, seed=4)
    assert first == again
    assert first["kappa_ci"] != other_seed["kappa_ci"]
    for name in PROJECT_STATISTICS:
        low, high = first[f"{name}_ci"]
        assert low < first[name] < high, name
        assert high - low < 0.2, name
    json.dumps(first, allow_nan=False)


def test_without_resamples_or_units_there_is_no_interval() -> None:
    table, _ = random_rankings(0)
    summary = project_agreement(table, resamples=0)
    assert all(summary[f"{name}_ci"] is None for name in PROJECT_STATISTICS)
    lonely = RankingTable(
        prompt_index=np.array([0, 1]), rater_index=np.array([0, 1]), ranks=np.ones((2, 3))
    )
    assert project_agreement(lonely)["pairwise_agreement_ci"] is None


def test_multinomial_weights_draw_every_prompt_count_once_per_resample() -> None:
    rng = np.random.default_rng(0)
    blocks = list(bootstrap.bootstrap_weight_blocks(1000, 50, rng, block=128))
    weights = np.hstack([block for _, _, block in blocks])
    assert [(start, stop) for start, stop, _ in blocks][:2] == [(0, 128), (128, 256)]
    assert weights.shape == (50, 1000)
    assert (weights.sum(axis=1) == 1000).all()
    assert weights.mean() == pytest.approx(1.0)
    assert weights.var() == pytest.approx(1 - 1 / 1000, rel=0.05)  # binomial(n, 1/n)


def test_poisson_weights_past_the_multinomial_limit(monkeypatch) -> None:
    monkeypatch.setattr(bootstrap, "MULTINOMIAL_LIMIT", 100)
    rng = np.random.default_rng(0)
    weights = np.hstack([w for _, _, w in bootstrap.bootstrap_weight_blocks(5000, 40, rng)])
    assert weights.shape == (40, 5000)
    assert weights.mean() == pytest.approx(1.0, abs=0.01)
    assert weights.var() == pytest.approx(1.0, abs=0.03)
    assert set(np.unique(weights)) <= set(range(12))


# --------------------------------------------------------------------------------------------
# scipy references for Kendall's W and tau
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_kendall_w_of_two_strict_raters_is_half_of_one_plus_spearman(seed: int) -> None:
    rng = np.random.default_rng(seed)
    records, expected = [], []
    for prompt in range(20):
        k = int(rng.integers(3, 8))
        first, second = rng.permutation(k), rng.permutation(k)
        records += [(prompt, 0, [[int(s)] for s in first]), (prompt, 1, [[int(s)] for s in second])]
        rho = spearmanr(np.argsort(first), np.argsort(second)).statistic
        expected.append((1 + rho) / 2)
    table = table_from_records(records, k_max=7)
    assert kendall_w_mean(table).value == pytest.approx(np.mean(expected), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_pairwise_agreement_of_two_strict_raters_is_half_of_one_plus_kendall_tau(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    k = 6
    first, second = rng.permutation(k), rng.permutation(k)
    table = table_from_records(
        [(0, 0, [[int(s)] for s in first]), (0, 1, [[int(s)] for s in second])], k_max=k
    )
    tau = kendalltau(np.argsort(first), np.argsort(second)).statistic
    assert pairwise_agreement(table).value == pytest.approx((1 + tau) / 2, abs=1e-12)
    assert pairwise_agreement(table, include_ties=False).value == pytest.approx((1 + tau) / 2)


def test_mid_ranks_match_scipy_average_ranks_on_random_rows() -> None:
    rng = np.random.default_rng(0)
    levels = rng.integers(1, 4, size=(200, 6)).astype(float)
    dense = np.array([rankdata(row, method="dense") for row in levels], dtype=float)
    expected = np.array([rankdata(row, method="average") for row in dense])
    np.testing.assert_allclose(mid_ranks(dense), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_prompt_types_count_every_prompts_own_features(seed: int) -> None:
    """Types are worked out once per distinct unit counts: the same rows, counts and totals
    as every prompt's own features, whatever order the prompts come in."""
    table, _ = random_rankings(seed, n_prompts=400)
    one_per_rater = one_ranking_per_rater(table)
    units = prompt_units(one_per_rater)
    counted = np.flatnonzero(np.bincount(one_per_rater.prompt_index) >= 2)
    # W undefined on some prompts (rare in random rankings: every rater tying everything).
    undefined_w = units.kendall_w.copy()
    undefined_w[counted[::7]] = np.nan
    units = replace(units, kendall_w=undefined_w)
    features = bootstrap.prompt_features(units, counted)
    rows, inverse = np.unique(features, axis=0, return_inverse=True)

    types = bootstrap.prompt_types(units, counted)
    shuffled = bootstrap.prompt_types(units, np.random.default_rng(seed).permutation(counted))

    assert len(types.rows) < len(counted)  # prompts do share their features
    by_row = {tuple(row): count for row, count in zip(types.rows, types.counts, strict=True)}
    expected = np.bincount(inverse.reshape(-1), minlength=len(rows))
    assert by_row == {tuple(row): count for row, count in zip(rows, expected, strict=True)}
    np.testing.assert_allclose(types.totals, features.sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(shuffled.rows, types.rows)
    np.testing.assert_array_equal(shuffled.counts, types.counts)
    np.testing.assert_allclose(shuffled.totals, types.totals, rtol=1e-12)
