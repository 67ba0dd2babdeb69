"""The queue: leasing the next task under the overlap rules, finishing, skipping and
extra raters."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from labeling.models import (
    MIN_RESPONSES,
    Assignment,
    AssignmentStatus,
    Membership,
    MemberStatus,
    Project,
    Prompt,
)

LEASE_ATTEMPTS = 8


# Leases --------------------------------------------------------------------------------------


def occupied_assignments(*, now: datetime) -> Q:
    """Assignments that hold an overlap slot: submitted ones, leases still live, and tasks
    reopened by an undo (leased again with `finished_at` kept): their earlier ranking still
    stands until it is replaced, even after the new lease runs out."""
    return (
        Q(status=AssignmentStatus.SUBMITTED)
        | Q(status=AssignmentStatus.LEASED, expires_at__gt=now)
        | Q(status=AssignmentStatus.LEASED, finished_at__isnull=False)
    )


def rater_membership(*, project_id: int, rater: User) -> Membership:
    """The rater's membership with its project in one query; 404 when there is none."""
    membership = (
        Membership.objects.select_related("project")
        .filter(project_id=project_id, user=rater)
        .first()
    )
    if membership is None:
        raise NotFound("project not found")
    return membership


def require_active_rater(
    *, project: Project, rater: User, membership: Membership | None = None
) -> Membership:
    if membership is None:
        membership = Membership.objects.filter(project=project, user=rater).first()
    if membership is None:
        raise NotFound("project not found")
    if membership.status == MemberStatus.PAUSED:
        raise NotAllowed(
            "a lead has paused your work on this project; no tasks are served", code="paused"
        )
    return membership


def lease_next_assignment(
    *,
    project: Project,
    rater: User,
    rng: random.Random | None = None,
    membership: Membership | None = None,
) -> Assignment | None:
    """The rater's live lease, or a new lease, or None when nothing is left for them.

    At the project's rates the new lease is a repeat of a prompt the rater ranked a while
    ago, or a gold prompt; otherwise the next open prompt under its overlap. Raters can't
    tell these apart. One short transaction: open prompts are locked with SKIP LOCKED so
    concurrent raters never wait on each other, then the slot count is re-read under the
    lock because the candidate scan may have seen a snapshot from before another lease.
    """
    require_active_rater(project=project, rater=rater, membership=membership)
    rng = rng or random.SystemRandom()
    with transaction.atomic():
        now = timezone.now()
        live = (
            Assignment.objects.filter(
                project=project, rater=rater, status=AssignmentStatus.LEASED, expires_at__gt=now
            )
            .order_by("id")
            .first()
        )
        if live is not None:
            return live
        return lease_new(project=project, rater=rater, now=now, rng=rng)


def lease_new(
    *, project: Project, rater: User, now: datetime, rng: random.Random, skip: Iterable[int] = ()
) -> Assignment | None:
    """A new lease: a repeat or a gold prompt at the project's rates, else an open prompt."""
    if project.repeat_rate and rng.random() < project.repeat_rate:
        repeat = _lease_repeat(project=project, rater=rater, now=now, rng=rng)
        if repeat is not None:
            return repeat
    if project.gold_rate and rng.random() < project.gold_rate:
        gold = _lease_gold(project=project, rater=rater, now=now, rng=rng)
        if gold is not None:
            return gold
    return _lease_open_prompt(project=project, rater=rater, now=now, rng=rng, skip=skip)


def _lease_open_prompt(
    *, project: Project, rater: User, now: datetime, rng: random.Random, skip: Iterable[int] = ()
) -> Assignment | None:
    tried: list[int] = list(skip)
    for _ in range(LEASE_ATTEMPTS):
        prompt = _lock_next_open_prompt(project=project, rater=rater, now=now, skip=tried)
        if prompt is None:
            return None
        if _free_slots(prompt=prompt, project=project, rater=rater, now=now) > 0:
            return _lease_prompt(prompt=prompt, project=project, rater=rater, now=now, rng=rng)
        tried.append(prompt.pk)
    return None


def _lock_next_open_prompt(
    *, project: Project, rater: User, now: datetime, skip: Iterable[int]
) -> Prompt | None:
    slots_taken = (
        Assignment.objects.filter(prompt=OuterRef("pk"), is_repeat=False)
        .filter(occupied_assignments(now=now))
        .values("prompt")
        .annotate(count=Count("id"))
        .values("count")
    )
    already_done_by_rater = Assignment.objects.filter(
        prompt=OuterRef("pk"), rater=rater, is_repeat=False
    ).exclude(status=AssignmentStatus.LEASED)
    return (
        Prompt.objects.filter(
            project=project,
            is_complete=False,
            is_gold=False,
            archived_at__isnull=True,
            n_responses__gte=MIN_RESPONSES,  # the others wait for generation
        )
        .exclude(pk__in=list(skip))
        .annotate(slots_taken=Coalesce(Subquery(slots_taken), Value(0)))
        .filter(slots_taken__lt=project.overlap + F("extra_raters"))
        .exclude(Exists(already_done_by_rater))
        .order_by("id")
        # NO KEY UPDATE: foreign-key checks elsewhere (rankings, consensus rows) take KEY
        # SHARE locks on prompts; a plain FOR UPDATE would skip those prompts as "busy".
        .select_for_update(skip_locked=True, of=("self",), no_key=True)
        .first()
    )


