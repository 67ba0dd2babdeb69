"""The queue scan starts near the rater's furthest prompt: a rater's history never slows their
next task, what is left behind is still served, and the overlap holds on the write path."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from core import db as database
from labeling import services
from labeling.models import Assignment, AssignmentStatus, Membership, Prompt
from labeling.services import leases, queue_sql
from tests.helpers import sample_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(project) -> list[Prompt]:
    """60 prompts, overlap 3: what one rater finishes stays open, waiting for others."""
    project.overlap, project.gold_rate, project.repeat_rate = 3, 0.0, 0.0
    project.save()
    services.prompts_import(project=project, raw=json.dumps(sample_records(60, responses=2)))
    return list(Prompt.objects.filter(project=project).order_by("id"))


def give_history(project, rater, prompts, status=AssignmentStatus.SUBMITTED) -> None:
    """The rater finished these prompts (they stay open: the overlap wants others too), and
    their frontier is the furthest of them, as the queue leaves it."""
    now = timezone.now()
    Membership.objects.filter(project=project, user=rater).update(
        queue_frontier=max((prompt.pk for prompt in prompts), default=0)
    )
    Assignment.objects.bulk_create(
        Assignment(
            project=project,
            prompt=prompt,
            rater=rater,
            status=status,
            shown_order=[],
            leased_at=now - timedelta(minutes=5),
            expires_at=now + timedelta(minutes=5),
            finished_at=now - timedelta(minutes=1),
        )
        for prompt in prompts
    )


def test_the_scan_starts_near_the_raters_furthest_prompt(queue, project, rater, monkeypatch):
    monkeypatch.setattr(leases, "LOOK_BEHIND_PROMPTS", 0)
    give_history(project, rater, queue[10:40])  # prompts 0 to 9 are open and not done by them
    assignment = services.lease_next_assignment(project=project, rater=rater)
    assert assignment is not None
    assert assignment.prompt_id == queue[40].pk


def test_what_is_left_far_behind_is_served_once_nothing_is_ahead(
    queue, project, rater, monkeypatch
):
    monkeypatch.setattr(leases, "LOOK_BEHIND_PROMPTS", 0)
    give_history(project, rater, queue[10:])
    assignment = services.lease_next_assignment(project=project, rater=rater)
    assert assignment is not None
    assert assignment.prompt_id == queue[0].pk


def test_a_prompt_freed_just_behind_the_rater_comes_before_the_ones_ahead(
    queue, project, rater, rater2
):
    project.overlap = 1
    project.save()
    give_history(project, rater, queue[:5] + queue[6:20])
    # rater2 held prompt 5 and walked away: the lease ran out, the prompt is free again.
    gone = timezone.now() - timedelta(hours=1)
    Assignment.objects.create(
        project=project,
        prompt=queue[5],
        rater=rater2,
        shown_order=[],
        leased_at=gone,
        expires_at=gone + timedelta(minutes=10),
    )
    assignment = services.lease_next_assignment(project=project, rater=rater)
    assert assignment is not None
    assert assignment.prompt_id == queue[5].pk


def frontier(project, rater) -> int:
    return Membership.objects.get(project=project, user=rater).queue_frontier


def test_a_lease_from_the_queue_moves_the_frontier_and_a_gold_one_does_not(queue, project, rater):
    gold = queue[-1]
    Prompt.objects.filter(pk=gold.pk).update(is_gold=True, gold_ranking=[[1], [2]])
    project.gold_rate = 1.0
    project.save()
    first = services.lease_next_assignment(project=project, rater=rater)
    assert first is not None and first.prompt_id == gold.pk
    assert frontier(project, rater) == 0
    services.assignment_skip(assignment_id=first.pk, rater=rater, reason="unsure")
    second = services.lease_next_assignment(project=project, rater=rater)  # no gold left
    assert second is not None and second.prompt_id == queue[0].pk
    assert frontier(project, rater) == queue[0].pk


@pytest.mark.parametrize("done", [0, 45])
def test_next_task_costs_the_same_queries_whatever_the_raters_history(
    queue, project, rater, api_for, django_assert_max_num_queries, done
):
    give_history(project, rater, queue[:done])
    client = api_for(rater)
    # token; membership with the live lease; the scan with responses; the lease with the
    # frontier moved; + the transaction's begin and end. (SQLite: the responses and the
    # frontier apart.)
    statements = 4 if database.is_postgresql() else 6
    with django_assert_max_num_queries(statements + 2):
        response = client.get(f"/api/projects/{project.pk}/next-task/")
    assert response.status_code == 200
    assert response.json()["prompt"]["id"] == queue[done].pk


@pytest.mark.parametrize(
    "advance",
    [False, pytest.param(True, marks=pytest.mark.postgresql("a data-modifying WITH"))],
)
def test_a_lease_is_not_written_once_the_last_slot_is_taken(queue, project, rater, rater2, advance):
    """The write that follows the scan counts the slots again, as of its own start."""
    project.overlap = 1
    project.save()
    now = timezone.now()
    Assignment.objects.create(
        project=project,
        prompt=queue[0],
        rater=rater2,
        shown_order=[],
        leased_at=now,
        expires_at=now + timedelta(minutes=10),
    )
    lease = Assignment(
        project=project,
        prompt=queue[0],
        rater=rater,
        shown_order=[],
        leased_at=now,
        expires_at=now + timedelta(minutes=10),
    )
    assert queue_sql.insert_lease_if_slot_free(lease=lease, cap=1, advance=advance) is None
    assert not Assignment.objects.filter(prompt=queue[0], rater=rater).exists()
    assert frontier(project, rater) == 0

    written = queue_sql.insert_lease_if_slot_free(lease=lease, cap=2, advance=advance)
    assert written is not None and written.pk is not None
    assert frontier(project, rater) == (queue[0].pk if advance else 0)
    stored = Assignment.objects.get(pk=written.pk)
    assert (stored.rater_id, stored.prompt_id, stored.status) == (
        rater.pk,
        queue[0].pk,
        AssignmentStatus.LEASED,
    )


def test_an_expired_lease_of_ones_own_is_renewed_as_it_was(queue, project, rater):
    first = services.lease_next_assignment(project=project, rater=rater)
    assert first is not None
    gone = timezone.now() - timedelta(hours=1)
    Assignment.objects.filter(pk=first.pk).update(
        leased_at=gone, expires_at=gone + timedelta(minutes=10)
    )
    again = services.lease_next_assignment(project=project, rater=rater)
    assert again is not None
    assert (again.pk, again.shown_order) == (first.pk, first.shown_order)
    assert again.expires_at > timezone.now()
    assert Assignment.objects.filter(rater=rater).count() == 1
