"""What the rater page adds to a lease: the following task, renewal, reopening for undo,
completion and progress."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core.errors import Conflict, NotFound
from labeling.models import (
    Assignment,
    AssignmentStatus,
    Membership,
    Project,
    Prompt,
)
from labeling.services.finishing import assignment_claim_slot, assignment_lock_for_finish
from labeling.services.leases import lease_new, prompt_overlap, require_active_rater

# Rater page: the following task, lease renewal, reopening for undo, progress -----------------
# The browser page keeps the task after the current one leased and rendered, so submit → next
# is a swap in the page; it renews the lease while the rater is active, and can reopen the
# task just submitted (undo) without ever deleting the ranking.


def lease_following_assignment(
    *,
    project: Project,
    rater: User,
    current_id: int,
    rng: random.Random | None = None,
    membership: Membership | None = None,
) -> Assignment | None:
    """The task after the rater's current one, leased now so the page can preload it.

    A live lease other than the current one is returned first, so a rater holds at most one
    task ahead; otherwise a new lease is chosen like `lease_next_assignment` does, never on
    a prompt the rater already holds. Pass `membership` when it is already loaded.
    """
    membership = require_active_rater(project=project, rater=rater, membership=membership)
    rng = rng or random.SystemRandom()
    with transaction.atomic():
        now = timezone.now()
        live = Assignment.objects.filter(
            project=project, rater=rater, status=AssignmentStatus.LEASED, expires_at__gt=now
        )
        held = live.exclude(pk=current_id).order_by("id").first()
        if held is not None:
            return held
        held_prompts = list(live.values_list("prompt_id", flat=True))
        return lease_new(
            project=project,
            rater=rater,
            now=now,
            rng=rng,
            skip=held_prompts,
            membership=membership,
        )


def assignment_renew(*, assignment_id: int, rater: User) -> Assignment:
    """Extend the rater's lease on a task they are still working on, from now.

    A lease that ran out is renewed while its slot is still free; one given to another
    rater is a conflict (409), as is a task no longer leased.
    """
    with transaction.atomic():
        assignment = assignment_lock_for_finish(assignment_id=assignment_id, rater=rater)
        assignment_claim_slot(assignment=assignment)
        assignment.expires_at = timezone.now() + timedelta(seconds=assignment.project.lease_seconds)
        assignment.save(update_fields=["expires_at"])
    return assignment


def assignment_reopen(*, assignment: Assignment) -> Assignment:
    """Lease a submitted task to its rater again (undo); call inside a transaction.

    `finished_at` keeps the earlier submit time: it marks the task as reopened, which keeps
    its overlap slot (see `occupied_assignments`) and lets it be restored if abandoned.
    """
    if assignment.status != AssignmentStatus.SUBMITTED:
        raise Conflict(
            f"this assignment is {assignment.status}, not submitted", code="not_submitted"
        )
    lease_until = timezone.now() + timedelta(seconds=assignment.project.lease_seconds)
    assignment.status = AssignmentStatus.LEASED
    assignment.expires_at = max(assignment.expires_at, lease_until)
    assignment.save(update_fields=["status", "expires_at"])
    prompt_completion_refresh(prompt_id=assignment.prompt_id)
    return assignment


def assignments_restore_reopened(*, project: Project, rater: User) -> int:
    """Reopened tasks whose new lease ran out count as submitted again: the earlier ranking
    stands. Returns how many were restored."""
    stale = list(
        Assignment.objects.filter(
            project=project,
            rater=rater,
            status=AssignmentStatus.LEASED,
            finished_at__isnull=False,
            expires_at__lte=timezone.now(),
        ).values_list("pk", "prompt_id")
    )
    if not stale:
        return 0
    with transaction.atomic():
        restored = Assignment.objects.filter(
            pk__in=[pk for pk, _ in stale], status=AssignmentStatus.LEASED
        ).update(status=AssignmentStatus.SUBMITTED)
        for prompt_id in {prompt_id for _, prompt_id in stale}:
            prompt_completion_refresh(prompt_id=prompt_id)
    return restored


def prompt_completion_refresh(*, prompt_id: int) -> bool:
    """Recompute `Prompt.is_complete` from its submitted (non-repeat) assignments."""
    prompt = Prompt.objects.select_related("project").get(pk=prompt_id)
    submitted = Assignment.objects.filter(
        prompt_id=prompt_id, is_repeat=False, status=AssignmentStatus.SUBMITTED
    ).count()
    complete = submitted >= prompt_overlap(project=prompt.project, prompt=prompt)
    if complete != prompt.is_complete:
        Prompt.objects.filter(pk=prompt_id).update(is_complete=complete)
    return complete


def membership_mark_guidelines_seen(*, project: Project, user: User) -> Membership:
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        raise NotFound("project not found")
    membership.guidelines_seen_at = timezone.now()
    membership.save(update_fields=["guidelines_seen_at"])
    return membership


def rater_progress(*, project: Project, rater: User, day_start: datetime) -> dict[str, int]:
    """Tasks the rater submitted since `day_start`, and prompts still open to them.

    "Left" counts open prompts the rater has not finished (including the ones they hold);
    prompts whose remaining slots other raters hold are counted too, so it is an estimate.
    """
    done_today = Assignment.objects.filter(
        project=project,
        rater=rater,
        status=AssignmentStatus.SUBMITTED,
        finished_at__gte=day_start,
    ).count()
    finished_by_rater = Assignment.objects.filter(
        prompt=OuterRef("pk"), rater=rater, is_repeat=False
    ).exclude(status=AssignmentStatus.LEASED)
    left = (
        Prompt.objects.filter(
            project=project, is_complete=False, is_gold=False, archived_at__isnull=True
        )
        .exclude(Exists(finished_by_rater))
        .count()
    )
    return {"done_today": done_today, "left": left}
