"""Subtle bad raters against the flag rules, on simulated crowds run through the agreement
run's maths (no database): what a run would store, judged by the rules with default
settings. Precision and recall are printed per seed (pytest -s).

The crowd (``tests.rankings.crowd.subtle_crowd``): 24 careful raters whose perception noise
ranges over ``CAREFUL_NOISE``, and ten subtle ones: three who click at random half the time,
two who keep the shown order 70% of the time, two who rank longest first 70% of the time, and
three who read carefully but rush (noise 1.5, 0.35 of the careful raters' time). 240 prompts
of four responses, overlap 4: about 28 tasks per rater.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rankings.quality import flags
from rankings.quality.decisions import reliability_decision
from rankings.quality.thresholds import rules_from_settings
from rankings.runs import maths
from rankings.stats.registry import UNRELIABLE, rater_values
from tests.rankings.crowd import SimulatedProject, simulate, subtle_crowd

SEEDS = range(10)
PROMPTS = 240
LONG_LIFE_SEEDS = range(4)
LONG_LIFE_PROMPTS = 1200  # 30 careful raters, overlap 4: 160 tasks each
CHECK_EVERY = 100  # prompts: the project runs an agreement run this often
RULES = rules_from_settings({})


def judged(project: SimulatedProject) -> list[tuple[flags.RaterEvidence, set[str]]]:
    """Every rater's stored statistics and the flags the rules give them."""
    run = maths.agreement_maths(project.data)
    raters = [flags.RaterEvidence(**rater_values(result)) for result in run.rater_results()]
    context = flags.project_context(raters, RULES)
    return [
        (rater, {code for code, _ in flags.rater_flags(rater, RULES, context)}) for rater in raters
    ]


def test_subtle_bad_raters_are_flagged_and_careful_ones_are_not() -> None:
    caught: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    true_positives = false_positives = bad_total = 0
    print(f"\n{'seed':>4} {'flagged':>8} {'bad':>4} {'careful flagged':>16}")
    for seed in SEEDS:
        project = simulate(subtle_crowd(seed=seed), prompts=PROMPTS, seed=seed)
        assert 25 <= np.mean(project.rankings_per_rater) <= 30
        flagged = set()
        for index, (_, codes) in enumerate(judged(project)):
            kind = project.behaviours[index].kind
            seen[kind] += 1
            if codes:
                flagged.add(index)
                caught[kind] += 1
        true_positives += len(flagged & project.bad)
        false_positives += len(flagged - project.bad)
        bad_total += len(project.bad)
        print(f"{seed:>4} {len(flagged):>8} {len(project.bad):>4} {len(flagged - project.bad):>16}")
    precision = true_positives / max(true_positives + false_positives, 1)
    recall = true_positives / bad_total
    for kind in seen:
        print(f"  {kind:<18} flagged {caught[kind]:>3} of {seen[kind]}")
    print(f"precision {precision:.3f}, recall {recall:.3f} over seeds {list(SEEDS)}")
    assert recall >= 0.9
    assert precision >= 0.95
    # Each kind of subtle rater is caught most of the time, not only the blatant ones.
    for kind in ("half_random", "first_shown_70", "longest_first_70", "noisy_fast"):
        assert caught[kind] / seen[kind] >= 0.7, kind


def test_the_sequential_test_alone_finds_what_the_old_rules_miss() -> None:
    only_unreliable = 0
    for seed in SEEDS[:5]:
        project = simulate(subtle_crowd(seed=seed), prompts=PROMPTS, seed=seed)
        for index, (_, codes) in enumerate(judged(project)):
            if index in project.bad and codes == {UNRELIABLE}:
                only_unreliable += 1
    assert only_unreliable >= 10


@pytest.mark.parametrize("seed", range(5))
def test_a_careful_only_crowd_flags_no_one(seed: int) -> None:
    project = simulate(subtle_crowd(subtle=False, seed=seed), prompts=PROMPTS, seed=seed)
    results = judged(project)
    assert all(codes == set() for _, codes in results)
    # Most careful raters are already known to be careful after about 28 tasks.
    decided = [reliability_decision(rater, RULES).state for rater, _ in results]
    assert decided.count("careful") >= 0.8 * len(decided)
    assert "flagged" not in decided


def test_careful_raters_are_almost_never_flagged_over_a_long_project() -> None:
    """Runs every ``CHECK_EVERY`` prompts while careful raters keep working: the share ever
    flagged by the sequential test stays within its 1 in 100 false-flag rate."""
    ever, raters = 0, 0
    for seed in LONG_LIFE_SEEDS:
        crowd = subtle_crowd(careful_raters=30, subtle=False, seed=1000 + seed)
        project = simulate(crowd, prompts=LONG_LIFE_PROMPTS, seed=1000 + seed)
        flagged: set[int] = set()
        for stop in range(CHECK_EVERY, LONG_LIFE_PROMPTS + 1, CHECK_EVERY):
            rows = project.data.table.prompt_index < stop
            so_far = SimulatedProject(
                data=project.data.__class__(
                    table=project.data.table.take(rows),
                    context=project.data.context.take(rows),
                    rater_user_ids=project.data.rater_user_ids,
                    prompt_ids=project.data.prompt_ids,
                    response_ids=project.data.response_ids,
                    ranking_ids=project.data.ranking_ids[rows],
                ),
                behaviours=crowd,
            )
            for index, (_, codes) in enumerate(judged(so_far)):
                if UNRELIABLE in codes:
                    flagged.add(index)
        ever += len(flagged)
        raters += len(crowd)
    print(f"\ncareful raters ever flagged: {ever} of {raters}")
    assert ever / raters <= 0.01
