"""`task_for_rater`, the one sequence the page and the API serve tasks by."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import NotAllowed
from labeling.models import Assignment, AssignmentStatus, Membership, MemberStatus
from rankings.rating import services as rating_services
from tests.rankings.rating.page_helpers import shown

pytestmark = pytest.mark.django_db


def whole_ranking(assignment: Assignment) -> list[list[int]]:
    return [[response_id] for response_id in assignment.shown_order]


def submit_and_undo(assignment: Assignment, rater) -> None:
    rating_services.ranking_submit(
        assignment_id=assignment.pk, rater=rater, ranking=whole_ranking(assignment)
    )
    rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)


def test_it_leases_the_current_task_and_on_request_the_following_one(rater, imported):
    alone = rating_services.task_for_rater(project=imported, rater=rater)
    assert alone.current is not None and alone.following is None
    both = rating_services.task_for_rater(project=imported, rater=rater, with_following=True)
    assert both.current == alone.current
    assert both.following is not None and both.following.prompt_id != alone.current.prompt_id
    assert not both.showing_lost


def test_the_same_tasks_come_back_until_they_are_finished(rater, imported):
    first = rating_services.task_for_rater(project=imported, rater=rater, with_following=True)
    again = rating_services.task_for_rater(project=imported, rater=rater, with_following=True)
    assert (again.current, again.following) == (first.current, first.following)


def test_a_task_reopened_by_an_undo_comes_first(rater, imported):
    first = rating_services.task_for_rater(project=imported, rater=rater, with_following=True)
    submit_and_undo(shown(first.current), rater)
    tasks = rating_services.task_for_rater(project=imported, rater=rater, with_following=True)
    assert tasks.current == first.current
    assert tasks.following == first.following


def test_an_abandoned_undo_is_restored_before_the_next_lease(rater, imported):
    first = shown(rating_services.task_for_rater(project=imported, rater=rater).current)
    submit_and_undo(first, rater)
    Assignment.objects.filter(pk=first.pk).update(expires_at=timezone.now())
    tasks = rating_services.task_for_rater(project=imported, rater=rater)
    first.refresh_from_db()
    assert first.status == AssignmentStatus.SUBMITTED  # the earlier ranking stands
    assert tasks.current is not None and tasks.current.prompt_id != first.prompt_id


def test_the_task_shown_stays_current_and_is_renewed_once_half_its_lease_is_used(rater, imported):
    first = rating_services.task_for_rater(project=imported, rater=rater, with_following=True)
    showing = shown(first.following)
    fresh = rating_services.task_for_rater(
        project=imported, rater=rater, showing_id=showing.pk, with_following=True
    )
    assert fresh.current == showing
    assert shown(fresh.current).expires_at == showing.expires_at  # more than half left: untouched
    Assignment.objects.filter(pk=showing.pk).update(
        expires_at=timezone.now() + timedelta(seconds=imported.lease_seconds / 2 - 10)
    )
    renewed = rating_services.task_for_rater(project=imported, rater=rater, showing_id=showing.pk)
    assert renewed.current == showing
    assert shown(renewed.current).expires_at > timezone.now() + timedelta(
        seconds=imported.lease_seconds - 5
    )


def test_a_shown_task_given_to_another_rater_is_replaced(rater, make_user, add_member, imported):
    imported.overlap = 1
    imported.save(update_fields=["overlap"])
    first = rating_services.task_for_rater(project=imported, rater=rater, with_following=True)
    showing = shown(first.following)
    past = timezone.now() - timedelta(hours=1)
    Assignment.objects.filter(pk=showing.pk).update(
        leased_at=past, expires_at=past + timedelta(minutes=10)
    )
    now = timezone.now()
    Assignment.objects.create(  # another rater holds the slot the expired lease left
        project=imported,
        prompt_id=showing.prompt_id,
        rater=add_member(make_user("quick")),
        shown_order=showing.shown_order,
        leased_at=now,
        expires_at=now + timedelta(minutes=10),
    )
    tasks = rating_services.task_for_rater(project=imported, rater=rater, showing_id=showing.pk)
    assert tasks.showing_lost
    assert tasks.current is not None and tasks.current.prompt_id != showing.prompt_id


def test_a_paused_rater_is_refused(rater, imported):
    Membership.objects.filter(user=rater).update(status=MemberStatus.PAUSED)
    with pytest.raises(NotAllowed):
        rating_services.task_for_rater(project=imported, rater=rater)


def test_nothing_left_gives_no_task(rater, project):
    tasks = rating_services.task_for_rater(project=project, rater=rater, with_following=True)
    assert tasks.current is None and tasks.following is None


def test_a_given_membership_saves_its_query(rater, imported, django_assert_num_queries):
    rating_services.task_for_rater(project=imported, rater=rater)
    membership = Membership.objects.get(user=rater, project=imported)
    with django_assert_num_queries(4):  # restore check, savepoint, live lease, release
        rating_services.task_for_rater(project=imported, rater=rater, membership=membership)
