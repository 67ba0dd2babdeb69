from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling import services
from labeling.models import Assignment, Prompt
from rankings.rating.services import ranking_submit
from tests.helpers import sample_records

pytestmark = pytest.mark.django_db


def gold_records(count: int) -> list[dict]:
    records = sample_records(count, prefix="g")
    for record in records:
        record["gold_ranking"] = [[0], [1], [2]]
    return records


def finish(assignment, rater):
    ranking = [[response_id] for response_id in assignment.shown_order]
    ranking_submit(assignment_id=assignment.pk, rater=rater, ranking=ranking)


class AlwaysBelow(random.Random):
    """An rng whose draws always fall under any positive rate."""

    def random(self) -> float:
        return 0.0


class AlwaysAbove(random.Random):
    def random(self) -> float:
        return 0.999999


def test_gold_prompts_are_served_at_the_gold_rate_only(imported, rater):
    services.prompts_import(project=imported, raw=json.dumps(gold_records(2)))
    imported.gold_rate = 0.5
    imported.save()
    never = services.lease_next_assignment(project=imported, rater=rater, rng=AlwaysAbove(1))
    assert not never.prompt.is_gold
    finish(never, rater)
    gold = services.lease_next_assignment(project=imported, rater=rater, rng=AlwaysBelow(1))
    assert gold.prompt.is_gold


def test_gold_prompts_have_no_overlap_cap_and_leave_the_normal_queue(
    project, make_user, add_member
):
    project.overlap, project.gold_rate = 1, 1.0
    project.save()
    services.prompts_import(project=project, raw=json.dumps(gold_records(1)))
    raters = [add_member(make_user(f"g{index}")) for index in range(4)]
    for rater in raters:
        assignment = services.lease_next_assignment(project=project, rater=rater)
        assert assignment.prompt.is_gold
        finish(assignment, rater)
    assert Assignment.objects.filter(prompt__is_gold=True, status="submitted").count() == 4
    # With no normal prompts and gold already done, the queue is empty.
    assert services.lease_next_assignment(project=project, rater=raters[0]) is None


def test_gold_prompts_are_not_served_when_the_rate_is_zero(project, rater):
    project.gold_rate = 0
    project.save()
    services.prompts_import(project=project, raw=json.dumps(gold_records(2)))
    assert services.lease_next_assignment(project=project, rater=rater) is None


def test_repeats_come_after_the_delay_reshuffled_and_do_not_count_toward_overlap(imported, rater):
    imported.repeat_rate, imported.gold_rate, imported.overlap = 0.5, 0, 1
    imported.save()
    first = services.lease_next_assignment(project=imported, rater=rater)
    finish(first, rater)
    too_soon = services.lease_next_assignment(project=imported, rater=rater, rng=AlwaysBelow(3))
    assert not too_soon.is_repeat
    finish(too_soon, rater)
    Assignment.objects.filter(pk=first.pk).update(
        finished_at=timezone.now() - timedelta(seconds=imported.repeat_delay_seconds + 1)
    )
    repeat = services.lease_next_assignment(project=imported, rater=rater, rng=AlwaysBelow(3))
    assert repeat.is_repeat and repeat.prompt_id == first.prompt_id
    assert sorted(repeat.shown_order) == sorted(first.shown_order)
    assert repeat.shown_order != first.shown_order
    finish(repeat, rater)
    prompt = Prompt.objects.get(pk=first.prompt_id)
    assert prompt.rankings.filter(is_repeat=False).count() == 1
    assert prompt.rankings.filter(is_repeat=True).count() == 1
    # Each prompt is repeated at most once per rater.
    again = services.lease_next_assignment(project=imported, rater=rater, rng=AlwaysBelow(3))
    assert not (again.is_repeat and again.prompt_id == first.prompt_id)


def test_extra_raters_reopen_a_complete_prompt(imported, make_user, add_member):
    imported.overlap, imported.gold_rate = 1, 0
    imported.save()
    first_rater = add_member(make_user("first"))
    first = services.lease_next_assignment(project=imported, rater=first_rater)
    finish(first, first_rater)
    prompt = Prompt.objects.get(pk=first.prompt_id)
    assert prompt.is_complete
    Prompt.objects.filter(pk=prompt.pk).update(
        extra_raters=1, is_complete=False, extra_reason="low agreement"
    )
    second_rater = add_member(make_user("second"))
    second = services.lease_next_assignment(project=imported, rater=second_rater)
    assert second.prompt_id == prompt.pk
    finish(second, second_rater)
    prompt.refresh_from_db()
    assert prompt.is_complete
    assert prompt.rankings.count() == 2


def test_extra_raters_stop_at_max_overlap(imported):
    imported.overlap, imported.max_overlap = 2, 3
    imported.save()
    prompt = imported.prompts.first()
    reopened = services.prompts_request_extra_raters(
        project=imported, prompt_ids=[prompt.pk], reason="agreement 0.20 < 0.50"
    )
    assert reopened == 1
    again = services.prompts_request_extra_raters(
        project=imported, prompt_ids=[prompt.pk], reason="still low"
    )
    assert again == 0
    prompt.refresh_from_db()
    assert prompt.extra_raters == 1 and prompt.extra_reason == "agreement 0.20 < 0.50"


def test_extra_raters_are_off_without_max_overlap(imported):
    prompt = imported.prompts.first()
    assert (
        services.prompts_request_extra_raters(project=imported, prompt_ids=[prompt.pk], reason="x")
        == 0
    )
