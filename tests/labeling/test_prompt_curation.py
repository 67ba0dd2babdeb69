"""Archiving, reopening and editing prompts (labeling.services.curation): what the queue,
the rater's progress and exports make of them."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from exports.params import export_params_clean
from exports.selectors.filters import export_filters, prompts_read
from labeling import services
from labeling.models import Assignment, AssignmentStatus, AuditAction, AuditEvent, Prompt
from tests.factories import AssignmentFactory
from tests.helpers import import_prompts, response_ids, sample_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def prompts(project):
    return import_prompts(project, sample_records(3))


def leased_prompt_ids(project, raters) -> set[int]:
    seen = set()
    for rater in raters:
        assignment = services.lease_next_assignment(
            project=project, rater=rater, rng=random.Random(1)
        )
        while assignment is not None:
            seen.add(assignment.prompt_id)
            services.assignment_skip(assignment_id=assignment.pk, rater=rater, reason="test")
            assignment = services.lease_next_assignment(
                project=project, rater=rater, rng=random.Random(1)
            )
    return seen


def test_archived_prompts_leave_the_queue_and_come_back(project, prompts, lead, rater, rater2):
    changed = services.prompts_archive(project=project, prompt_ids=[prompts[1].pk], by=lead)
    assert changed == [prompts[1].pk]
    assert leased_prompt_ids(project, [rater]) == {prompts[0].pk, prompts[2].pk}
    progress = services.rater_progress(project=project, rater=rater2, day_start=timezone.now())
    assert progress["left"] == 2
    services.prompts_archive(project=project, prompt_ids=[prompts[1].pk], archived=False, by=lead)
    assert prompts[1].pk in leased_prompt_ids(project, [rater2])
    actions = list(AuditEvent.objects.values_list("action", flat=True).order_by("id"))
    assert actions[-2:] == [AuditAction.PROMPTS_ARCHIVE, AuditAction.PROMPTS_UNARCHIVE]


def test_archived_gold_is_not_served(project, prompts, lead, rater):
    project.gold_rate = 1.0
    project.save()
    gold = prompts[0]
    services.prompt_set_gold(
        project=project, prompt=gold, gold_ranking=[response_ids(gold)], by=lead
    )
    services.prompts_archive(project=project, prompt_ids=[gold.pk], by=lead)
    assert gold.pk not in leased_prompt_ids(project, [rater])


def test_archived_prompts_are_not_repeated(project, prompts, lead, rater):
    project.repeat_rate = 1.0
    project.repeat_delay_seconds = 0
    project.save()
    past = timezone.now() - timedelta(hours=1)
    AssignmentFactory(prompt=prompts[0], rater=rater, finished_at=past)
    services.prompts_archive(project=project, prompt_ids=[prompts[0].pk], by=lead)
    assignment = services.lease_next_assignment(project=project, rater=rater, rng=random.Random(0))
    assert assignment is not None and not assignment.is_repeat
    assert assignment.prompt_id != prompts[0].pk


@pytest.mark.parametrize("include", [False, True])
def test_exports_leave_archived_prompts_out_by_default(project, prompts, lead, include):
    services.prompts_archive(project=project, prompt_ids=[prompts[0].pk], by=lead)
    params = export_params_clean({"include_archived": include} if include else {}, project=project)
    filters = export_filters(project=project, params=params)
    exported = set(prompts_read(project=project, filters=filters).values_list("pk", flat=True))
    expected = {p.pk for p in prompts} if include else {prompts[1].pk, prompts[2].pk}
    assert exported == expected


def test_reopen_adds_a_rater_and_puts_a_complete_prompt_back(project, prompts, lead, rater):
    Prompt.objects.filter(pk=prompts[0].pk).update(is_complete=True)
    changed = services.prompts_reopen(project=project, prompt_ids=[prompts[0].pk], by=lead)
    assert changed == [prompts[0].pk]
    prompt = Prompt.objects.get(pk=prompts[0].pk)
    assert (prompt.extra_raters, prompt.is_complete) == (1, False)
    assert prompt.extra_reason == "reopened by lead"
    # Overlap changes recompute completion from the new target, not the old one.
    services.prompts_completion_refresh(project=project)
    assert not Prompt.objects.get(pk=prompts[0].pk).is_complete


def test_bulk_services_refuse_foreign_or_missing_prompts(project, prompts, lead):
    with pytest.raises(NotFound):
        services.prompts_archive(project=project, prompt_ids=[999999], by=lead)
    with pytest.raises(InvalidInput):
        services.prompts_reopen(project=project, prompt_ids=[], by=lead)


def test_edit_refused_while_a_rater_holds_the_prompt(project, prompts, rater):
    now = timezone.now()
    AssignmentFactory(
        prompt=prompts[0],
        rater=rater,
        status=AssignmentStatus.LEASED,
        finished_at=None,
        leased_at=now,
        expires_at=now + timedelta(minutes=5),
    )
    with pytest.raises(Conflict):
        services.prompt_content_update(prompt=prompts[0], changes={"responses": ["a", "b"]})


def test_edit_renews_expired_leases_with_the_new_responses(project, prompts, rater):
    """An expired lease is renewed as it was; it must not show a removed response."""
    long_ago = timezone.now() - timedelta(hours=2)
    AssignmentFactory(
        prompt=prompts[0],
        rater=rater,
        status=AssignmentStatus.LEASED,
        finished_at=None,
        leased_at=long_ago,
        expires_at=long_ago + timedelta(minutes=5),
    )
    services.prompt_content_update(
        prompt=prompts[0], changes={"responses": ["one", "two", "three", "four"]}
    )
    stale = Assignment.objects.get(prompt=prompts[0], rater=rater)
    assert sorted(stale.shown_order) == sorted(response_ids(prompts[0]))
    assignment = services.lease_next_assignment(project=project, rater=rater, rng=random.Random(0))
    assert assignment is not None
    assert assignment.pk == stale.pk and len(assignment.shown_order) == 4
