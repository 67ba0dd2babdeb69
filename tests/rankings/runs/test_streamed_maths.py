"""A run computed block by block of prompts (``runs.streamed``) against the run with every
ranking in memory (``runs.maths.agreement_maths``), on random crowds: the same project
summary (intervals included), rater statistics, reliability fit and prompt rows, however
the prompts are split into blocks and whichever way the blocks come."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from rankings.runs import maths, streamed
from rankings.runs.data import AgreementData
from rankings.stats import bootstrap, reliability
from rankings.stats.registry import rater_values
from rankings.stats.tables import RankingTable
from tests.rankings.crowd import simulate, subtle_crowd


def crowd_with_everything(seed: int, prompts: int = 90) -> AgreementData:
    """A simulated crowd with what a real project has besides: repeats (a rater's prompt
    again, ranked afresh), gold prompts, untimed rankings, prompts of three responses and
    a rater who ranked a single prompt."""
    project = simulate(subtle_crowd(careful_raters=8, seed=seed), prompts=prompts, seed=seed)
    data = project.data
    rng = np.random.default_rng(seed)
    table, context = data.table, data.context
    assert context.seconds is not None and context.shown_slots is not None
    assert context.response_length is not None
    n = table.n_rankings
    ranks = table.ranks.copy()
    short = rng.choice(prompts, size=prompts // 6, replace=False)
    in_short = np.isin(table.prompt_index, short)
    ranks[in_short, 3] = np.nan
    # Dense levels again once slot 3 is gone.
    ranks[in_short] = np.array([_dense(row) for row in ranks[in_short]]).reshape(-1, ranks.shape[1])
    repeats = rng.choice(n, size=n // 12, replace=False)
    repeat_ranks = np.array([_dense(rng.permutation(row)) for row in ranks[repeats]])
    repeat_ranks = np.where(np.isnan(ranks[repeats]), np.nan, repeat_ranks)
    lonely_rater = table.n_raters
    prompt_index = np.concatenate([table.prompt_index, table.prompt_index[repeats], [0]])
    rater_index = np.concatenate([table.rater_index, table.rater_index[repeats], [lonely_rater]])
    all_ranks = np.vstack([ranks, repeat_ranks, ranks[:1]])
    seconds = np.concatenate([context.seconds, context.seconds[repeats], [12.5]])
    seconds[rng.choice(len(seconds), size=len(seconds) // 10, replace=False)] = np.nan
    shown = np.vstack([context.shown_slots, context.shown_slots[repeats], context.shown_slots[:1]])
    length = context.response_length.copy()
    length[short, 3] = np.nan
    gold = np.full_like(length, np.nan)
    gold_prompts = rng.choice(prompts, size=6, replace=False)
    gold[gold_prompts] = np.array([_dense(row) for row in length[gold_prompts]])
    total = len(prompt_index)
    return AgreementData(
        table=RankingTable(
            prompt_index=prompt_index,
            rater_index=rater_index,
            ranks=all_ranks,
            n_prompts=prompts,
            n_raters=lonely_rater + 1,
        ),
        context=replace(
            context,
            is_repeat=(np.arange(total) >= n) & (np.arange(total) < total - 1),
            shown_slots=shown,
            seconds=seconds,
            gold_ranks=gold,
            response_length=length,
        ),
        rater_user_ids=list(range(100, 100 + lonely_rater + 1)),
        prompt_ids=data.prompt_ids,
        response_ids=data.response_ids,
        ranking_ids=np.arange(total, dtype=np.int64),
    )


def _dense(row: np.ndarray) -> np.ndarray:
    """Dense levels 1, 2, ... of a row's values, higher value first; NaN stays NaN."""
    present = ~np.isnan(row)
    levels = np.full(len(row), np.nan)
    distinct = np.unique(-row[present])
    levels[present] = np.searchsorted(distinct, -row[present]) + 1
    return levels


def blocks_of(data: AgreementData, bounds: list[int]) -> list[AgreementData]:
    return [streamed.data_block(data, start, stop) for start, stop in itertools.pairwise(bounds)]


def assert_close(value, expected, what: str) -> None:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        assert value is None or (isinstance(value, float) and math.isnan(value)), what
    elif isinstance(expected, list):
        assert value == pytest.approx(expected, rel=1e-7, abs=1e-9), what
    else:
        assert value == pytest.approx(expected, rel=1e-7, abs=1e-9), what


