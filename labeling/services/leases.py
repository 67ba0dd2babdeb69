"""The queue: leasing the next task under the overlap rules (finishing a task is
`finishing`; the statements on the rater's hot path are written out in `queue_sql`)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from core import db as database
from core.errors import NotAllowed, NotFound
from labeling.models import Assignment, AssignmentStatus, Membership, MemberStatus, Project, Prompt
from labeling.selectors import prompt_responses_keep, prompt_responses_load
from labeling.services import queue_sql
from labeling.task_kinds import min_responses

LEASE_ATTEMPTS = 8
# The queue scan starts this many prompt ids behind the furthest prompt the rater has had,
# not at the project's first prompt: however many prompts the rater has done, it walks at
# most this far through them. Prompts further back that still want raters (a lease that ran
# out long ago, a skip) are served once nothing is left ahead of the rater.
LOOK_BEHIND_PROMPTS = 200


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
    """The rater's membership with its project in one query; 404 when there is none.

    The same query reads what the next task depends on: the rater's live lease
    (`live_lease_id`, None when there is none) and whether a task they reopened has run out
    (`has_lapsed_reopened`), so serving a task needs no query to look for either.
    """
    membership = queue_sql.membership_for_tasks(
        project_id=project_id, rater_id=rater.pk, now=timezone.now()
    )
    if membership is None:
        raise NotFound("project not found")
    membership.user = rater
    return membership


NOT_READ = object()
"""`live_lease_id` of a membership read without it (not by `rater_membership`)."""


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
    concurrent raters never wait on each other, then the lease is written only if a slot is
    still free, counted again under the lock (the scan's snapshot may predate another
    lease). The scan starts just behind the rater's frontier (`LOOK_BEHIND_PROMPTS`).
    A membership read by `rater_membership` carries the rater's live lease: no lookup.
    """
    membership = require_active_rater(project=project, rater=rater, membership=membership)
    rng = rng or random.SystemRandom()
    live_lease_id = getattr(membership, "live_lease_id", NOT_READ)
    if isinstance(live_lease_id, int):
        live = _live_lease(project=project, rater=rater, pk=live_lease_id)
        if live is not None:
            return live
    with transaction.atomic():
        now = timezone.now()
        if live_lease_id is NOT_READ:
            live = _live_lease(project=project, rater=rater)
            if live is not None:
                return live
        return lease_new(project=project, rater=rater, now=now, rng=rng, membership=membership)


def _live_lease(*, project: Project, rater: User, pk: int | None = None) -> Assignment | None:
    """The rater's oldest live lease (or the one with `pk`, if still live), with its prompt."""
    leases = Assignment.objects.select_related("prompt").filter(
        project=project, rater=rater, status=AssignmentStatus.LEASED, expires_at__gt=timezone.now()
    )
    if pk is not None:
        leases = leases.filter(pk=pk)
    return leases.order_by("id").first()


def lease_new(
    *,
    project: Project,
    rater: User,
    now: datetime,
    rng: random.Random,
    skip: Iterable[int] = (),
    membership: Membership | None = None,
) -> Assignment | None:
    """A new lease: a repeat or a gold prompt at the project's rates, else an open prompt.

    Pass the rater's `membership`: its `queue_frontier` lets the scan start near where the
    rater is; without it the scan starts at the queue's first prompt."""
    if project.repeat_rate and rng.random() < project.repeat_rate:
        repeat = _lease_repeat(project=project, rater=rater, now=now, rng=rng)
        if repeat is not None:
            return repeat
    if project.gold_rate and rng.random() < project.gold_rate:
        gold = _lease_gold(project=project, rater=rater, now=now, rng=rng)
        if gold is not None:
            return gold
    frontier = membership.queue_frontier if membership is not None else 0
    return _lease_open_prompt(
        project=project, rater=rater, now=now, rng=rng, skip=skip, frontier=frontier
    )


