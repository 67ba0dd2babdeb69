"""Writing and reviewing demonstrations: the rater's task, submit, review lease and decision.

A write task is an ordinary lease of the queue (`labeling.services`): overlap, pause, skip,
expired-lease rules and identical resubmits behave as for rankings. In rank-then-rewrite
mode the ranking is stored by `rankings.rating.services.ranking_submit` (a real Ranking, so
agreement and ranking exports count it) in the same transaction as the demonstration.

A review task is a lease of its own (`DemonstrationReview`) on a demonstration routed to
review: one reviewer at a time, never its writer, with the same rules as a write lease
(live lease comes back, an expired one is taken over, a late decision on a lease still free
is accepted, one whose demonstration was taken over is refused with 409).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from authoring.demonstrations import quality
from authoring.demonstrations.edits import edit_distance, unified_diff
from authoring.demonstrations.models import (
    Demonstration,
    DemonstrationMode,
    DemonstrationReview,
    DemonstrationStatus,
    ReviewDecision,
)
from authoring.demonstrations.options import DemonstrationOptions
from core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from labeling import services as labeling_services
from labeling.models import (
    Assignment,
    AssignmentStatus,
    Membership,
    MemberStatus,
    Project,
    Response,
    TaskKind,
)
from rankings.rating import services as rating_services
from rankings.rating.validation import RankingProblem, clean_ranking_groups, clean_seconds

MAX_TEXT_CHARS = 20_000
MAX_REASON_CHARS = 2_000
REVIEW_LEASE_ATTEMPTS = 8


# Input ----------------------------------------------------------------------------------------


def clean_text(raw: Any, *, field: str = "text") -> str:
    """Markdown text with line endings normalised (browsers send CRLF), trimmed."""
    if not isinstance(raw, str):
        raise InvalidInput("must be text", field=field)
    text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    if "\x00" in text:
        raise InvalidInput("must not contain NUL characters", field=field)
    if not text:
        raise InvalidInput("write the reply: it is empty", field=field)
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"must be at most {MAX_TEXT_CHARS} characters", field=field)
    return text


def _clean_reason(raw: Any, *, required: bool) -> str:
    if raw is not None and not isinstance(raw, str):
        raise InvalidInput("must be text", field="reason")
    reason = (raw or "").strip()
    if "\x00" in reason:
        raise InvalidInput("must not contain NUL characters", field="reason")
    if required and not reason:
        raise InvalidInput("say why you reject this demonstration", field="reason")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"must be at most {MAX_REASON_CHARS} characters", field="reason")
    return reason


def _seconds(raw: Any) -> float | None:
    try:
        return clean_seconds(raw)
    except RankingProblem as problem:
        raise InvalidInput(problem.message, field=problem.field) from None


# The rater's task -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DemonstrationTask:
    """What a rater of a demonstration project works on now: a write lease or a review."""

    assignment: Assignment | None = None
    review: DemonstrationReview | None = None

    @property
    def is_review(self) -> bool:
        return self.review is not None


def task_for_rater(
    *, project: Project, rater: User, membership: Membership | None = None
) -> DemonstrationTask | None:
    """The rater's live task, else a review waiting for someone who did not write it, else
    a prompt to write for; None when nothing is left. Reviews come before new writing so
    the demonstrations written are reviewed as they come in."""
    labeling_services.require_active_rater(project=project, rater=rater, membership=membership)
    now = timezone.now()
    review = _live_review(project=project, rater=rater, now=now)
    if review is not None:
        return DemonstrationTask(review=review)
    if not _has_live_write_lease(project=project, rater=rater, now=now):
        review = review_lease_new(project=project, rater=rater)
        if review is not None:
            return DemonstrationTask(review=review)
    tasks = rating_services.task_for_rater(project=project, rater=rater, membership=membership)
    return None if tasks.current is None else DemonstrationTask(assignment=tasks.current)


def _live_review(*, project: Project, rater: User, now: datetime) -> DemonstrationReview | None:
    return (
        DemonstrationReview.objects.select_related("demonstration__prompt")
        .filter(project=project, reviewer=rater, status=AssignmentStatus.LEASED, expires_at__gt=now)
        .order_by("id")
        .first()
    )


def _has_live_write_lease(*, project: Project, rater: User, now: datetime) -> bool:
    return Assignment.objects.filter(
        project=project, rater=rater, status=AssignmentStatus.LEASED, expires_at__gt=now
    ).exists()


# Writing --------------------------------------------------------------------------------------


def demonstration_submit(
    *,
    assignment_id: int,
    rater: User,
    text: Any,
    ranking: Any = None,
    original_response: Any = None,
    seconds: Any = None,
    rationale: str = "",
    rng: random.Random | None = None,
) -> tuple[Demonstration, bool]:
    """Store the reply for a leased write task; returns (demonstration, created).

    Rank then rewrite: `ranking` (tie groups best→worst, validated as for rankings) is
    required, `original_response` (default: the first of the best group) must be one of the
    best group; `rationale` goes with the ranking (projects may require one). Submitting the
    same again returns the stored demonstration; something else for a finished task is a
    conflict. A rewrite reopened by an undo is replaced when it is submitted again.
    """
    text = clean_text(text)
    cleaned_seconds = _seconds(seconds)
    with transaction.atomic():
        assignment = labeling_services.assignment_lock_for_finish(
            assignment_id=assignment_id, rater=rater
        )
        project = assignment.project
        if project.task_kind != TaskKind.DEMONSTRATION:
            raise Conflict("this task is not a demonstration task", code="wrong_kind")
        options = DemonstrationOptions.of(project)
        _check_mode_fields(options, ranking=ranking, original_response=original_response)
        existing = Demonstration.objects.filter(assignment=assignment).first()
        if assignment.status == AssignmentStatus.SUBMITTED:
            if existing is not None and _same_submission(existing, assignment, text, ranking):
                return existing, False
            raise Conflict("this task was already submitted with another reply", code="submitted")
        if existing is not None and existing.status not in (
            DemonstrationStatus.UNREVIEWED,
            DemonstrationStatus.PENDING_REVIEW,
        ):
            raise Conflict("this demonstration was reviewed already", code="reviewed")
        fields: dict[str, Any] = {
            "mode": options.mode,
            "text": text,
            "final_text": text,
            "seconds": cleaned_seconds,
            "guidelines_version": project.guidelines_version,
            "status": _review_routing(options, rng),
        }
        if options.rank_then_rewrite:
            stored, _ = rating_services.ranking_submit(
                assignment_id=assignment.pk,
                rater=rater,
                ranking=ranking,
                seconds=seconds,
                rationale=rationale,
            )
            fields |= _rewrite_fields(stored.groups, original_response, text)
            fields["ranking"] = stored
        else:
            labeling_services.assignment_claim_slot(assignment=assignment)
            labeling_services.assignment_mark_submitted(assignment=assignment)
        if existing is not None:  # reopened by an undo: the demonstration is replaced
            for name, value in fields.items():
                setattr(existing, name, value)
            existing.created_at = timezone.now()
            existing.save()
            return existing, True
        demonstration = Demonstration.objects.create(
            assignment=assignment,
            project=project,
            prompt_id=assignment.prompt_id,
            writer=rater,
            **fields,
        )
    return demonstration, True


def _check_mode_fields(
    options: DemonstrationOptions, *, ranking: Any, original_response: Any
) -> None:
    if options.rank_then_rewrite:
        if ranking is None:
            raise InvalidInput("rank the responses before rewriting the best", field="ranking")
        return
    for name, value in (("ranking", ranking), ("original_response", original_response)):
        if value is not None:
            raise InvalidInput(
                "this project's demonstrations are written, not ranked and rewritten", field=name
            )


def _same_submission(
    existing: Demonstration, assignment: Assignment, text: str, ranking: Any
) -> bool:
    if existing.text != text:
        return False
    if existing.ranking_id is None:
        return ranking is None
    try:
        groups = clean_ranking_groups(
            ranking,
            shown_ids=[int(response_id) for response_id in assignment.shown_order],
            allow_ties=assignment.project.allow_ties,
        )
    except RankingProblem:
        return False
    stored = Demonstration.objects.select_related("ranking").get(pk=existing.pk).ranking
    return stored is not None and stored.groups == groups


def _review_routing(options: DemonstrationOptions, rng: random.Random | None) -> str:
    """Routed to review at the project's rate (1: always, 0: never)."""
    rate = options.review_rate
    routed = rate >= 1 or (rate > 0 and (rng or random.SystemRandom()).random() < rate)
    return DemonstrationStatus.PENDING_REVIEW if routed else DemonstrationStatus.UNREVIEWED


