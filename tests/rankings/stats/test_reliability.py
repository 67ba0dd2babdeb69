"""The reliability model (rankings.stats.reliability) against a brute-force likelihood on
small cases, and its competence and intervals on labels drawn from the model itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import softmax

from rankings.stats import em_acceleration, label_blocks, reliability, sequential
from rankings.stats.reliability import (
    CAREFUL,
    FIRST_SHOWN,
    LONGER,
    PRIOR_LABELS,
    RANDOM,
    PairLabels,
    fit_reliability,
    objective,
    pair_labels,
)
from rankings.stats.tables import RankingContext, RankingTable


def random_labels(
    rng: np.random.Generator, n_units: int, n_raters: int, per_unit: int
) -> PairLabels:
    """Labels of random raters on random units, shown relations and lengths random."""
    units, raters = [], []
    for unit in range(n_units):
        chosen = rng.choice(n_raters, size=per_unit, replace=False)
        units += [unit] * per_unit
        raters += chosen.tolist()
    n = len(units)
    return PairLabels(
        unit=np.array(units, dtype=np.int64),
        rater=np.array(raters, dtype=np.int64),
        task=np.arange(n, dtype=np.int64),
        label=rng.choice([-1, 1], size=n).astype(np.int8),
        first_shown=rng.choice([-1, 0, 1], size=n).astype(np.int8),
        longer=rng.choice([-1, 0, 1], size=n_units).astype(np.int8),
        n_raters=n_raters,
        tasks=np.bincount(raters, minlength=n_raters).astype(np.int64),
    )


def brute_force_objective(labels: PairLabels, weights: np.ndarray, rho: float) -> float:
    """Sum over every assignment of truths to units of the joint probability, in Python."""
    total = 0.0
    for truths in itertools.product([1, -1], repeat=labels.n_units):
        probability = 1.0
        for unit, truth in enumerate(truths):
            longer = int(labels.longer[unit])
            probability *= 0.5 if longer == 0 else (rho if truth == longer else 1 - rho)
        for n in range(labels.n_labels):
            label, rater = int(labels.label[n]), int(labels.rater[n])
            shown, longer = int(labels.first_shown[n]), int(labels.longer[labels.unit[n]])
            w = weights[rater]
            probability *= (
                w[CAREFUL] * (label == truths[labels.unit[n]])
                + w[RANDOM] * 0.5
                + w[FIRST_SHOWN] * (0.5 if shown == 0 else float(label == shown))
                + w[LONGER] * (0.5 if longer == 0 else float(label == longer))
            )
        total += probability
    prior = PRIOR_LABELS * (np.log(weights).sum() + np.log(rho) + np.log(1 - rho))
    return float(np.log(total) + prior)


@pytest.mark.parametrize("seed", range(5))
def test_objective_is_the_brute_force_marginal_likelihood(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = random_labels(rng, n_units=6, n_raters=4, per_unit=3)
    weights = rng.dirichlet(np.ones(4), size=4)
    rho = float(rng.uniform(0.2, 0.8))
    assert objective(labels, weights, rho) == pytest.approx(
        brute_force_objective(labels, weights, rho), abs=1e-9
    )


@pytest.mark.parametrize("seed", range(5))
def test_em_never_lowers_the_objective_and_ends_at_its_maximum(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    labels = random_labels(rng, n_units=7, n_raters=3, per_unit=3)
    values = []
    for iterations in range(1, 30):
        fit = fit_reliability(labels, max_iterations=iterations, tolerance=0.0, accelerate=False)
        values.append(objective(labels, fit.weights, fit.rho))
    assert all(later >= earlier - 1e-10 for earlier, later in itertools.pairwise(values))

    fit = fit_reliability(labels, max_iterations=2000, tolerance=1e-10)
    fitted = brute_force_objective(labels, fit.weights, fit.rho)

    def negative(parameters: np.ndarray) -> float:
        weights = softmax(parameters[:-1].reshape(3, 4), axis=1)
        rho = 1 / (1 + np.exp(-parameters[-1]))
        return -objective(labels, weights, float(rho))

    # From the EM answer, a general-purpose optimizer finds nothing better nearby.
    start = np.append(np.log(fit.weights).reshape(-1), np.log(fit.rho / (1 - fit.rho)))
    polished = minimize(negative, start, method="Nelder-Mead", options={"maxiter": 4000})
    assert -polished.fun <= fitted + 1e-6


def model_labels(
    rng: np.random.Generator, weights: np.ndarray, n_units: int, per_unit: int, rho: float = 0.5
) -> tuple[PairLabels, np.ndarray]:
    """Labels drawn from the model itself with the given weights per rater."""
    n_raters = len(weights)
    longer = rng.choice([-1, 1], size=n_units).astype(np.int8)
    truth = np.where(rng.random(n_units) < rho, longer, -longer)
    unit = np.repeat(np.arange(n_units), per_unit)
    rater = np.concatenate([rng.choice(n_raters, per_unit, replace=False) for _ in range(n_units)])
    shown = rng.choice([-1, 1], size=len(unit)).astype(np.int8)
    way = np.array([rng.choice(4, p=weights[r]) for r in rater])
    coin = rng.choice([-1, 1], size=len(unit))
    label = np.select(
        [way == CAREFUL, way == RANDOM, way == FIRST_SHOWN],
        [truth[unit], coin, shown],
        longer[unit],
    )
    labels = PairLabels(
        unit=unit.astype(np.int64),
        rater=rater.astype(np.int64),
        task=np.arange(len(unit), dtype=np.int64) // 6,
        label=label.astype(np.int8),
        first_shown=shown,
        longer=longer,
        n_raters=n_raters,
        tasks=np.bincount(rater, minlength=n_raters).astype(np.int64),
    )
    return labels, truth


def test_the_fit_recovers_the_weights_and_truth_of_model_data() -> None:
    rng = np.random.default_rng(7)
    weights = np.array(
        [[0.9, 0.1, 0.0, 0.0]] * 12
        + [[0.4, 0.6, 0.0, 0.0], [0.3, 0.1, 0.6, 0.0], [0.3, 0.1, 0.0, 0.6]]
    )
    labels, truth = model_labels(rng, weights, n_units=3000, per_unit=4, rho=0.6)
    fit = fit_reliability(labels)
    assert fit.converged
    assert np.abs(fit.competence - weights[:, CAREFUL]).max() < 0.08
    # Careful raters' few errors are split between the ways of erring; a biased rater's
    # bias stands out.
    assert fit.weights[13, FIRST_SHOWN] == pytest.approx(0.6, abs=0.08)
    assert fit.weights[14, LONGER] == pytest.approx(0.6, abs=0.08)
    assert fit.weights[12, RANDOM] == pytest.approx(0.6, abs=0.08)
    assert fit.rho == pytest.approx(0.6, abs=0.04)
    assert np.mean(np.sign(fit.unit_log_odds) == truth) > 0.95


def test_competence_intervals_cover_the_true_competence() -> None:
    covered, total = 0, 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        competence = rng.uniform(0.3, 0.95, size=15)
        weights = np.column_stack([competence, 1 - competence, np.zeros(15), np.zeros(15)])
        labels, _ = model_labels(rng, weights, n_units=400, per_unit=4)
        rows = sequential.rater_reliability(labels, fit_reliability(labels))
        for row, true in zip(rows, competence, strict=True):
            assert row.competence_low is not None and row.competence_high is not None
            assert row.competence is not None
            assert row.competence_low <= row.competence <= row.competence_high
            covered += row.competence_low <= true <= row.competence_high
            total += 1
    assert 0.88 <= covered / total <= 1.0


def test_pair_labels_read_ranks_shown_order_and_lengths() -> None:
    # Two rankings of one prompt of three responses, one a repeat; one of another prompt.
    table = RankingTable(
        prompt_index=np.array([0, 0, 1]),
        rater_index=np.array([0, 0, 1]),
        ranks=np.array([[1.0, 2.0, 2.0], [3.0, 2.0, 1.0], [2.0, 1.0, np.nan]]),
    )
    context = RankingContext(
        is_repeat=np.array([False, True, False]),
        shown_slots=np.array([[2, 0, 1], [0, 1, 2], [1, 0, -1]], dtype=np.int8),
        response_length=np.array([[10.0, 20.0, 20.0], [5.0, 3.0, np.nan]]),
    )
    labels = pair_labels(table, context)
    # Slot pairs (0,1), (0,2), (1,2): the repeat and the tie (1,2) are left out.
    rows = sorted(
        zip(
            labels.unit.tolist(),
            labels.rater.tolist(),
            labels.label.tolist(),
            labels.first_shown.tolist(),
            strict=True,
        )
    )
    assert rows == [(0, 0, 1, 1), (1, 0, 1, -1), (3, 1, -1, -1)]
    assert labels.longer.tolist() == [-1, -1, 0, 1, 0, 0]
    assert labels.tasks.tolist() == [1, 1]


def test_a_rater_alone_on_a_prompt_is_still_judged_by_position_and_length() -> None:
    rng = np.random.default_rng(3)
    weights = np.array([[0.9, 0.1, 0.0, 0.0]] * 10 + [[0.1, 0.0, 0.9, 0.0]])
    labels, _ = model_labels(rng, weights, n_units=1500, per_unit=3)
    fit = fit_reliability(labels)
    assert fit.weights[10, FIRST_SHOWN] > 0.8
    assert reliability.label_truth_without_own(labels, fit).shape == (labels.n_labels,)


def only_labels(labels: PairLabels, keep: np.ndarray) -> PairLabels:
    """The labels ``keep`` selects (indices or a mask), every unit still counted."""
    return PairLabels(
        unit=labels.unit[keep],
        rater=labels.rater[keep],
        task=labels.task[keep],
        label=labels.label[keep],
        first_shown=labels.first_shown[keep],
        longer=labels.longer,
        n_raters=labels.n_raters,
        tasks=labels.tasks,
    )


@pytest.mark.parametrize(
    ("n_units", "n_raters", "per_unit"),
    [(40, 320, 300), (300, 4000, 3)],  # > 255 labels a unit; > 65,535 patterns
)
def test_the_compact_label_block_fits_as_the_labels_do(
    n_units: int, n_raters: int, per_unit: int
) -> None:
    rng = np.random.default_rng(n_units)
    labels = random_labels(rng, n_units, n_raters, per_unit)
    # Labels in no particular order, and some units without any label.
    keep = rng.permutation(np.flatnonzero(labels.unit % 7 != 3))
    labels = only_labels(labels, keep)
    block = reliability.label_block(labels)
    assert block.n_labels == labels.n_labels
    assert block.pattern.itemsize == (2 if n_raters * 18 <= 2**16 else 4)
    labelled_units = np.unique(labels.unit)
    assert block.units_by_count.sum() == len(labelled_units) == len(block.longer)
    assert block.units_by_count @ np.arange(len(block.units_by_count)) == labels.n_labels
    assert block.unlabelled_longer.sum() == labels.n_units - len(labelled_units)

    blocks = reliability.fit_reliability_blocks([block], n_raters)
    whole = reliability.fit_reliability(labels)

    assert blocks.iterations == whole.iterations
    np.testing.assert_allclose(blocks.weights, whole.weights, rtol=1e-9)
    assert blocks.rho == pytest.approx(whole.rho, rel=1e-9)
    plain_blocks = reliability.fit_reliability_blocks([block], n_raters, accelerate=False)
    plain_whole = reliability.fit_reliability(labels, accelerate=False)
    assert plain_blocks.iterations == plain_whole.iterations
    np.testing.assert_allclose(plain_blocks.weights, plain_whole.weights, rtol=1e-9)


def test_threads_and_chunks_do_not_change_the_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    labels, _ = model_labels(rng, crowd_weights(rng, 12), n_units=400, per_unit=3)
    labels = only_labels(labels, np.flatnonzero(labels.unit % 9 != 4))
    whole = reliability.fit_reliability(labels, threads=1)  # one chunk

    monkeypatch.setattr(label_blocks, "CHUNK_UNITS", 7)  # dozens of chunks
    assert len(label_blocks.split_into_chunks([reliability.label_block(labels)], 7)) > 40
    alone = reliability.fit_reliability(labels, threads=1)
    spread = reliability.fit_reliability(labels, threads=3)

    # The chunks' sums are added in the chunks' order whichever thread finishes first.
    np.testing.assert_array_equal(spread.weights, alone.weights)
    assert spread.rho == alone.rho
    assert spread.iterations == alone.iterations
    # Cut finer, the sums differ from one chunk's by rounding only.
    assert alone.iterations == whole.iterations
    np.testing.assert_allclose(alone.weights, whole.weights, rtol=1e-9)
    np.testing.assert_allclose(alone.unit_log_odds, whole.unit_log_odds, rtol=1e-9, atol=1e-12)


def crowd_weights(rng: np.random.Generator, n_raters: int) -> np.ndarray:
    """Weights of a crowd: mostly careful raters of varied competence, some taking a
    shortcut (random, first shown or longer) for most of their labels."""
    weights = np.zeros((n_raters, 4))
    competence = rng.uniform(0.5, 0.95, size=n_raters)
    kinds = rng.choice(4, size=n_raters, p=[0.8, 0.1, 0.05, 0.05])
    for rater, kind in enumerate(kinds.tolist()):
        weights[rater, CAREFUL] = competence[rater] if kind == CAREFUL else 0.3
        weights[rater, RANDOM if kind == CAREFUL else kind] += 1 - weights[rater, CAREFUL]
    return weights


@pytest.mark.parametrize("seed", range(4))
def test_the_accelerated_fit_is_the_fixed_point_of_plain_em_in_far_fewer_passes(
    seed: int,
) -> None:
    rng = np.random.default_rng(200 + seed)
    n_raters = int(rng.integers(15, 60))
    labels, _ = model_labels(
        rng, crowd_weights(rng, n_raters), n_units=int(rng.integers(800, 2500)), per_unit=3
    )
    converged_em = fit_reliability(labels, max_iterations=2000, tolerance=1e-10, accelerate=False)
    plain = fit_reliability(labels, accelerate=False)  # at most MAX_ITERATIONS passes
    plain_to_tolerance = fit_reliability(labels, max_iterations=2000, accelerate=False)
    accelerated = fit_reliability(labels)

    assert converged_em.converged and plain_to_tolerance.converged and accelerated.converged
    np.testing.assert_allclose(accelerated.weights, converged_em.weights, rtol=0, atol=1e-3)
    assert accelerated.rho == pytest.approx(converged_em.rho, abs=1e-3)
    # Plain EM given the accelerated fit's passes ends farther from the answer.
    same_passes = fit_reliability(
        labels, max_iterations=accelerated.iterations, tolerance=0.0, accelerate=False
    )
    assert (
        np.abs(same_passes.weights - converged_em.weights).max()
        > np.abs(accelerated.weights - converged_em.weights).max()
    )
    np.testing.assert_allclose(accelerated.unit_log_odds, converged_em.unit_log_odds, atol=1e-2)
    # The same stopping rule costs plain EM several times the passes over the labels.
    assert accelerated.iterations <= reliability.MAX_ITERATIONS
    assert 3 * accelerated.iterations < plain_to_tolerance.iterations
    assert objective(labels, accelerated.weights, accelerated.rho) >= objective(
        labels, plain.weights, plain.rho
    )


@pytest.mark.parametrize("seed", range(3))
def test_accepted_points_never_lower_the_objective(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    labels, _ = model_labels(rng, crowd_weights(rng, 12), n_units=300, per_unit=3)
    em = reliability._EMMap(
        *label_blocks.blocks_e_step([reliability.label_block(labels)], labels.n_raters, None)
    )
    accepted = list(
        em_acceleration.accepted_points(
            em,
            reliability._start(labels.n_raters),
            reliability.Parameters.from_vector,
            max_iterations=60,
        )
    )
    values = [point.value for point in accepted]
    # Each value is the objective at its point, as computed directly.
    for point in accepted[:: len(accepted) // 5]:
        assert point.value == pytest.approx(
            objective(labels, point.point.weights, point.point.rho), rel=1e-10
        )
    assert all(later >= earlier - 1e-9 for earlier, later in itertools.pairwise(values))
    assert values[-1] > values[0]
    assert em.passes == 60 and len(accepted) <= 60


@pytest.mark.parametrize("seed", range(4))
def test_the_objective_an_em_update_computes_is_the_objective(seed: int) -> None:
    rng = np.random.default_rng(400 + seed)
    labels = random_labels(rng, n_units=60, n_raters=5, per_unit=3)
    keep = np.flatnonzero(labels.unit % 5 != 2)  # some units without labels
    labels = only_labels(labels, keep)
    weights = rng.dirichlet(np.ones(4), size=5)
    rho = float(rng.uniform(0.1, 0.9))
    expected = objective(labels, weights, rho)

    whole_block = reliability.label_block(labels)
    em = reliability._EMMap(*label_blocks.blocks_e_step([whole_block], labels.n_raters, None))
    params = reliability.Parameters(weights=weights, rho=rho)
    _, scored = em.em_update_scored(params)
    assert scored == pytest.approx(expected, rel=1e-12)
    assert em.passes == 1

    # The same labels cut into blocks of whole units (units without labels included).
    cuts = [0, 17, 18, 41, 60]
    blocks = []
    for start, stop in itertools.pairwise(cuts):
        inside = (labels.unit >= start) & (labels.unit < stop)
        part = PairLabels(
            unit=labels.unit[inside] - start,
            rater=labels.rater[inside],
            task=labels.task[inside],
            label=labels.label[inside],
            first_shown=labels.first_shown[inside],
            longer=labels.longer[start:stop],
            n_raters=labels.n_raters,
            tasks=labels.tasks,
        )
        blocks.append(reliability.label_block(part))
    blocks_em = reliability._EMMap(*label_blocks.blocks_e_step(blocks, labels.n_raters, None))
    _, by_blocks = blocks_em.em_update_scored(params)
    assert by_blocks == pytest.approx(expected, rel=1e-12)
    # The update itself is the plain EM update, whichever way the labels are read.
    whole, parts = em.em_update(params), blocks_em.em_update(params)
    np.testing.assert_allclose(parts.weights, whole.weights, rtol=1e-12)
    assert parts.rho == pytest.approx(whole.rho, rel=1e-12)
