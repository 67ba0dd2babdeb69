"""No statistic depends on an arbitrary order: not the order in which a prompt's responses
were imported, nor (for everything but the position statistics) the order they were shown.

The same crowd is built twice: once as generated, once with every prompt's responses
relabelled by a random permutation (rankings, shown orders, gold and lengths relabelled
with them). Every project and rater statistic must come out the same.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pytest

from rankings.stats.agreement import (
    chance_agreement,
    prompt_pairwise_agreement,
    rater_leave_one_out_agreement,
)
from rankings.stats.consensus import BORDA, BRADLEY_TERRY, prompt_consensus
from rankings.stats.project import project_agreement
from rankings.stats.raters import rater_quality
from tests.rankings.references import fleiss_kappa_pairs
from tests.rankings.stats.test_rater_statistics import Crowd, Record, arrays, random_crowd

SEEDS = [3, 17, 29, 41]
# Statistics that are about the shown order itself.
POSITION_STATISTICS = (
    "first_shown_win_rate",
    "position_p_value",
    "position_pairs",
    "straight_lining_rate",
    "straight_lined",
)


def relabelled(crowd: Crowd, seed: int) -> tuple[Crowd, dict[int, list[int]]]:
    """The crowd with each prompt's slots permuted: slot s becomes ``new_slot[prompt][s]``."""
    rng = np.random.default_rng(seed)
    new_slot = {p: [int(s) for s in rng.permutation(k)] for p, k in crowd.sizes.items()}

    def moved(prompt: int, groups: list[list[int]]) -> list[list[int]]:
        return [[new_slot[prompt][slot] for slot in group] for group in groups]

    def reordered(prompt: int, values: list[int]) -> list[int]:
        out = [0] * len(values)
        for slot, value in enumerate(values):
            out[new_slot[prompt][slot]] = value
        return out

    records = [
        replace(
            record,
            groups=moved(record.prompt, record.groups),
            shown=[new_slot[record.prompt][slot] for slot in record.shown],
        )
        for record in crowd.records
    ]
    permuted = Crowd(
        records=records,
        sizes=dict(crowd.sizes),
        lengths={p: reordered(p, values) for p, values in crowd.lengths.items()},
        gold={p: moved(p, groups) for p, groups in crowd.gold.items()},
    )
    return permuted, new_slot


def reshown(crowd: Crowd, seed: int) -> Crowd:
    """The same judgements, shown in other random orders."""
    rng = np.random.default_rng(seed)
    records = [
        replace(record, shown=[int(s) for s in rng.permutation(crowd.sizes[record.prompt])])
        for record in crowd.records
    ]
    return replace(crowd, records=records)


def rater_rows(crowd: Crowd, leave_out: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    table, context = arrays(crowd)
    rows = []
    for quality in rater_quality(table, context):
        row = asdict(quality)
        for name in leave_out:
            row.pop(name)
        rows.append(row)
    return rows


def close(a: Any, b: Any) -> bool:
    """Equal up to float rounding (sums taken in another order), None and NaN included."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True))
    return bool(a == b)


@pytest.mark.parametrize("seed", SEEDS)
def test_project_statistics_do_not_depend_on_the_import_order(seed: int) -> None:
    crowd = random_crowd(seed, n_prompts=40)
    permuted, _ = relabelled(crowd, seed + 1000)
    original, moved = arrays(crowd)[0], arrays(permuted)[0]

    before, after = project_agreement(original), project_agreement(moved)

    assert close(before, after), {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert before["kappa"] is not None
    assert close(chance_agreement(original), chance_agreement(moved))
    assert close(fleiss_kappa_pairs(original).value, fleiss_kappa_pairs(moved).value)
    assert close(
        prompt_pairwise_agreement(original).agreement.tolist(),
        prompt_pairwise_agreement(moved).agreement.tolist(),
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_rater_statistics_do_not_depend_on_the_import_order(seed: int) -> None:
    crowd = random_crowd(seed, n_prompts=40)
    permuted, _ = relabelled(crowd, seed + 2000)

    assert close(rater_rows(crowd), rater_rows(permuted))
    before = rater_leave_one_out_agreement(arrays(crowd)[0])
    after = rater_leave_one_out_agreement(arrays(permuted)[0])
    assert close([asdict(r) for r in before], [asdict(r) for r in after])


@pytest.mark.parametrize("method", [BRADLEY_TERRY, BORDA])
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_the_consensus_follows_the_responses_not_their_slots(seed: int, method: str) -> None:
    crowd = random_crowd(seed, n_prompts=25)
    permuted, new_slot = relabelled(crowd, seed + 3000)
    table, moved = arrays(crowd)[0], arrays(permuted)[0]
    weights = np.ones(table.n_rankings)

    before = prompt_consensus(table, weights, method)
    after = prompt_consensus(moved, weights, method)

    for prompt, slots in new_slot.items():
        for slot, target in enumerate(slots):
            assert close(float(before.levels[prompt, slot]), float(after.levels[prompt, target]))
            assert close(
                float(before.strength[prompt, slot]), float(after.strength[prompt, target])
            )
    assert close(before.agreement.tolist(), after.agreement.tolist())


@pytest.mark.parametrize("seed", SEEDS)
def test_only_the_position_statistics_depend_on_the_shown_order(seed: int) -> None:
    crowd = random_crowd(seed, n_prompts=40)
    shown_again = reshown(crowd, seed + 4000)

    assert close(project_agreement(arrays(crowd)[0]), project_agreement(arrays(shown_again)[0]))
    assert close(
        rater_rows(crowd, leave_out=POSITION_STATISTICS),
        rater_rows(shown_again, leave_out=POSITION_STATISTICS),
    )
    # …and those do move, so the comparison above is not vacuous.
    assert not close(rater_rows(crowd), rater_rows(shown_again))


def test_kappa_of_best_first_and_shuffled_imports_is_the_same() -> None:
    """The case that exposed the orientation bug: every prompt imported best-first (so raters'
    labels are mostly "first better") against the same prompts in random order."""
    rng = np.random.default_rng(5)
    records = []
    for prompt in range(60):
        for rater in range(5):
            order = list(range(4))
            for i in range(3):  # a careful rater with some adjacent swaps
                if rng.random() < 0.25:
                    order[i], order[i + 1] = order[i + 1], order[i]
            groups = [[slot] for slot in order]
            records.append(Record(prompt, rater, groups, list(range(4)), 30.0))
    best_first = Crowd(records, {p: 4 for p in range(60)}, {p: [10, 11, 12, 13] for p in range(60)})
    shuffled, _ = relabelled(best_first, 6)

    kappa_best_first = project_agreement(arrays(best_first)[0])["kappa"]
    kappa_shuffled = project_agreement(arrays(shuffled)[0])["kappa"]

    assert kappa_best_first == pytest.approx(kappa_shuffled, abs=1e-12)
    assert kappa_best_first > 0.2  # careful raters agree well beyond chance
