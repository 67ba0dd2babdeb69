"""Per-rater quality statistics checked against brute-force pure-Python counts and scipy."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, field

import numpy as np
import pytest
from scipy.stats import binomtest

from rankings.stats.groups import group_medians
from rankings.stats.raters import binomial_two_sided_p_value, rater_quality
from rankings.stats.tables import RankingContext, RankingTable, ranks_from_groups
from tests.rankings.references import pooled_quality

SEEDS = [0, 1, 2, 3]
K_MAX = 5
N_RATERS = 7


@dataclass
class Record:
    """One ranking as plain Python: tie groups of slots best first, the shown order of slots."""

    prompt: int
    rater: int
    groups: list[list[int]]
    shown: list[int]
    seconds: float | None
    repeat: bool = False

    @property
    def level(self) -> dict[int, int]:
        return {slot: g for g, group in enumerate(self.groups, start=1) for slot in group}


@dataclass
class Crowd:
    records: list[Record]
    sizes: dict[int, int]  # responses per prompt
    lengths: dict[int, list[int]]
    gold: dict[int, list[list[int]]] = field(default_factory=dict)


def random_groups(rng: np.random.Generator, k: int, tie: float) -> list[list[int]]:
    order = [int(slot) for slot in rng.permutation(k)]
    groups = [[order[0]]]
    for slot in order[1:]:
        if rng.random() < tie:
            groups[-1].append(slot)
        else:
            groups.append([slot])
    return groups


def random_crowd(seed: int, n_prompts: int = 30) -> Crowd:
    """Prompts of 2..5 responses, a few gold; rankings with ties, shown orders (some raters
    rank exactly as shown), seconds (some missing), and repeats by the same rater."""
    rng = np.random.default_rng(seed)
    sizes, lengths, gold, records = {}, {}, {}, []
    for prompt in range(n_prompts):
        k = int(rng.integers(2, K_MAX + 1))
        sizes[prompt] = k
        lengths[prompt] = [int(x) for x in rng.integers(10, 14, size=k)]  # equal lengths happen
        if rng.random() < 0.2:
            gold[prompt] = random_groups(rng, k, tie=0.2)
        raters = rng.choice(N_RATERS, size=int(rng.integers(1, N_RATERS)), replace=False)
        for rater in raters:
            shown = [int(slot) for slot in rng.permutation(k)]
            if rater == 0 or rng.random() < 0.1:  # straight-liners
                groups = [[slot] for slot in shown]
            else:
                groups = random_groups(rng, k, tie=0.25)
            seconds = None if rng.random() < 0.1 else float(rng.lognormal(3, 0.5))
            records.append(Record(prompt, int(rater), groups, shown, seconds))
    for original in list(records):
        if rng.random() < 0.15:
            shown = [int(slot) for slot in rng.permutation(sizes[original.prompt])]
            groups = random_groups(rng, sizes[original.prompt], tie=0.25)
            seconds = float(rng.lognormal(3, 0.5))
            records.append(Record(original.prompt, original.rater, groups, shown, seconds, True))
    order = rng.permutation(len(records))  # repeats mixed in, but never before their original
    records = [records[i] for i in sorted(order, key=lambda i: (records[i].repeat, i))]
    return Crowd(records, sizes, lengths, gold)


def arrays(crowd: Crowd, n_raters: int = N_RATERS) -> tuple[RankingTable, RankingContext]:
    identity = {slot: slot for slot in range(K_MAX)}
    n_prompts = max(crowd.sizes) + 1
    shown_slots = np.full((len(crowd.records), K_MAX), -1, dtype=np.int8)
    for row, record in enumerate(crowd.records):
        shown_slots[row, : len(record.shown)] = record.shown
    gold_ranks = np.full((n_prompts, K_MAX), np.nan)
    for prompt, groups in crowd.gold.items():
        gold_ranks[prompt] = ranks_from_groups(groups, identity, K_MAX)
    lengths = np.full((n_prompts, K_MAX), np.nan)
    for prompt, values in crowd.lengths.items():
        lengths[prompt, : len(values)] = values
    table = RankingTable(
        prompt_index=np.array([r.prompt for r in crowd.records]),
        rater_index=np.array([r.rater for r in crowd.records]),
        ranks=np.array([ranks_from_groups(r.groups, identity, K_MAX) for r in crowd.records]),
        n_raters=n_raters,
    )
    context = RankingContext(
        is_repeat=np.array([r.repeat for r in crowd.records]),
        shown_slots=shown_slots,
        seconds=np.array([np.nan if r.seconds is None else r.seconds for r in crowd.records]),
        gold_ranks=gold_ranks,
        response_length=lengths,
    )
    return table, context


def label(level: dict[int, int], i: int, j: int) -> int:
    return 1 if level[i] < level[j] else -1 if level[i] > level[j] else 0


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


# --------------------------------------------------------------------------------------------
# Brute force, one rater at a time
# --------------------------------------------------------------------------------------------


def brute_force(crowd: Crowd, raters: set[int]) -> dict[str, object]:
    """Every statistic of ``RaterQuality`` for the rankings of ``raters``, by plain counting."""
    mine = [r for r in crowd.records if r.rater in raters]
    counted = [r for r in mine if not r.repeat]
    result: dict[str, object] = {"rankings": len(counted)}

    labelled = ties = 0
    for record in counted:
        for i, j in itertools.combinations(sorted(record.level), 2):
            labelled += 1
            ties += label(record.level, i, j) == 0
    result["labelled_pairs"], result["tie_rate"] = labelled, ratio(ties, labelled)

    gold_pairs = gold_matches = gold_rankings = 0
    for record in counted:
        if record.prompt in crowd.gold:
            gold_rankings += 1
            reference = {s: g for g, grp in enumerate(crowd.gold[record.prompt]) for s in grp}
            for i, j in itertools.combinations(sorted(record.level), 2):
                gold_pairs += 1
                gold_matches += label(record.level, i, j) == label(reference, i, j)
    result.update(
        gold_pairs=gold_pairs,
        gold_rankings=gold_rankings,
        gold_accuracy=ratio(gold_matches, gold_pairs),
    )

    repeat_pairs = repeat_matches = repeat_rankings = 0
    for repeat in (r for r in mine if r.repeat):
        original = next(
            r
            for r in crowd.records
            if not r.repeat and (r.prompt, r.rater) == (repeat.prompt, repeat.rater)
        )
        repeat_rankings += 1
        for i, j in itertools.combinations(sorted(repeat.level), 2):
            repeat_pairs += 1
            repeat_matches += label(repeat.level, i, j) == label(original.level, i, j)
    result.update(
        repeat_pairs=repeat_pairs,
        repeat_rankings=repeat_rankings,
        self_consistency=ratio(repeat_matches, repeat_pairs),
    )

    position_pairs = earlier_wins = 0
    for record in counted:
        for earlier, later in itertools.pairwise(record.shown):
            a, b = record.level[earlier], record.level[later]
            if a != b:
                position_pairs += 1
                earlier_wins += a < b
    result.update(
        position_pairs=position_pairs,
        first_shown_win_rate=ratio(earlier_wins, position_pairs),
        position_p_value=binomtest(earlier_wins, position_pairs).pvalue if position_pairs else None,
    )

    eligible = [r for r in counted if len(r.level) >= 2]
    straight = [r for r in eligible if r.groups == [[slot] for slot in r.shown]]
    result.update(
        straight_lined=len(straight),
        straight_lining_rate=ratio(len(straight), len(eligible)),
        straight_lining_chance=ratio(
            sum(1 / math.factorial(len(r.level)) for r in eligible), len(eligible)
        ),
    )

    length_pairs = longer_wins = 0
    for record in counted:
        size = crowd.lengths[record.prompt]
        for i, j in itertools.combinations(sorted(record.level), 2):
            outcome = label(record.level, i, j)
            if outcome != 0 and size[i] != size[j]:
                length_pairs += 1
                longer_wins += (outcome == 1) == (size[i] > size[j])
    result.update(length_pairs=length_pairs, longer_win_rate=ratio(longer_wins, length_pairs))

    # Speed: buckets by the prompt's total response length, quintiles over all timed rankings.
    timed = [r for r in crowd.records if not r.repeat and r.seconds is not None]
    seconds = {id(r): float(r.seconds or 0.0) for r in timed}
    totals = [sum(crowd.lengths[r.prompt]) for r in timed]
    edges: list[float] = np.quantile(totals, [0.2, 0.4, 0.6, 0.8]).tolist() if totals else []
    bucket_of = {
        id(r): sum(edge <= total for edge in edges) for r, total in zip(timed, totals, strict=True)
    }
    bucket_median = {
        bucket: statistics.median(seconds[id(r)] for r in timed if bucket_of[id(r)] == bucket)
        for bucket in set(bucket_of.values())
    }
    my_timed = [r for r in timed if r.rater in raters]
    result["timed_rankings"] = len(my_timed)
    result["median_seconds"] = (
        statistics.median(seconds[id(r)] for r in my_timed) if my_timed else None
    )
    result["speed_ratio"] = (
        statistics.median(seconds[id(r)] / bucket_median[bucket_of[id(r)]] for r in my_timed)
        if my_timed
        else None
    )
    return result


def assert_matches(actual: object, expected: dict[str, object]) -> None:
    for name, value in expected.items():
        got = getattr(actual, name)
        if value is None:
            assert got is None, name
        elif isinstance(value, int):
            assert got == value, name
        else:
            assert got == pytest.approx(value, abs=1e-9), name


# --------------------------------------------------------------------------------------------
# The statistics against brute force
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_every_rater_statistic_matches_brute_force_counts(seed: int) -> None:
    crowd = random_crowd(seed)
    table, context = arrays(crowd)

    results = rater_quality(table, context)

    assert [row.rater_index for row in results] == list(range(N_RATERS))
    for row in results:
        assert_matches(row, brute_force(crowd, {row.rater_index}))


@pytest.mark.parametrize("seed", SEEDS)
def test_pooled_statistics_are_the_whole_crowd_counted_as_one(seed: int) -> None:
    crowd = random_crowd(seed)
    table, context = arrays(crowd)
    assert_matches(pooled_quality(table, context), brute_force(crowd, set(range(N_RATERS))))


def test_a_straight_liner_and_a_careful_rater_are_told_apart() -> None:
    crowd = random_crowd(11, n_prompts=120)
    table, context = arrays(crowd)
    liner, careful = rater_quality(table, context)[0], rater_quality(table, context)[3]
    assert liner.straight_lining_rate == 1.0
    assert liner.first_shown_win_rate == 1.0 and liner.position_p_value < 1e-6
    assert careful.straight_lining_rate < 0.3
    assert careful.position_p_value > 0.001


def test_rankings_are_order_free_the_first_counted_ranking_is_the_original() -> None:
    crowd = random_crowd(4)
    table, context = arrays(crowd)
    rows = np.random.default_rng(0).permutation(table.n_rankings)
    # Keep each repeat after its original: the repeat flag, not the row order, says which.
    shuffled = table.take(rows)
    shuffled_context = context.take(rows)
    for before, after in zip(
        rater_quality(table, context), rater_quality(shuffled, shuffled_context), strict=True
    ):
        assert before.self_consistency == pytest.approx(after.self_consistency)
        assert before.repeat_pairs == after.repeat_pairs
        assert before.speed_ratio == pytest.approx(after.speed_ratio)


# --------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------


def test_without_context_only_ties_are_known() -> None:
    table = RankingTable(
        prompt_index=np.array([0, 0]),
        rater_index=np.array([0, 1]),
        ranks=np.array([[1.0, 1.0, 2.0], [1.0, 2.0, 3.0]]),
    )
    first, second = rater_quality(table, RankingContext())
    assert first.rankings == 1 and first.labelled_pairs == 3
    assert first.tie_rate == pytest.approx(1 / 3) and second.tie_rate == 0.0
    for row in (first, second):
        assert row.gold_accuracy is row.self_consistency is row.first_shown_win_rate is None
        assert row.straight_lining_rate is row.median_seconds is row.speed_ratio is None
        assert row.longer_win_rate is None
        assert row.gold_pairs == row.repeat_pairs == row.position_pairs == row.length_pairs == 0


def test_one_rater_all_ties_with_two_responses() -> None:
    table = RankingTable(
        prompt_index=np.array([0, 1]),
        rater_index=np.array([0, 0]),
        ranks=np.array([[1.0, 1.0], [1.0, 2.0]]),
        n_raters=3,
    )
    context = RankingContext(
        is_repeat=np.array([False, False]),
        shown_slots=np.array([[1, 0], [0, 1]], dtype=np.int8),
        seconds=np.array([10.0, np.nan]),
        response_length=np.array([[5.0, 5.0], [3.0, 9.0]]),
    )
    only, absent, also_absent = rater_quality(table, context)
    assert only.tie_rate == 0.5 and only.labelled_pairs == 2
    # The tied ranking decides nothing: one shown-adjacent pair, won by the earlier card.
    assert only.position_pairs == 1 and only.first_shown_win_rate == 1.0
    assert only.position_p_value == pytest.approx(1.0)
    assert only.straight_lined == 1 and only.straight_lining_rate == 0.5
    assert only.straight_lining_chance == pytest.approx(0.5)
    assert only.median_seconds == 10.0 and only.speed_ratio == 1.0 and only.timed_rankings == 1
    assert only.longer_win_rate == 0.0 and only.length_pairs == 1
    for missing in (absent, also_absent):
        assert missing.rankings == 0 and missing.tie_rate is None
        assert missing.first_shown_win_rate is None and missing.median_seconds is None


def test_a_repeat_without_its_original_is_not_compared() -> None:
    table = RankingTable(
        prompt_index=np.array([0, 1]),
        rater_index=np.array([0, 0]),
        ranks=np.array([[1.0, 2.0], [2.0, 1.0]]),
    )
    context = RankingContext(is_repeat=np.array([False, True]))
    (row,) = rater_quality(table, context)
    assert row.repeat_rankings == 0 and row.self_consistency is None
    assert row.rankings == 1


def test_empty_table() -> None:
    table = RankingTable(
        prompt_index=np.zeros(0, dtype=np.int64),
        rater_index=np.zeros(0, dtype=np.int64),
        ranks=np.zeros((0, 4)),
    )
    assert rater_quality(table, RankingContext()) == []
    pooled = pooled_quality(table, RankingContext(seconds=np.zeros(0)))
    assert pooled.rankings == 0 and pooled.median_seconds is None


# --------------------------------------------------------------------------------------------
# Helpers against scipy and statistics
# --------------------------------------------------------------------------------------------


def test_binomial_p_value_matches_scipy_binomtest() -> None:
    trials = range(1, 40)
    for n in trials:
        for k in range(n + 1):
            expected = binomtest(k, n, 0.5).pvalue
            assert binomial_two_sided_p_value(k, n) == pytest.approx(expected, rel=1e-9), (k, n)
    assert np.isnan(binomial_two_sided_p_value(0, 0))
    many = binomial_two_sided_p_value([3, 900, 500], [10, 1000, 1000])
    assert many[1] < 1e-100 and many[2] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_group_medians_match_statistics_median(seed: int) -> None:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 6, size=200)
    values = rng.normal(size=200)
    values[rng.random(200) < 0.1] = np.nan
    medians = group_medians(group, values, 8)
    for g in range(8):
        mine = [v for gg, v in zip(group, values, strict=True) if gg == g and not np.isnan(v)]
        if mine:
            assert medians[g] == pytest.approx(statistics.median(mine))
        else:
            assert np.isnan(medians[g])
