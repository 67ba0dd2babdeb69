"""Rankings made the way raters make them (lease, then submit), and an independent reference.

Shared by the agreement job, API, quality page and Celery worker tests.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
from django.utils import timezone

from config.celery import app as celery_app
from labeling import services as labeling_services
from labeling.models import Assignment, Project, Response
from rankings.models import Ranking
from rankings.rating.services import ranking_submit
from rankings.stats.tables import RankingTable, ranks_from_groups


@contextmanager
def eager_tasks() -> Iterator[None]:
    """Run Celery tasks in-process whatever CELERY_BROKER_URL says (CI sets a real broker)."""
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.task_eager_propagates
    conf.task_always_eager, conf.task_eager_propagates = True, True
    try:
        yield
    finally:
        conf.task_always_eager, conf.task_eager_propagates = saved


def noisy_ranking(
    assignment: Assignment, rng: random.Random, *, swap: float = 0.35, tie: float = 0.2
) -> list[list[int]]:
    """The import order (position 0 best) with random adjacent swaps and ties.

    Raters then agree often but not always, so every statistic lands strictly between its
    extremes.
    """
    by_position = list(
        Response.objects.filter(pk__in=assignment.shown_order)
        .order_by("position")
        .values_list("pk", flat=True)
    )
    for index in range(len(by_position) - 1):
        if rng.random() < swap:
            by_position[index], by_position[index + 1] = by_position[index + 1], by_position[index]
    groups: list[list[int]] = [[by_position[0]]]
    for response_id in by_position[1:]:
        if assignment.project.allow_ties and rng.random() < tie:
            groups[-1].append(response_id)
        else:
            groups.append([response_id])
    return groups


def rank_in_turns(project: Project, raters: Iterable, *, seed: int = 0) -> list[Ranking]:
    """Raters take turns leasing the next task and ranking it until the queue is empty."""
    rng = random.Random(seed)
    active = list(raters)
    stored: list[Ranking] = []
    while active:
        for rater in list(active):
            assignment = labeling_services.lease_next_assignment(project=project, rater=rater)
            if assignment is None:
                active.remove(rater)
                continue
            ranking, _ = ranking_submit(
                assignment_id=assignment.pk, rater=rater, ranking=noisy_ranking(assignment, rng)
            )
            stored.append(ranking)
    return stored


def rank_again_as_repeat(ranking: Ranking) -> Ranking:
    """The same rater ranks the same prompt again as a repeat, in the reverse order."""
    now = timezone.now()
    original = ranking.assignment
    repeat = Assignment.objects.create(
        project_id=ranking.project_id,
        prompt_id=ranking.prompt_id,
        rater=ranking.rater,
        shown_order=list(reversed(original.shown_order)),
        is_repeat=True,
        leased_at=now,
        expires_at=now + timedelta(minutes=10),
    )
    reversed_groups = [list(group) for group in reversed(ranking.groups)]
    stored, _ = ranking_submit(
        assignment_id=repeat.pk, rater=ranking.rater, ranking=reversed_groups
    )
    return stored


def reference_table(rankings: Iterable[Ranking]) -> tuple[RankingTable, list[int]]:
    """A RankingTable built straight from ranking objects, indices in order of appearance."""
    rankings = list(rankings)
    prompt_of: dict[int, int] = {}
    rater_of: dict[int, int] = {}
    slot_of: dict[int, int] = {}
    for response_id, position in Response.objects.filter(
        prompt_id__in={ranking.prompt_id for ranking in rankings}
    ).values_list("pk", "position"):
        slot_of[response_id] = position
    k_max = max(slot_of.values(), default=-1) + 1
    rows = []
    for ranking in rankings:
        prompt_of.setdefault(ranking.prompt_id, len(prompt_of))
        rater_of.setdefault(ranking.rater_id, len(rater_of))
        rows.append(ranks_from_groups(ranking.groups, slot_of, k_max))
    table = RankingTable(
        prompt_index=np.array([prompt_of[r.prompt_id] for r in rankings], dtype=np.int64),
        rater_index=np.array([rater_of[r.rater_id] for r in rankings], dtype=np.int64),
        ranks=np.vstack(rows) if rows else np.zeros((0, k_max)),
    )
    return table, list(rater_of)