def _rewrite_fields(groups: list[list[int]], original_response: Any, text: str) -> dict[str, Any]:
    """The rewritten response (one of the best group) and how far the text moved from it."""
    best = groups[0]
    if original_response is None:
        original_id = best[0]
    elif (
        isinstance(original_response, int)
        and not isinstance(original_response, bool)
        and original_response in best
    ):
        original_id = original_response
    else:
        raise InvalidInput(
            "must be the id of a response you ranked best", field="original_response"
        )
    original = Response.objects.get(pk=original_id)
    return {
        "original_response": original,
        "original_text": original.text,
        "diff": unified_diff(
            original.text, text, before_name=f"response-{original.pk}", after_name="demonstration"
        ),
        "edit_distance": edit_distance(original.text, text),
    }


# Reviewing ------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class ReviewInput:
    decision: str
    reason: str
    edited_text: str


def clean_review(*, decision: Any, reason: Any = None, text: Any = None) -> ReviewInput:
    """accept, edit (with the edited `text`) or reject (with a `reason`)."""
    if decision not in ReviewDecision.values:
        raise InvalidInput(f"must be one of: {', '.join(ReviewDecision.values)}", field="decision")
    reason_text = _clean_reason(reason, required=decision == ReviewDecision.REJECT)
    edited = ""
    if decision == ReviewDecision.EDIT:
        edited = clean_text(text)
    elif text not in (None, ""):
        raise InvalidInput("only an edit carries a text", field="text")
    return ReviewInput(decision=decision, reason=reason_text, edited_text=edited)


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


def demonstration_mode_label(mode: str) -> str:
    return str(DemonstrationMode(mode).label)
