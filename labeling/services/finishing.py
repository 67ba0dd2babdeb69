"""Finishing a leased task: the lock a submit or skip takes, the slot it claims, marking it
submitted (and its prompt complete), skipping, and adaptive extra raters."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from core.rows import Statement, run_together
from labeling.models import Assignment, AssignmentStatus, MemberStatus, Project, Prompt
from labeling.services import queue_sql
from labeling.services.leases import free_slots


def assignment_for_rater(*, assignment_id: int, rater: User) -> Assignment:
    assignment = (
        Assignment.objects.select_related("project", "prompt")
        .filter(pk=assignment_id, rater=rater)
        .first()
    )
    if assignment is None:
        raise NotFound("assignment not found")
    return assignment


def assignment_lock_for_finish(*, assignment_id: int, rater: User) -> Assignment:
    """Lock the rater's assignment for submit or skip; call inside a transaction.

    One statement: the project, the prompt and the rater's membership status are read with
    it (a paused rater can't finish).
    """
    assignment = queue_sql.assignment_lock_row(assignment_id=assignment_id, rater_id=rater.pk)
    if assignment is None:
        raise NotFound("assignment not found")
    assignment.rater = rater
    if getattr(assignment, "rater_status", None) == MemberStatus.PAUSED:
        raise NotAllowed(
            "a lead has paused your work on this project; this task was returned", code="paused"
        )
    return assignment


def assignment_claim_slot(*, assignment: Assignment) -> None:
    """Refuse (409) finishing a lease whose slot was taken over after it expired.

    An expired lease is still accepted while the prompt has a free slot; once another
    rater's lease or ranking filled it, the late submit would exceed the overlap.
    """
    now = timezone.now()
    if assignment.status != AssignmentStatus.LEASED:
        raise Conflict(f"this assignment is already {assignment.status}", code="not_leased")
    if assignment.expires_at > now or assignment.is_repeat:
        return
    prompt = Prompt.objects.select_for_update(no_key=True).get(pk=assignment.prompt_id)
    free = free_slots(prompt=prompt, project=assignment.project, rater=assignment.rater, now=now)
    if free <= 0:
        raise Conflict(
            "your lease expired and the task was given to another rater", code="lease_taken"
        )


def assignment_mark_submitted(*, assignment: Assignment) -> None:
    """The assignment submitted now; its prompt complete once its submitted rankings reach
    its overlap (counted by the database at the moment of the update)."""
    run_together(assignment_submitted_statements(assignment=assignment), connection)


def assignment_submitted_statements(*, assignment: Assignment) -> list[Statement]:
    """What `assignment_mark_submitted` runs, for a caller that runs it along with its own
    write (`core.rows.run_together`: one round trip on PostgreSQL)."""
    assignment.status, assignment.finished_at = AssignmentStatus.SUBMITTED, timezone.now()
    statements = [
        queue_sql.assignment_submitted(
            assignment_id=assignment.pk, finished_at=assignment.finished_at
        )
    ]
    if not assignment.is_repeat:
        statements.append(
            queue_sql.prompt_complete_if_full(
                prompt_id=assignment.prompt_id,
                overlap=assignment.project.overlap,
                assignment_id=assignment.pk,
            )
        )
    return statements


@transaction.atomic
def assignment_skip(*, assignment_id: int, rater: User, reason: str) -> Assignment:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("say why you skip this task", field="reason")
    assignment = assignment_lock_for_finish(assignment_id=assignment_id, rater=rater)
    if assignment.status == AssignmentStatus.SKIPPED:
        return assignment
    if assignment.status != AssignmentStatus.LEASED:
        raise Conflict(f"this assignment is already {assignment.status}", code="not_leased")
    if assignment.finished_at is not None:
        raise Conflict(
            "you reopened this task after ranking it; submit it again instead of skipping",
            code="reopened",
        )
    assignment.status, assignment.finished_at = AssignmentStatus.SKIPPED, timezone.now()
    assignment.skip_reason = reason[:500]
    assignment.save(update_fields=["status", "finished_at", "skip_reason"])
    return assignment


def prompts_request_extra_raters(
    *, project: Project, prompt_ids: Iterable[int], reason: str
) -> int:
    """Adaptive overlap: put prompts back in the queue for one more rater each.

    Only up to the project's `max_overlap`; returns how many prompts were reopened.
    """
    if not project.max_overlap or project.max_overlap <= project.overlap:
        return 0
    return (
        Prompt.objects.filter(project=project, pk__in=list(prompt_ids), is_gold=False)
        .filter(extra_raters__lt=project.max_overlap - project.overlap)
        .update(extra_raters=F("extra_raters") + 1, is_complete=False, extra_reason=reason[:300])
    )
