"""Services behind the rater page: the preloaded following task, renewing a lease, undo."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import Conflict, NotAllowed, NotFound
from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Membership, Prompt
from rankings.models import Ranking
from rankings.rating import services as rating_services
from tests.rankings.rating.page_helpers import leased

pytestmark = pytest.mark.django_db


def whole_ranking(assignment: Assignment) -> list[list[int]]:
    return [[response_id] for response_id in assignment.shown_order]


def submit(assignment: Assignment, rater, groups=None, **extra) -> Ranking:
    ranking, _ = rating_services.ranking_submit(
        assignment_id=assignment.pk,
        rater=rater,
        ranking=groups or whole_ranking(assignment),
        **extra,
    )
    return ranking


def set_overlap(project, overlap: int) -> None:
    project.overlap = overlap
    project.save(update_fields=["overlap"])


def expire(assignment: Assignment, *, seconds_ago: int = 1) -> None:
    past = timezone.now() - timedelta(seconds=seconds_ago)
    Assignment.objects.filter(pk=assignment.pk).update(
        leased_at=past - timedelta(hours=1), expires_at=past
    )


# The following (preloaded) task --------------------------------------------------------------


def test_following_task_is_another_prompt_with_its_own_shown_order(imported, rater):
    current = leased(imported, rater)
    following = labeling_services.lease_following_assignment(
        project=imported, rater=rater, current_id=current.pk
    )
    assert following is not None
    assert following.pk != current.pk and following.prompt_id != current.prompt_id
    expected = sorted(following.prompt.responses.values_list("id", flat=True))
    assert sorted(following.shown_order) == expected
    assert Assignment.objects.get(pk=following.pk).shown_order == following.shown_order


def test_following_task_is_held_not_leased_again(imported, rater):
    current = leased(imported, rater)
    first = labeling_services.lease_following_assignment(
        project=imported, rater=rater, current_id=current.pk
    )
    again = labeling_services.lease_following_assignment(
        project=imported, rater=rater, current_id=current.pk
    )
    assert first is not None and again is not None and again.pk == first.pk
    assert Assignment.objects.filter(rater=rater).count() == 2
    # Reloading the page: the oldest lease is current, the held one follows.
    assert leased(imported, rater).pk == current.pk


def test_following_task_after_submit_becomes_current(imported, rater):
    current = leased(imported, rater)
    following = labeling_services.lease_following_assignment(
        project=imported, rater=rater, current_id=current.pk
    )
    assert following is not None
    submit(current, rater)
    assert leased(imported, rater).pk == following.pk


def test_following_task_is_none_when_only_the_current_prompt_is_left(project, rater):
    labeling_services.prompts_import(
        project=project, raw=json.dumps([{"prompt": "only", "responses": ["a", "b"]}])
    )
    current = leased(project, rater)
    assert (
        labeling_services.lease_following_assignment(
            project=project, rater=rater, current_id=current.pk
        )
        is None
    )


def test_following_task_holds_an_overlap_slot(project, rater, rater2):
    set_overlap(project, 1)
    labeling_services.prompts_import(
        project=project,
        raw=json.dumps([{"prompt": f"q{i}", "responses": ["a", "b"]} for i in range(2)]),
    )
    current = leased(project, rater)
    following = labeling_services.lease_following_assignment(
        project=project, rater=rater, current_id=current.pk
    )
    assert following is not None
    assert labeling_services.lease_next_assignment(project=project, rater=rater2) is None


def test_paused_rater_gets_no_following_task(imported, rater):
    current = leased(imported, rater)
    labeling_services.member_update(project=imported, username=rater.username, status="paused")
    with pytest.raises(NotAllowed):
        labeling_services.lease_following_assignment(
            project=imported, rater=rater, current_id=current.pk
        )


# Renew -----------------------------------------------------------------------------------------


def test_renew_extends_the_lease_from_now(imported, rater):
    assignment = leased(imported, rater)
    Assignment.objects.filter(pk=assignment.pk).update(
        expires_at=timezone.now() + timedelta(seconds=20)
    )
    before = timezone.now()
    renewed = labeling_services.assignment_renew(assignment_id=assignment.pk, rater=rater)
    assert renewed.expires_at >= before + timedelta(seconds=imported.lease_seconds)
    assignment.refresh_from_db()
    assert assignment.expires_at == renewed.expires_at


def test_renew_takes_back_an_expired_lease_while_the_slot_is_free(imported, rater):
    assignment = leased(imported, rater)
    expire(assignment)
    renewed = labeling_services.assignment_renew(assignment_id=assignment.pk, rater=rater)
    assert renewed.expires_at > timezone.now()


def test_renew_refuses_a_lease_taken_over(imported, rater, make_user, add_member):
    set_overlap(imported, 1)
    assignment = leased(imported, rater)
    expire(assignment)
    other = add_member(make_user("quick"))
    taken = leased(imported, other)
    assert taken.prompt_id == assignment.prompt_id
    with pytest.raises(Conflict) as refused:
        labeling_services.assignment_renew(assignment_id=assignment.pk, rater=rater)
    assert refused.value.code == "lease_taken"


def test_renew_refuses_a_finished_task_a_paused_rater_and_another_raters_task(
    imported, rater, rater2
):
    assignment = leased(imported, rater)
    with pytest.raises(NotFound):
        labeling_services.assignment_renew(assignment_id=assignment.pk, rater=rater2)
    submit(assignment, rater)
    with pytest.raises(Conflict):
        labeling_services.assignment_renew(assignment_id=assignment.pk, rater=rater)
    nxt = leased(imported, rater)
    labeling_services.member_update(project=imported, username=rater.username, status="paused")
    with pytest.raises(NotAllowed):
        labeling_services.assignment_renew(assignment_id=nxt.pk, rater=rater)


# Undo ------------------------------------------------------------------------------------------


def test_undo_reopens_the_task_with_a_live_lease_and_keeps_the_ranking(imported, rater):
    assignment = leased(imported, rater)
    ranking = submit(assignment, rater)
    assignment.refresh_from_db()
    submitted_at = assignment.finished_at

    rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)

    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.LEASED
    assert assignment.expires_at > timezone.now()
    assert assignment.finished_at == submitted_at  # marks it as reopened
    ranking.refresh_from_db()
    assert ranking.groups == whole_ranking(assignment)
    assert ranking.revisions == []
    assert leased(imported, rater).pk == (assignment.pk)


def test_resubmit_after_undo_updates_the_same_ranking_and_keeps_the_old_one(imported, rater):
    assignment = leased(imported, rater)
    first = submit(assignment, rater, ratings=None, rationale="first try", seconds=4)
    rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)
    reversed_groups = list(reversed(whole_ranking(assignment)))

    second, created = rating_services.ranking_submit(
        assignment_id=assignment.pk, rater=rater, ranking=reversed_groups, rationale="better"
    )

    assert second.pk == first.pk
    assert created
    assert Ranking.objects.filter(assignment=assignment).count() == 1
    second.refresh_from_db()
    assert second.groups == reversed_groups
    assert second.rationale == "better"
    assert second.updated_at is not None
    (old,) = second.revisions
    assert old["groups"] == whole_ranking(assignment)
    assert old["rationale"] == "first try"
    assert old["seconds"] == 4
    assert "submitted_at" in old and "replaced_at" in old
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED


def test_every_undo_and_resubmit_adds_a_revision(imported, rater):
    assignment = leased(imported, rater)
    submit(assignment, rater)
    for _ in range(2):
        rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)
        submit(assignment, rater, groups=list(reversed(whole_ranking(assignment))))
    ranking = Ranking.objects.get(assignment=assignment)
    assert len(ranking.revisions) == 2


def test_undo_recomputes_prompt_completion(imported, rater):
    set_overlap(imported, 1)
    assignment = leased(imported, rater)
    submit(assignment, rater)
    assert Prompt.objects.get(pk=assignment.prompt_id).is_complete

    rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)
    assert not Prompt.objects.get(pk=assignment.prompt_id).is_complete

    submit(assignment, rater)
    assert Prompt.objects.get(pk=assignment.prompt_id).is_complete


def test_undo_is_refused_after_the_window(imported, rater):
    assignment = leased(imported, rater)
    submit(assignment, rater)
    Assignment.objects.filter(pk=assignment.pk).update(
        finished_at=timezone.now() - timedelta(seconds=rating_services.UNDO_SECONDS + 10)
    )
    with pytest.raises(Conflict) as refused:
        rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)
    assert refused.value.code == "undo_expired"
    assert Assignment.objects.get(pk=assignment.pk).status == AssignmentStatus.SUBMITTED


def test_undo_is_refused_once_the_lease_has_run_out(imported, rater):
    assignment = leased(imported, rater)
    submit(assignment, rater)
    Assignment.objects.filter(pk=assignment.pk).update(
        leased_at=timezone.now() - timedelta(hours=1), expires_at=timezone.now()
    )
    with pytest.raises(Conflict) as refused:
        rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)
    assert refused.value.code == "lease_expired"


def test_undo_is_refused_for_a_task_not_submitted_or_not_yours(imported, rater, rater2):
    assignment = leased(imported, rater)
    with pytest.raises(Conflict):
        rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)
    submit(assignment, rater)
    with pytest.raises(NotFound):
        rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater2)


def test_undo_is_refused_to_a_paused_rater(imported, rater):
    assignment = leased(imported, rater)
    submit(assignment, rater)
    Membership.objects.filter(user=rater).update(status="paused")
    with pytest.raises(NotAllowed):
        rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)


def test_a_reopened_task_keeps_its_slot_after_its_lease_runs_out(project, rater, rater2):
    set_overlap(project, 1)
    labeling_services.prompts_import(
        project=project, raw=json.dumps([{"prompt": "only", "responses": ["a", "b"]}])
    )
    assignment = leased(project, rater)
    submit(assignment, rater, strength=2)
    rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)
    expire(assignment)
    # The earlier ranking still stands, so nobody else may take the prompt.
    assert labeling_services.lease_next_assignment(project=project, rater=rater2) is None


def test_an_abandoned_reopened_task_is_restored_as_submitted(imported, rater):
    set_overlap(imported, 1)
    assignment = leased(imported, rater)
    submit(assignment, rater)
    assignment.refresh_from_db()
    submitted_at = assignment.finished_at
    rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)
    assert labeling_services.assignments_restore_reopened(project=imported, rater=rater) == 0
    expire(assignment)

    assert labeling_services.assignments_restore_reopened(project=imported, rater=rater) == 1

    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED
    assert assignment.finished_at == submitted_at
    assert Prompt.objects.get(pk=assignment.prompt_id).is_complete


def test_a_reopened_task_cannot_be_skipped(imported, rater):
    assignment = leased(imported, rater)
    submit(assignment, rater)
    rating_services.ranking_undo(assignment_id=assignment.pk, rater=rater)
    with pytest.raises(Conflict) as refused:
        labeling_services.assignment_skip(assignment_id=assignment.pk, rater=rater, reason="no")
    assert refused.value.code == "reopened"


# Guidelines and progress -------------------------------------------------------------------------


def test_guidelines_seen_is_stored_per_membership(imported, rater, outsider):
    membership = labeling_services.membership_mark_guidelines_seen(project=imported, user=rater)
    assert membership.guidelines_seen_at is not None
    assert Membership.objects.get(pk=membership.pk).guidelines_seen_at is not None
    with pytest.raises(NotFound):
        labeling_services.membership_mark_guidelines_seen(project=imported, user=outsider)


def test_progress_counts_today_and_what_is_left_for_the_rater(imported, rater):
    day_start = timezone.now() - timedelta(hours=1)
    assert labeling_services.rater_progress(project=imported, rater=rater, day_start=day_start) == {
        "done_today": 0,
        "left": 5,
    }
    first = leased(imported, rater)
    submit(first, rater)
    second = leased(imported, rater)
    submit(second, rater)
    Assignment.objects.filter(pk=first.pk).update(finished_at=day_start - timedelta(hours=2))
    third = leased(imported, rater)
    labeling_services.assignment_skip(assignment_id=third.pk, rater=rater, reason="broken")
    assert labeling_services.rater_progress(project=imported, rater=rater, day_start=day_start) == {
        "done_today": 1,
        "left": 2,
    }
