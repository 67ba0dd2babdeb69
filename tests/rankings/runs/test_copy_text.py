"""COPY text of prompt rows built with numpy (``runs.copy_text``): each piece against Python's
own formatting on random values, and whole blocks against the rows the portable path
inserts, parsed back line by line."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from rankings.runs import copy_text, storage
from rankings.runs.data import AgreementData
from rankings.stats.agreement import PromptAgreementArrays
from rankings.stats.consensus import PromptConsensus


def text_rows(matrix: copy_text.ByteMatrix) -> list[str]:
    rows = copy_text.Rows(len(matrix))
    rows.add(matrix)
    rows.add_text("\n")
    return rows.text().decode().splitlines()


@pytest.mark.parametrize("seed", range(5))
def test_decimal_prints_what_str_prints(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [[0, 1, 9, 10, 99, 100], rng.integers(0, 10 ** rng.integers(1, 16, 500), dtype=np.int64)]
    )
    rng.shuffle(values)

    assert text_rows(copy_text.decimal(values)) == [str(value) for value in values.tolist()]
    assert text_rows(copy_text.decimal(values % 10_000, width=4)) == [
        f"{value:04d}" for value in (values % 10_000).tolist()
    ]


def test_decimal_refuses_negative_numbers():
    with pytest.raises(ValueError, match="non-negative"):
        copy_text.decimal(np.array([3, -1]))


@pytest.mark.parametrize("seed", range(5))
def test_fixed_point_prints_what_percent_f_prints(seed):
    rng = np.random.default_rng(seed)
    scaled = np.concatenate(
        [[0, 1, -1, 9_999, -10_000, 10_001], rng.integers(-(10**9), 10**9, 2000, dtype=np.int64)]
    )

    assert text_rows(copy_text.fixed_point(scaled, 4)) == [
        "%.4f" % (value / 10**4) for value in scaled.tolist()
    ]


def test_distinct_values_are_formatted_once_each():
    calls: list[float] = []

    def text_of(value: float) -> str:
        calls.append(value)
        return "\\N" if value != value else repr(value)

    values = np.array([0.5, np.nan, 1 / 3, 0.5, np.nan, 1 / 3, 1.0])
    assert text_rows(copy_text.by_distinct_values(values, text_of)) == [
        "0.5", "\\N", repr(1 / 3), "0.5", "\\N", repr(1 / 3), "1.0",
    ]  # fmt: skip
    assert len(calls) == 4


def random_block(rng: np.random.Generator, n_prompts: int, k_max: int) -> dict[str, Any]:
    """A block of consensus results with every shape a run meets: ties, absent slots, whole
    prompts without consensus, ids of any length, negative and nearly equal scores, NaN
    agreement."""
    levels = rng.integers(1, k_max + 1, (n_prompts, k_max)).astype(float)
    levels[rng.random((n_prompts, k_max)) < 0.15] = np.nan
    levels[rng.random(n_prompts) < 0.05] = np.nan
    strength = rng.normal(0, 2, (n_prompts, k_max))
    near = rng.random((n_prompts, k_max)) < 0.2  # equal but for rounding to 4 decimals
    strength[near] = np.round(strength[near], 2) + rng.uniform(-3e-5, 3e-5, near.sum())
    strength[np.isnan(levels)] = np.nan
    agreement = rng.integers(0, 7, n_prompts) / 6
    agreement[rng.random(n_prompts) < 0.1] = np.nan
    digits = rng.integers(1, 13, (n_prompts, 1))
    response_ids = rng.integers(0, 10**digits, (n_prompts, k_max), dtype=np.int64)
    return {
        "data": cast(
            "AgreementData",
            SimpleNamespace(
                prompt_ids=rng.integers(1, 10**10, n_prompts, dtype=np.int64),
                response_ids=response_ids,
            ),
        ),
        "prompts": PromptAgreementArrays(
            n_rankings=rng.integers(0, 30, n_prompts),
            agreement=agreement,
            n_pairs=rng.integers(0, 30, n_prompts),
        ),
        "result": PromptConsensus(
            levels=levels,
            strength=strength,
            agreement=agreement,
            n_rankings=rng.integers(0, 30, n_prompts),
            method="bradley_terry",
        ),
    }


def parsed_copy_line(line: str) -> tuple[Any, ...]:
    run, prompt, n_rankings, agreement, consensus, scores, method = line.split("\t")
    return (
        int(run),
        int(prompt),
        int(n_rankings),
        None if agreement == "\\N" else float(agreement),
        json.loads(consensus),
        list(json.loads(scores).items()),
        method,
    )


@pytest.mark.parametrize(("seed", "k_max"), [(0, 1), (1, 2), (2, 4), (3, 4), (4, 6)])
def test_copy_text_holds_the_rows_the_portable_path_inserts(seed, k_max):
    block = random_block(np.random.default_rng(seed), n_prompts=3000, k_max=k_max)
    start, stop = 700, 2600

    data, result = block["data"], block["result"]
    result_of_range = PromptConsensus(
        levels=result.levels[start:stop],
        strength=result.strength[start:stop],
        agreement=result.agreement[start:stop],
        n_rankings=result.n_rankings[start:stop],
        method=result.method,
    )

    text = storage._prompt_agreement_copy_text(
        run_id=42, data=data, prompts=block["prompts"], result=result_of_range,
        start=start, stop=stop,
    )  # fmt: skip

    data_of_range = cast(
        "AgreementData",
        SimpleNamespace(
            prompt_ids=data.prompt_ids[start:stop], response_ids=data.response_ids[start:stop]
        ),
    )
    prompts_of_range = PromptAgreementArrays(
        n_rankings=block["prompts"].n_rankings[start:stop],
        agreement=block["prompts"].agreement[start:stop],
        n_pairs=block["prompts"].n_pairs[start:stop],
    )
    expected = [
        (run, prompt, n, agreement, groups, list(scores.items()), method)
        for run, prompt, n, agreement, groups, scores, method in storage.prompt_agreement_rows(
            run_id=42, data=data_of_range, prompts=prompts_of_range, result=result_of_range
        )
    ]
    lines = text.decode().split("\n")
    assert lines[-1] == ""  # every row ends its line
    assert [parsed_copy_line(line) for line in lines[:-1]] == expected
    assert any(row[4] == [] for row in expected) and any(row[3] is None for row in expected)


def test_prompts_without_responses_have_empty_consensus():
    block = random_block(np.random.default_rng(7), n_prompts=3, k_max=1)
    block["data"].response_ids = np.zeros((3, 0), dtype=np.int64)
    block["result"] = replace(block["result"], levels=np.zeros((3, 0)), strength=np.zeros((3, 0)))

    text = storage._prompt_agreement_copy_text(run_id=1, start=0, stop=3, **block)

    assert [line.split("\t")[4:6] for line in text.decode().splitlines()] == [["[]", "{}"]] * 3


def test_an_empty_block_is_no_text():
    block = random_block(np.random.default_rng(9), n_prompts=0, k_max=4)

    assert storage._prompt_agreement_copy_text(run_id=1, start=0, stop=0, **block) == b""