def _lease_open_prompt(
    *,
    project: Project,
    rater: User,
    now: datetime,
    rng: random.Random,
    skip: Iterable[int] = (),
    frontier: int = 0,
) -> Assignment | None:
    """The next open prompt, scanned from just behind the rater's frontier; what is left
    further back (or everything, at the end of the queue) by a scan from the start."""
    tried: list[int] = list(skip)
    start = frontier - LOOK_BEHIND_PROMPTS
    for _ in range(LEASE_ATTEMPTS):
        prompt = _lock_next_open_prompt(
            project=project, rater=rater, now=now, skip=tried, after=start
        )
        if prompt is None and start > 0:
            prompt = _lock_next_open_prompt(project=project, rater=rater, now=now, skip=tried)
        if prompt is None:
            return None
        # PostgreSQL: the scan's slot count may predate a lease committed just before the
        # lock was taken, so the lease is written only if a slot is still free, counted
        # again under the lock. SQLite's write transaction is taken up front (IMMEDIATE),
        # so nothing can have changed since the scan.
        lease = _lease_prompt(
            prompt=prompt,
            project=project,
            rater=rater,
            now=now,
            rng=rng,
            only_if_free=database.is_postgresql(),
            from_queue=True,
        )
        if lease is not None:
            return lease
        tried.append(prompt.pk)
    return None


def _lock_next_open_prompt(
    *,
    project: Project,
    rater: User,
    now: datetime,
    skip: Iterable[int],
    after: int = 0,
) -> Prompt | None:
    """Lock the first open prompt with an id above `after` the rater may take, with SKIP
    LOCKED. From just behind the rater's frontier it walks a bounded stretch whatever the
    rater has done; from 0 it walks everything the rater has done that is still open."""
    return queue_sql.lock_next_open_prompt(
        project=project,
        rater_id=rater.pk,
        now=now,
        min_responses=min_responses(project),  # the others wait for generation
        skip=tuple(skip),
        after=after,
    )


def prompt_overlap(*, project: Project, prompt: Prompt) -> int:
    """Rankings a prompt collects: the project's overlap plus any adaptive extra raters."""
    return project.overlap + prompt.extra_raters


def free_slots(*, prompt: Prompt, project: Project, rater: User, now: datetime) -> int:
    """Overlap slots of the prompt still free for the rater, counted now."""
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
            n_responses__gte=min_responses(project),
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
    *,
    prompt: Prompt,
    project: Project,
    rater: User,
    now: datetime,
    rng: random.Random,
    only_if_free: bool = False,
    from_queue: bool = False,
) -> Assignment | None:
    """Lease the locked prompt to the rater; with `only_if_free`, None when its slots were
    all taken meanwhile (counted again under the lock). A lease `from_queue` moves the
    rater's frontier up to the prompt (gold prompts, anywhere in the project, do not)."""
    expires_at = now + timedelta(seconds=project.lease_seconds)
    own_lease_id = getattr(prompt, "own_lease_id", None)
    stale = Assignment.objects.filter(pk=own_lease_id).first() if own_lease_id else None
    if stale is not None:
        # The rater's own expired lease on a prompt that is still free: renew it as it was.
        if only_if_free and free_slots(prompt=prompt, project=project, rater=rater, now=now) <= 0:
            return None
        stale.leased_at, stale.expires_at = now, expires_at
        stale.save(update_fields=["leased_at", "expires_at"])
        if from_queue:
            _frontier_advance(project=project, rater=rater, prompt_id=prompt.pk)
        return stale
    # The responses are read once (by the scan on PostgreSQL): their ids are shuffled here
    # and their texts are the task's payload, which reads them no more.
    rows = getattr(prompt, "response_rows", None)
    if rows is not None:
        prompt_responses_keep(prompt, rows)
    response_ids = [response.pk for response in prompt_responses_load(prompt)]
    rng.shuffle(response_ids)
    lease = Assignment(
        project=project,
        prompt=prompt,
        rater=rater,
        shown_order=response_ids,
        leased_at=now,
        expires_at=expires_at,
    )
    if not only_if_free:
        lease.save(force_insert=True)
        if from_queue:
            _frontier_advance(project=project, rater=rater, prompt_id=prompt.pk)
        return lease
    return queue_sql.insert_lease_if_slot_free(
        lease=lease, cap=prompt_overlap(project=project, prompt=prompt), advance=from_queue
    )


def _frontier_advance(*, project: Project, rater: User, prompt_id: int) -> None:
    Membership.objects.filter(project=project, user=rater, queue_frontier__lt=prompt_id).update(
        queue_frontier=prompt_id
    )
