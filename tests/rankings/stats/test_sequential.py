"""The sequential test (rankings.stats.sequential) on labels drawn from the reliability
model itself: raters exactly at the careful hypothesis' edge are ever flagged at most at the
promised rate (Ville's inequality), and the alternatives are found."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rankings.stats.reliability import PairLabels, fit_reliability
from rankings.stats.sequential import (
    CAREFUL_SHARE,
    NOISY_SHARE,
    rater_reliability,
    typical_competence,
)
from tests.rankings.stats.test_reliability import only_labels

PAIRS = 6  # K = 4
FALSE_FLAG_RATE = 0.01


def model_tasks(
    rng: np.random.Generator,
    competence: np.ndarray,
    tasks_per_rater: int,
    overlap: int = 4,
    shortcut: dict[int, str] | None = None,
) -> PairLabels:
    """Each task: one rater labels the six pairs of a prompt, each pair carefully (the
    truth) with probability ``competence``, else by a coin; raters in ``shortcut`` take
    half their tasks by their shortcut (``"shown"``: every label picks the first shown)."""
    n_raters = len(competence)
    n_prompts = n_raters * tasks_per_rater // overlap
    shortcut = shortcut or {}
    units, raters, tasks, values, shown_all = [], [], [], [], []
    truth = rng.choice([-1, 1], size=(n_prompts, PAIRS))
    done = np.zeros(n_raters)
    task = 0
    for prompt in range(n_prompts):
        chosen = np.lexsort((rng.random(n_raters), done))[:overlap]
        for rater in chosen:
            shown = rng.choice([-1, 1], size=PAIRS)
            careful = rng.random(PAIRS) < competence[rater]
            label = np.where(careful, truth[prompt], rng.choice([-1, 1], size=PAIRS))
            if shortcut.get(int(rater)) == "shown" and rng.random() < 0.5:
                label = shown
            units.append(prompt * PAIRS + np.arange(PAIRS))
            raters.append(np.full(PAIRS, rater))
            tasks.append(np.full(PAIRS, task))
            values.append(label)
            shown_all.append(shown)
            done[rater] += 1
            task += 1
    rater_of_label = np.concatenate(raters).astype(np.int64)
    task_of_label = np.concatenate(tasks).astype(np.int64)
    return PairLabels(
        unit=np.concatenate(units).astype(np.int64),
        rater=rater_of_label,
        task=task_of_label,
        label=np.concatenate(values).astype(np.int8),
        first_shown=np.concatenate(shown_all).astype(np.int8),
        longer=np.zeros(n_prompts * PAIRS, dtype=np.int8),
        n_raters=n_raters,
        tasks=np.bincount(rater_of_label[::PAIRS], minlength=n_raters).astype(np.int64),
    )


def until(labels: PairLabels, last_task: int) -> PairLabels:
    keep = labels.task < last_task
    tasks = np.bincount(labels.rater[keep][::PAIRS], minlength=labels.n_raters)
    return dataclasses.replace(only_labels(labels, keep), tasks=tasks)


def test_raters_at_the_edge_of_careful_are_ever_flagged_at_most_one_in_a_hundred() -> None:
    bar = math.log(1 / FALSE_FLAG_RATE)
    typical, edge_raters, ever = 0.9, 0, 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        # 20 typical raters set the project's typical competence; 15 sit right at the edge.
        competence = np.array([typical] * 20 + [CAREFUL_SHARE * typical] * 15)
        labels = model_tasks(rng, competence, tasks_per_rater=120)
        flagged: set[int] = set()
        for last_task in range(len(competence) * 10, int(labels.task.max()) + 2, 175):
            so_far = until(labels, last_task)
            for row in rater_reliability(so_far, fit_reliability(so_far)):
                if row.reliability_evidence is not None and row.reliability_evidence >= bar:
                    flagged.add(row.rater_index)
        ever += len(flagged - set(range(20)))
        edge_raters += 15
        assert not flagged & set(range(20))
    print(f"\nraters at the edge ever flagged: {ever} of {edge_raters}")
    assert ever / edge_raters <= FALSE_FLAG_RATE * 2  # the bound, with sampling room


@pytest.mark.parametrize("seed", range(3))
def test_noisy_and_shortcut_raters_are_found(seed: int) -> None:
    rng = np.random.default_rng(50 + seed)
    typical = 0.9
    competence = np.array([typical] * 20 + [NOISY_SHARE * typical] * 3 + [typical] * 3)
    labels = model_tasks(rng, competence, tasks_per_rater=80, shortcut={23: "shown", 24: "shown"})
    fit = fit_reliability(labels)
    rows = rater_reliability(labels, fit)
    assert typical_competence(fit.competence, labels.per_rater()) == pytest.approx(
        typical, abs=0.05
    )
    bar = math.log(1 / FALSE_FLAG_RATE)
    evidence = [row.reliability_evidence for row in rows]
    assert all(value is not None and value < -bar for value in evidence[:20])
    assert all(value is not None and value >= bar for value in evidence[20:25])
    for row in rows:
        assert row.competence is not None and row.evidence_per_task is not None
        assert row.reliability_evidence is not None
        assert row.competence_low is not None and row.competence_high is not None
        assert row.competence_low <= row.competence <= row.competence_high
        assert row.reliability_tasks == 80
        assert (row.evidence_per_task > 0) == (row.reliability_evidence > 0)
