"""Simulated crowds whose models' quality is known: the leaderboard must order the models
correctly, its 95 % intervals must cover the true strengths (at least 88 % of them over
30 seeds: the nominal rate minus sampling slack for 150 intervals), separate clear gaps,
and the length-controlled variant must remove a pure length bias."""

from __future__ import annotations

import numpy as np

from rankings.stats.consensus import prompt_consensus
from rankings.stats.davidson import davidson_probabilities
from rankings.stats.leaderboard import model_leaderboard
from rankings.stats.tables import RankingTable

TRUE_STRENGTH = np.array([-0.8, -0.3, 0.0, 0.4, 0.7])  # mean 0, as the leaderboard reports
NAMES = ["ant", "bee", "cat", "dog", "eel"]


def davidson_pairs(
    rng: np.random.Generator,
    strength: np.ndarray,
    *,
    n_prompts: int,
    raters: int,
    tie_propensity: float,
    lengths: np.ndarray | None = None,
    length_effect: float = 0.0,
) -> tuple[RankingTable, np.ndarray, np.ndarray]:
    """Prompts with two responses from two different models; each rater's verdict drawn
    from Davidson's model at the true strengths (plus the length effect)."""
    n_models = len(strength)
    models = np.array([rng.choice(n_models, 2, replace=False) for _ in range(n_prompts)])
    if lengths is None:
        length = np.full((n_prompts, 2), 500.0)
    else:
        length = lengths[models] * np.exp(rng.normal(0, 0.4, models.shape))
    x = (length[:, 0] - length[:, 1]) / (length[:, 0] + length[:, 1])
    difference = strength[models[:, 0]] - strength[models[:, 1]] + length_effect * x
    p_first, p_second, _, _ = davidson_probabilities(difference, np.log(tie_propensity))
    draws = rng.random((raters, n_prompts))
    first_wins = draws < p_first
    second_wins = (draws >= p_first) & (draws < p_first + p_second)
    ranks = np.ones((raters, n_prompts, 2))
    ranks[:, :, 1] += first_wins
    ranks[:, :, 0] += second_wins
    table = RankingTable(
        prompt_index=np.tile(np.arange(n_prompts), raters),
        rater_index=np.repeat(np.arange(raters), n_prompts),
        ranks=ranks.reshape(-1, 2),
        n_prompts=n_prompts,
    )
    return table, models, length


def test_intervals_cover_the_true_strengths_at_about_the_stated_rate() -> None:
    covered, intervals = 0, 0
    tie_estimates: list[float] = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        table, models, length = davidson_pairs(
            rng, TRUE_STRENGTH, n_prompts=800, raters=3, tie_propensity=0.4
        )
        result = model_leaderboard(table, models, NAMES, length, seed=seed)
        assert result.converged
        assert [row.name for row in result.models] == NAMES[::-1]  # strongest first
        for row in result.models:
            truth = TRUE_STRENGTH[NAMES.index(row.name)]
            assert row.low is not None and row.high is not None
            covered += row.low <= truth <= row.high
            intervals += 1
        assert result.tie_propensity is not None
        tie_estimates.append(result.tie_propensity)
    coverage = covered / intervals
    assert 0.88 <= coverage <= 1.0, coverage
    assert abs(float(np.mean(tie_estimates)) - 0.4) < 0.03


def crowd_rankings(
    rng: np.random.Generator, strength: np.ndarray, *, n_prompts: int, k: int, raters: int
) -> tuple[RankingTable, np.ndarray]:
    """Prompts with k responses from k different models; each response's quality is its
    model's plus a prompt-level draw; raters rank by that quality seen through noise and
    tie what they perceive as close."""
    models = np.array([rng.choice(len(strength), k, replace=False) for _ in range(n_prompts)])
    quality = strength[models] + rng.normal(0, 0.5, (n_prompts, k))
    rows = []
    for _ in range(raters):
        perceived = np.round((quality + rng.gumbel(0, 0.6, quality.shape)) * 4) / 4
        rows.append(np.array([np.unique(-row, return_inverse=True)[1] + 1.0 for row in perceived]))
    table = RankingTable(
        prompt_index=np.tile(np.arange(n_prompts), raters),
        rater_index=np.repeat(np.arange(raters), n_prompts),
        ranks=np.concatenate(rows),
        n_prompts=n_prompts,
    )
    return table, models