def prompt_overlap(*, project: Project, prompt: Prompt) -> int:
    """Rankings a prompt collects: the project's overlap plus any adaptive extra raters."""
    return project.overlap + prompt.extra_raters


def _free_slots(*, prompt: Prompt, project: Project, rater: User, now: datetime) -> int:
    if prompt.is_gold:
        return 1  # every rater may rank a gold prompt once; it has no overlap cap
    taken = (
        Assignment.objects.filter(prompt=prompt, is_repeat=False)
        .filter(occupied_assignments(now=now))
        .exclude(rater=rater)
        .count()
    )
    return prompt_overlap(project=project, prompt=prompt) - taken


def _lease_gold(
    *, project: Project, rater: User, now: datetime, rng: random.Random
) -> Assignment | None:
    """A gold prompt the rater has not had yet; gold has no overlap cap."""
    seen = Assignment.objects.filter(prompt=OuterRef("pk"), rater=rater, is_repeat=False)
    prompt = (
        Prompt.objects.filter(
            project=project,
            is_gold=True,
            archived_at__isnull=True,
            n_responses__gte=MIN_RESPONSES,
        )
        .exclude(Exists(seen))
        .order_by("id")
        .first()
    )
    if prompt is None:
        return None
    return _lease_prompt(prompt=prompt, project=project, rater=rater, now=now, rng=rng)


def _lease_repeat(
    *, project: Project, rater: User, now: datetime, rng: random.Random
) -> Assignment | None:
    """A prompt the rater ranked at least `repeat_delay_seconds` ago, reshuffled."""
    already_repeated = Assignment.objects.filter(
        prompt=OuterRef("prompt_id"), rater=rater, is_repeat=True
    )
    original = (
        Assignment.objects.filter(
            project=project,
            rater=rater,
            is_repeat=False,
            status=AssignmentStatus.SUBMITTED,
            finished_at__lte=now - timedelta(seconds=project.repeat_delay_seconds),
            prompt__archived_at__isnull=True,
        )
        .exclude(Exists(already_repeated))
        .order_by("finished_at")
        .first()
    )
    if original is None:
        return None
    shown = _reshuffled(list(original.shown_order), rng=rng)
    return Assignment.objects.create(
        project=project,
        prompt_id=original.prompt_id,
        rater=rater,
        shown_order=shown,
        is_repeat=True,
        leased_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
    )


def _reshuffled(order: list[int], *, rng: random.Random) -> list[int]:
    """A new order, different from the given one whenever there is more than one choice."""
    shuffled = order[:]
    for _ in range(10):
        rng.shuffle(shuffled)
        if shuffled != order:
            break
    return shuffled


def _lease_prompt(
    *, prompt: Prompt, project: Project, rater: User, now: datetime, rng: random.Random
) -> Assignment:
    expires_at = now + timedelta(seconds=project.lease_seconds)
    stale = Assignment.objects.filter(
        prompt=prompt, rater=rater, is_repeat=False, status=AssignmentStatus.LEASED
    ).first()
    if stale is not None:
        # The rater's own expired lease on a prompt that is still free: renew it as it was.
        stale.leased_at, stale.expires_at = now, expires_at
        stale.save(update_fields=["leased_at", "expires_at"])
        return stale
    response_ids = list(prompt.responses.order_by("position").values_list("id", flat=True))
    rng.shuffle(response_ids)
    return Assignment.objects.create(
        project=project,
        prompt=prompt,
        rater=rater,
        shown_order=response_ids,
        leased_at=now,
        expires_at=expires_at,
    )


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
    """Lock the rater's assignment for submit or skip; call inside a transaction."""
    membership = Membership.objects.filter(
        project__assignments__pk=assignment_id, user=rater
    ).first()
    if membership is not None and membership.status == MemberStatus.PAUSED:
        raise NotAllowed(
            "a lead has paused your work on this project; this task was returned", code="paused"
        )
    assignment = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("project", "prompt")
        .filter(pk=assignment_id, rater=rater)
        .first()
    )
    if assignment is None:
        raise NotFound("assignment not found")
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
    free = _free_slots(prompt=prompt, project=assignment.project, rater=assignment.rater, now=now)
    if free <= 0:
        raise Conflict(
            "your lease expired and the task was given to another rater", code="lease_taken"
        )


def assignment_mark_submitted(*, assignment: Assignment) -> None:
    now = timezone.now()
    assignment.status, assignment.finished_at = AssignmentStatus.SUBMITTED, now
    assignment.save(update_fields=["status", "finished_at"])
    if assignment.is_repeat:
        return
    submitted = Assignment.objects.filter(
        prompt_id=assignment.prompt_id, is_repeat=False, status=AssignmentStatus.SUBMITTED
    ).count()
    if submitted >= prompt_overlap(project=assignment.project, prompt=assignment.prompt):
        Prompt.objects.filter(pk=assignment.prompt_id).update(is_complete=True)


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