def assert_same_run(data: AgreementData, blocks: list[AgreementData]) -> None:
    expected = maths.agreement_maths(data)
    result, rows = streamed.streamed_maths(blocks)

    assert result.summary.keys() == expected.summary.keys()
    for key, value in expected.summary.items():
        assert_close(result.summary[key], value, key)
    assert len(result.raters) == data.table.n_raters
    for rater, (got, want) in enumerate(zip(result.raters, expected.rater_results(), strict=True)):
        got_values, want_values = rater_values(got), rater_values(want)
        for name, value in want_values.items():
            assert_close(got_values[name], value, f"rater {rater}: {name}")
    prompts = np.concatenate([row.prompts.agreement for row in rows])
    np.testing.assert_allclose(prompts, expected.prompts.agreement, rtol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(
        np.concatenate([row.prompts.n_rankings for row in rows]), expected.prompts.n_rankings
    )
    levels = np.vstack([row.consensus.levels for row in rows])
    np.testing.assert_array_equal(levels, expected.consensus.levels)
    strength = np.vstack([row.consensus.strength for row in rows])
    np.testing.assert_allclose(strength, expected.consensus.strength, rtol=1e-6, atol=1e-8)
    agreement = np.concatenate([row.consensus.agreement for row in rows])
    np.testing.assert_allclose(agreement, expected.consensus.agreement, rtol=1e-7, equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blocks_of_prompts_give_the_run_of_all_rankings_in_memory(seed):
    data = crowd_with_everything(seed)
    rng = np.random.default_rng(seed)
    cuts = sorted(rng.choice(np.arange(1, data.table.n_prompts), size=4, replace=False).tolist())
    assert_same_run(data, blocks_of(data, [0, *cuts, data.table.n_prompts]))


def test_one_block_and_one_block_per_prompt_give_the_same_run():
    data = crowd_with_everything(3, prompts=40)
    assert_same_run(data, blocks_of(data, [0, data.table.n_prompts]))
    assert_same_run(data, blocks_of(data, list(range(data.table.n_prompts + 1))))


def test_the_order_of_the_blocks_does_not_matter():
    data = crowd_with_everything(4, prompts=60)
    blocks = blocks_of(data, [0, 20, 35, 60])
    forward, _ = streamed.streamed_maths(blocks)
    backward, _ = streamed.streamed_maths(blocks[::-1])
    for key, value in forward.summary.items():
        assert_close(backward.summary[key], value, key)
    for got, want in zip(backward.raters, forward.raters, strict=True):
        for name, value in rater_values(want).items():
            assert_close(rater_values(got)[name], value, name)


def test_the_fit_over_blocks_is_the_fit_over_all_labels():
    data = crowd_with_everything(5)
    labels = reliability.pair_labels(data.table, data.context)
    whole = reliability.fit_reliability(labels)
    blocks = [
        reliability.label_block(reliability.pair_labels(block.table, block.context))
        for block in blocks_of(data, [0, 30, 31, 90])
    ]
    parts = reliability.fit_reliability_blocks(blocks, data.table.n_raters)
    assert parts.iterations == whole.iterations
    np.testing.assert_allclose(parts.weights, whole.weights, rtol=1e-9)
    assert parts.rho == pytest.approx(whole.rho, rel=1e-9)


def test_prompt_types_merge_to_the_types_of_all_prompts():
    data = crowd_with_everything(6)
    whole = streamed.first_pass(data)[0].project.types
    parts = [
        streamed.first_pass(block)[0].project.types for block in blocks_of(data, [0, 10, 50, 90])
    ]
    merged = bootstrap.merge_prompt_types(parts)
    np.testing.assert_array_equal(merged.rows, whole.rows)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.totals, whole.totals)
    # Far fewer kinds of prompts than prompts: what keeps the bootstrap's memory small.
    assert whole.n_prompts == 90 and len(whole.rows) < whole.n_prompts


def test_a_block_read_alone_is_placed_among_the_runs_raters_and_slots():
    data = crowd_with_everything(7, prompts=30)
    block = streamed.data_block(data, 10, 20)
    context = block.context
    assert context.shown_slots is not None and context.gold_ranks is not None
    assert context.response_length is not None
    present = np.unique(block.table.rater_index)
    alone = AgreementData(
        table=RankingTable(
            prompt_index=block.table.prompt_index,
            rater_index=np.searchsorted(present, block.table.rater_index),
            ranks=block.table.ranks[:, :3],
            n_prompts=block.table.n_prompts,
        ),
        context=replace(
            block.context,
            shown_slots=context.shown_slots[:, :3],
            gold_ranks=context.gold_ranks[:, :3],
            response_length=context.response_length[:, :3],
        ),
        rater_user_ids=[data.rater_user_ids[index] for index in present.tolist()],
        prompt_ids=block.prompt_ids,
        response_ids=block.response_ids[:, :3],
        ranking_ids=block.ranking_ids,
    )
    placed = streamed.in_scope(alone, np.asarray(data.rater_user_ids), 4)
    np.testing.assert_array_equal(placed.table.rater_index, block.table.rater_index)
    assert placed.table.k_max == 4 and np.isnan(placed.table.ranks[:, 3]).all()
    assert placed.table.n_raters == data.table.n_raters
    with pytest.raises(ValueError, match="raters the run does not know"):
        streamed.in_scope(alone, np.asarray(data.rater_user_ids[1:]), 4)