def test_a_crowd_ranking_four_responses_orders_the_models_and_separates_clear_gaps() -> None:
    strength = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    names = [f"model-{index}" for index in range(len(strength))]
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        table, models = crowd_rankings(rng, strength, n_prompts=600, k=4, raters=3)
        consensus = prompt_consensus(table)
        consensus_table = RankingTable(
            prompt_index=np.arange(table.n_prompts),
            rater_index=np.zeros(table.n_prompts, dtype=np.int64),
            ranks=consensus.levels,
        )
        for source in (table, consensus_table):
            result = model_leaderboard(source, models, names)
            assert [row.name for row in result.models] == names[::-1]
            for stronger, weaker in zip(result.models, result.models[1:], strict=False):
                assert weaker.high is not None and stronger.low is not None
                assert weaker.high < stronger.low, (stronger, weaker)
            win_rate = np.array(result.win_rate, dtype=float)
            # The stronger model of each pair wins more than half of their meetings.
            assert (win_rate[np.triu_indices(len(names), 1)] > 0.5).all()


def test_length_control_removes_a_pure_length_bias() -> None:
    # Four equally good models; "eel" writes three times as much, and raters prefer longer
    # answers (a log-odds of 1.5 per unit of relative length difference).
    equal = np.zeros(4)
    names = ["ant", "bee", "cat", "eel"]
    typical_length = np.array([300.0, 300.0, 300.0, 900.0])
    covered, intervals, effect_covered = 0, 0, 0
    for seed in range(10):
        rng = np.random.default_rng(200 + seed)
        table, models, length = davidson_pairs(
            rng,
            equal,
            n_prompts=1500,
            raters=2,
            tie_propensity=0.3,
            lengths=typical_length,
            length_effect=1.5,
        )
        plain = model_leaderboard(table, models, names, length, seed=seed)
        assert plain.models[0].name == "eel"
        assert plain.models[0].low is not None and plain.models[0].low > 0.2
        assert plain.models[0].low > max(row.high or 0.0 for row in plain.models[1:])

        controlled = model_leaderboard(table, models, names, length, length_control=True, seed=seed)
        eel = next(row for row in controlled.models if row.name == "eel")
        assert eel.low is not None and eel.high is not None and eel.strength is not None
        assert eel.low <= 0.0 <= eel.high
        assert abs(eel.strength) < 0.2
        for row in controlled.models:
            assert row.low is not None and row.high is not None
            covered += row.low <= 0.0 <= row.high
            intervals += 1
        assert controlled.length_effect_interval is not None
        low, high = controlled.length_effect_interval
        effect_covered += low <= 1.5 <= high
    assert covered / intervals >= 0.9
    assert effect_covered >= 9


def test_length_control_puts_a_verbose_weak_model_back_in_its_place() -> None:
    names = ["ant", "bee", "cat", "dog", "eel"]
    typical_length = np.array([400.0, 400.0, 400.0, 400.0, 1600.0])  # eel, the weakest, rambles
    strength = np.array([0.6, 0.3, 0.0, -0.3, -0.6])
    rng = np.random.default_rng(7)
    table, models, length = davidson_pairs(
        rng,
        strength,
        n_prompts=3000,
        raters=2,
        tie_propensity=0.3,
        lengths=typical_length,
        length_effect=3.0,
    )
    plain = model_leaderboard(table, models, names, length)
    assert plain.models[0].name == "eel"
    controlled = model_leaderboard(table, models, names, length, length_control=True)
    assert [row.name for row in controlled.models] == names
    for row in controlled.models:
        truth = strength[names.index(row.name)]
        assert row.low is not None and row.high is not None
        assert row.low <= truth <= row.high
