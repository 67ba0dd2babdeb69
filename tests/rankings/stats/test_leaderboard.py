"""The model leaderboard's maths: Davidson strengths checked against the log-likelihood
written out comparison by comparison and maximized by scipy.optimize, the win-rate matrix
counted by hand, the prompt weighting, and invariance to model, response, ranking and
prompt order."""

from __future__ import annotations

import itertools
from dataclasses import asdict

import numpy as np
import pytest
from scipy.optimize import minimize

from rankings.stats import leaderboard as board
from rankings.stats.leaderboard import model_leaderboard
from rankings.stats.tables import RankingTable


def random_project(
    seed: int,
    *,
    n_prompts: int = 60,
    n_models: int = 4,
    k: int = 3,
    ties: bool = True,
    raters: tuple[int, int] = (1, 4),
    missing_model: bool = False,
) -> tuple[RankingTable, np.ndarray, list[str], np.ndarray]:
    """Random rankings (1 to 3 raters per prompt, ties or not) of responses from random
    models (repeats of a model allowed), with random lengths."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(0, 1, n_models)
    models = rng.integers(0, n_models, size=(n_prompts, k))
    if missing_model:
        models[rng.random((n_prompts, k)) < 0.1] = -1
    length = rng.integers(20, 2000, size=(n_prompts, k)).astype(float)
    rows, prompts = [], []
    for prompt in range(n_prompts):
        for _ in range(rng.integers(raters[0], raters[1])):
            utility = quality[np.maximum(models[prompt], 0)] + rng.normal(0, 1.2, k)
            if ties:
                utility = np.round(utility * 1.5) / 1.5
            levels = np.unique(-utility, return_inverse=True)[1] + 1.0
            rows.append(levels)
            prompts.append(prompt)
    table = RankingTable(
        prompt_index=np.array(prompts),
        rater_index=np.arange(len(prompts)) % 7,
        ranks=np.array(rows),
        n_prompts=n_prompts,
    )
    return table, models, [f"model-{index}" for index in range(n_models)], length


def reference_fit(
    table: RankingTable,
    models: np.ndarray,
    length: np.ndarray,
    n_models: int,
    *,
    length_control: bool,
    ties: bool,
) -> tuple[np.ndarray, float | None, float | None]:
    """The penalized Davidson log-likelihood written out one comparison at a time in its
    textbook form (pi_i / (pi_i + pi_j + nu sqrt(pi_i pi_j))), maximized with BFGS."""
    per_prompt = np.bincount(table.prompt_index, minlength=table.n_prompts)
    comparisons = []  # (model a, model b, x, outcome, weight); outcome 1 a wins, -1 b, 0 tie
    for row, prompt in enumerate(table.prompt_index):
        ranks = table.ranks[row]
        for i, j in itertools.combinations(range(table.k_max), 2):
            a, b = models[prompt, i], models[prompt, j]
            if a < 0 or b < 0 or np.isnan(ranks[i]) or np.isnan(ranks[j]):
                continue
            la, lb = length[prompt, i], length[prompt, j]
            x = (la - lb) / (la + lb) if length_control else 0.0
            outcome = int(np.sign(ranks[j] - ranks[i]))
            comparisons.append((a, b, x, outcome, 1.0 / per_prompt[prompt]))
    # Models that meet another model; the rest are not part of the fit.
    met = sorted({m for a, b, *_ in comparisons if a != b for m in (a, b)})
    index = {model: position for position, model in enumerate(met)}
    kept = [c for c in comparisons if c[0] in index and c[1] in index]
    size = len(met) + int(length_control) + int(ties)

    def negative_objective(parameters: np.ndarray) -> float:
        theta = parameters[: len(met)]
        beta = parameters[len(met)] if length_control else 0.0
        eta = parameters[-1] if ties else -np.inf
        total = 0.0
        for a, b, x, outcome, weight in kept:
            log_pi_a = theta[index[a]] + beta * x / 2.0
            log_pi_b = theta[index[b]] - beta * x / 2.0
            log_tie = eta + (log_pi_a + log_pi_b) / 2.0
            log_z = np.logaddexp.reduce([log_pi_a, log_pi_b, log_tie])
            chosen = {1: log_pi_a, -1: log_pi_b, 0: log_tie}[outcome]
            total += weight * (chosen - log_z)
        linear = parameters[: len(met) + int(length_control)]
        total -= board.STRENGTH_PRIOR / 2.0 * float((linear**2).sum())
        if ties:
            total -= board.TIE_PRIOR / 2.0 * eta**2
        return -total

    found = minimize(negative_objective, np.zeros(size), method="BFGS", options={"gtol": 1e-9})
    theta = found.x[: len(met)]
    return (
        theta - theta.mean(),
        float(found.x[len(met)]) if length_control else None,
        float(found.x[-1]) if ties else None,
    )


def strengths_by_name(result: board.Leaderboard) -> dict[str, float]:
    return {row.name: row.strength for row in result.models if row.strength is not None}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("length_control", [False, True])
def test_strengths_match_the_likelihood_maximized_by_scipy(seed: int, length_control: bool) -> None:
    ties = seed % 2 == 0
    table, models, names, length = random_project(seed, ties=ties, missing_model=seed == 3)
    result = model_leaderboard(
        table, models, names, length, length_control=length_control, length_resolution=0.0
    )
    theta, beta, eta = reference_fit(
        table, models, length, len(names), length_control=length_control, ties=ties
    )
    met = sorted(strengths_by_name(result), key=names.index)
    ours = strengths_by_name(result)
    assert [ours[name] for name in met] == pytest.approx(list(theta), abs=2e-5)
    assert result.converged
    if length_control:
        assert result.length_effect == pytest.approx(beta, abs=2e-5)
    else:
        assert result.length_effect is None
    if ties:
        assert eta is not None
        assert result.tie_propensity == pytest.approx(np.exp(eta), rel=1e-4)
    else:
        assert result.tie_propensity == 0.0


def test_rounding_lengths_to_the_resolution_barely_moves_the_strengths() -> None:
    table, models, names, length = random_project(7, n_prompts=200)
    exact = model_leaderboard(
        table, models, names, length, length_control=True, length_resolution=0.0, resamples=0
    )
    rounded = model_leaderboard(table, models, names, length, length_control=True, resamples=0)
    exact_strengths, rounded_strengths = strengths_by_name(exact), strengths_by_name(rounded)
    for name, value in exact_strengths.items():
        assert rounded_strengths[name] == pytest.approx(value, abs=2e-3)


def test_win_rate_matrix_counts_vote_shares_per_prompt() -> None:
    # Prompt 0: three raters, A over B twice and a tie once. Prompt 1: one rater, B over A.
    # Prompt 2: A twice (same model) and C; C is last for its one rater.
    table = RankingTable(
        prompt_index=np.array([0, 0, 0, 1, 2]),
        rater_index=np.array([0, 1, 2, 0, 0]),
        ranks=np.array(
            [[1, 2, np.nan], [1, 2, np.nan], [1, 1, np.nan], [2, 1, np.nan], [1, 2, 3]],
            dtype=float,
        ),
    )
    models = np.array([[0, 1, -1], [0, 1, -1], [0, 0, 2]])
    result = model_leaderboard(table, models, ["A", "B", "C"], resamples=0)
    rows = {row.name: row for row in result.models}
    # Each prompt's response pair weighs 1: prompt 0 gives A 2/3 win and 1/3 tie.
    assert rows["A"].wins == pytest.approx(2 / 3 + 2)  # prompt 0, and both A's over C
    assert rows["A"].ties == pytest.approx(1 / 3)
    assert rows["A"].losses == pytest.approx(1)
    assert rows["A"].comparisons == pytest.approx(4)  # the A-A pair is not a comparison
    assert rows["B"].comparisons == pytest.approx(2)
    assert rows["C"].losses == pytest.approx(2)
    names = [row.name for row in result.models]
    a, b, c = names.index("A"), names.index("B"), names.index("C")
    assert result.win_rate[a][b] == pytest.approx((2 / 3 + 1 / 6) / 2)
    assert result.win_rate[b][a] == pytest.approx(1 - (2 / 3 + 1 / 6) / 2)
    assert result.win_rate[a][c] == 1.0
    assert result.win_rate[b][c] is None
    assert result.comparisons[a][c] == 2.0
    assert result.win_rate[a][a] is None
    assert result.n_prompts == 3


def test_many_raters_on_one_prompt_do_not_outweigh_other_prompts() -> None:
    # Ten raters prefer A on one prompt; on two other prompts one rater each prefers B.
    prompt_index = np.array([0] * 10 + [1, 2])
    ranks = np.array([[1.0, 2.0]] * 10 + [[2.0, 1.0]] * 2)
    table = RankingTable(prompt_index=prompt_index, rater_index=np.arange(12), ranks=ranks)
    models = np.array([[0, 1]] * 3)
    result = model_leaderboard(table, models, ["A", "B"], resamples=0)
    assert [row.name for row in result.models] == ["B", "A"]
    assert result.models[0].wins == pytest.approx(2.0)


def test_fewer_than_two_models_give_no_strengths() -> None:
    table = RankingTable(
        prompt_index=np.array([0]), rater_index=np.array([0]), ranks=np.array([[1.0, 2.0]])
    )
    result = model_leaderboard(table, np.array([[0, 0]]), ["A"], resamples=10)
    assert result.models == []
    assert result.tie_propensity is None
    assert result.resamples == 0


def test_the_same_seed_gives_the_same_intervals_and_another_seed_others() -> None:
    table, models, names, length = random_project(3, n_prompts=120)
    first = model_leaderboard(table, models, names, length, resamples=50, seed=5)
    again = model_leaderboard(table, models, names, length, resamples=50, seed=5)
    other = model_leaderboard(table, models, names, length, resamples=50, seed=6)
    assert asdict(first) == asdict(again)
    assert [row.low for row in first.models] != [row.low for row in other.models]
    for row in first.models:
        assert row.low is not None and row.high is not None and row.strength is not None
        assert row.low <= row.strength <= row.high


def permuted(
    table: RankingTable, models: np.ndarray, length: np.ndarray, seed: int
) -> tuple[RankingTable, np.ndarray, np.ndarray]:
    """The same data with each prompt's responses in another order, prompts renumbered and
    the rankings shuffled."""
    rng = np.random.default_rng(seed)
    n_prompts, k = models.shape
    slot_orders = np.array([rng.permutation(k) for _ in range(n_prompts)])
    prompt_order = rng.permutation(n_prompts)  # new index of each prompt
    new_models = np.empty_like(models)
    new_length = np.empty_like(length)
    new_models[prompt_order] = np.take_along_axis(models, slot_orders, axis=1)
    new_length[prompt_order] = np.take_along_axis(length, slot_orders, axis=1)
    ranks = np.take_along_axis(table.ranks, slot_orders[table.prompt_index], axis=1)
    rows = rng.permutation(table.n_rankings)
    shuffled = RankingTable(
        prompt_index=prompt_order[table.prompt_index][rows],
        rater_index=table.rater_index[rows],
        ranks=ranks[rows],
        n_prompts=n_prompts,
    )
    return shuffled, new_models, new_length


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("length_control", [False, True])
def test_leaderboard_is_invariant_to_response_prompt_ranking_and_model_order(
    seed: int, length_control: bool
) -> None:
    table, models, names, length = random_project(10 + seed, n_prompts=90, k=4)
    original = model_leaderboard(
        table, models, names, length, length_control=length_control, resamples=60
    )
    table2, models2, length2 = permuted(table, models, length, seed)
    # Models renamed in reverse index order: same names, other indices.
    reverse = np.where(models2 >= 0, len(names) - 1 - models2, -1)
    shuffled = model_leaderboard(
        table2, reverse, names[::-1], length2, length_control=length_control, resamples=60
    )
    assert [row.name for row in shuffled.models] == [row.name for row in original.models]
    for before, after in zip(original.models, shuffled.models, strict=True):
        assert after.strength == pytest.approx(before.strength, abs=1e-9)
        assert after.low == pytest.approx(before.low, abs=1e-9)
        assert after.high == pytest.approx(before.high, abs=1e-9)
        assert after.wins == pytest.approx(before.wins)
        assert after.ties == pytest.approx(before.ties)
    assert np.allclose(
        np.array(shuffled.win_rate, dtype=float),
        np.array(original.win_rate, dtype=float),
        equal_nan=True,
    )
    if length_control:
        assert shuffled.length_effect == pytest.approx(original.length_effect, abs=1e-9)
        assert shuffled.length_effect_interval == pytest.approx(
            original.length_effect_interval, abs=1e-9
        )
