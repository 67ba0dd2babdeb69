"""Reviewing demonstrations: the review lease and the reviewer's decision or skip.

A review task is a lease of its own (`DemonstrationReview`) on a demonstration routed to
review: one reviewer at a time, never its writer, with the same rules as a write lease
(live lease comes back, an expired one is taken over, a late decision on a lease still free
is accepted, one whose demonstration was taken over is refused with 409).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from authoring.demonstrations import quality
from authoring.demonstrations.edits import edit_distance
from authoring.demonstrations.models import (
    Demonstration,
    DemonstrationReview,
    DemonstrationStatus,
    ReviewDecision,
)
from authoring.demonstrations.validation import clean_review
from core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from labeling.models import AssignmentStatus, Membership, MemberStatus, Project

REVIEW_LEASE_ATTEMPTS = 8


def review_lease_new(*, project: Project, rater: User) -> DemonstrationReview | None:
    """Lease the oldest demonstration waiting for review that the rater did not write and
    has not reviewed or skipped; SKIP LOCKED keeps concurrent reviewers apart."""
    with transaction.atomic():
        now = timezone.now()
        tried: list[int] = []
        for _ in range(REVIEW_LEASE_ATTEMPTS):
            demonstration = _lock_next_reviewable(project=project, rater=rater, now=now, skip=tried)
            if demonstration is None:
                return None
            if not _review_taken(demonstration_id=demonstration.pk, rater=rater, now=now):
                return _lease_review(
                    demonstration=demonstration, project=project, rater=rater, now=now
                )
            tried.append(demonstration.pk)
    return None


def _lock_next_reviewable(
    *, project: Project, rater: User, now: datetime, skip: list[int]
) -> Demonstration | None:
    finished_by_rater = DemonstrationReview.objects.filter(
        demonstration=OuterRef("pk"), reviewer=rater
    ).exclude(status=AssignmentStatus.LEASED)
    held_by_other = DemonstrationReview.objects.filter(
        demonstration=OuterRef("pk"), status=AssignmentStatus.LEASED, expires_at__gt=now
    ).exclude(reviewer=rater)
    return (
        Demonstration.objects.filter(
            project=project,
            status=DemonstrationStatus.PENDING_REVIEW,
            prompt__archived_at__isnull=True,
        )
        .exclude(writer=rater)
        .exclude(pk__in=skip)
        .exclude(Exists(finished_by_rater))
        .exclude(Exists(held_by_other))
        .order_by("id")
        .select_for_update(skip_locked=True, of=("self",), no_key=True)
        .first()
    )


def _review_taken(*, demonstration_id: int, rater: User, now: datetime) -> bool:
    """Re-read under the lock: another reviewer's live lease, or a decision already in."""
    others = DemonstrationReview.objects.filter(demonstration_id=demonstration_id).exclude(
        reviewer=rater
    )
    return (
        others.filter(status=AssignmentStatus.LEASED, expires_at__gt=now).exists()
        or others.filter(status=AssignmentStatus.SUBMITTED).exists()
    )


def _lease_review(
    *, demonstration: Demonstration, project: Project, rater: User, now: datetime
) -> DemonstrationReview:
    # Others' leases that ran out are taken over: their late decision is refused.
    DemonstrationReview.objects.filter(
        demonstration=demonstration, status=AssignmentStatus.LEASED, expires_at__lte=now
    ).exclude(reviewer=rater).update(status=AssignmentStatus.EXPIRED)
    expires_at = now + timedelta(seconds=project.lease_seconds)
    review, _ = DemonstrationReview.objects.update_or_create(
        demonstration=demonstration,
        reviewer=rater,
        defaults={"leased_at": now, "expires_at": expires_at, "status": AssignmentStatus.LEASED},
        create_defaults={
            "project": project,
            "writer_id": demonstration.writer_id,
            "leased_at": now,
            "expires_at": expires_at,
        },
    )
    review.demonstration = demonstration
    return review


def review_for_rater(*, review_id: int, rater: User) -> DemonstrationReview:
    review = (
        DemonstrationReview.objects.select_related("demonstration__prompt", "project")
        .filter(pk=review_id, reviewer=rater)
        .first()
    )
    if review is None:
        raise NotFound("review not found")
    return review


def _lock_review(*, review_id: int, rater: User) -> DemonstrationReview:
    review = (
        DemonstrationReview.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(pk=review_id, reviewer=rater)
        .first()
    )
    if review is None:
        raise NotFound("review not found")
    paused = Membership.objects.filter(
        project_id=review.project_id, user=rater, status=MemberStatus.PAUSED
    ).exists()
    if paused:
        raise NotAllowed(
            "a lead has paused your work on this project; this task was returned", code="paused"
        )
    return review


def review_submit(
    *, review_id: int, reviewer: User, decision: Any, reason: Any = None, text: Any = None
) -> tuple[DemonstrationReview, bool]:
    """Record the reviewer's decision; returns (review, created). The demonstration becomes
    accepted, edited (its exported text the reviewer's) or rejected, and the writer's
    rejection rate is checked against the project's flag rule."""
    cleaned = clean_review(decision=decision, reason=reason, text=text)
    with transaction.atomic():
        review = _lock_review(review_id=review_id, rater=reviewer)
        if review.status == AssignmentStatus.SUBMITTED:
            if (review.decision, review.reason, review.edited_text) == (
                cleaned.decision,
                cleaned.reason,
                cleaned.edited_text,
            ):
                return review, False
            raise Conflict(
                "this review was already submitted with another decision", code="submitted"
            )
        _claim_review(review)
        demonstration = Demonstration.objects.select_for_update(of=("self",)).get(
            pk=review.demonstration_id
        )
        if cleaned.decision == ReviewDecision.EDIT and cleaned.edited_text == demonstration.text:
            raise InvalidInput("the edit changes nothing: accept it instead", field="text")
        now = timezone.now()
        review.status, review.finished_at = AssignmentStatus.SUBMITTED, now
        review.decision, review.reason = cleaned.decision, cleaned.reason
        review.edited_text = cleaned.edited_text
        review.edit_distance = (
            edit_distance(demonstration.text, cleaned.edited_text)
            if cleaned.decision == ReviewDecision.EDIT
            else None
        )
        review.save()
        demonstration.status = _DECIDED[cleaned.decision]
        demonstration.final_text = cleaned.edited_text or demonstration.text
        demonstration.reviewed_at = now
        demonstration.save(update_fields=["status", "final_text", "reviewed_at"])
        quality.writer_flag_refresh(project=review.project, writer_id=review.writer_id)
    return review, True


_DECIDED: dict[str, str] = {
    ReviewDecision.ACCEPT: DemonstrationStatus.ACCEPTED,
    ReviewDecision.EDIT: DemonstrationStatus.EDITED,
    ReviewDecision.REJECT: DemonstrationStatus.REJECTED,
}


def _claim_review(review: DemonstrationReview) -> None:
    """Refuse a decision on a lease that is over, or expired and taken over (409)."""
    if review.status == AssignmentStatus.EXPIRED:
        raise Conflict(
            "your lease expired and the review was given to another rater", code="lease_taken"
        )
    if review.status != AssignmentStatus.LEASED:
        raise Conflict(f"this review is already {review.status}", code="not_leased")
    if review.expires_at > timezone.now():
        return
    others = DemonstrationReview.objects.filter(demonstration_id=review.demonstration_id).exclude(
        pk=review.pk
    )
    taken = (
        others.filter(status=AssignmentStatus.SUBMITTED).exists()
        or others.filter(status=AssignmentStatus.LEASED, expires_at__gt=timezone.now()).exists()
    )
    if taken:
        raise Conflict(
            "your lease expired and the review was given to another rater", code="lease_taken"
        )


def review_skip(*, review_id: int, reviewer: User, reason: Any) -> DemonstrationReview:
    """Give the review back with a reason; the demonstration goes to another reviewer."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("say why you skip this task", field="reason")
    with transaction.atomic():
        review = _lock_review(review_id=review_id, rater=reviewer)
        if review.status == AssignmentStatus.SKIPPED:
            return review
        if review.status != AssignmentStatus.LEASED:
            raise Conflict(f"this review is already {review.status}", code="not_leased")
        review.status, review.finished_at = AssignmentStatus.SKIPPED, timezone.now()
        review.skip_reason = reason.strip()[:500]
        review.save(update_fields=["status", "finished_at", "skip_reason"])
    return review
