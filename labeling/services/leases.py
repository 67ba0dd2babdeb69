"""The queue: leasing the next task under the overlap rules, finishing, skipping and
extra raters."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    JSONField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, JSONObject
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from core import db as database
from core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from labeling.models import (
    Assignment,
    AssignmentStatus,
    Membership,
    MemberStatus,
    Project,
    Prompt,
    Response,
)
from labeling.selectors import prompt_responses_keep, prompt_responses_load
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
    now = timezone.now()
    theirs = Assignment.objects.filter(
        project=OuterRef("project_id"), rater=rater, status=AssignmentStatus.LEASED
    )
    membership = (
        Membership.objects.select_related("project")
        .filter(project_id=project_id, user=rater)
        .annotate(
            live_lease_id=Subquery(
                theirs.filter(expires_at__gt=now).order_by("id").values("id")[:1]
            ),
            has_lapsed_reopened=Exists(
                theirs.filter(finished_at__isnull=False, expires_at__lte=now)
            ),
        )
        .order_by("pk")  # not by username: no join with the user table
        .first()
    )
    if membership is None:
        raise NotFound("project not found")
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
    slots_taken = (
        Assignment.objects.filter(prompt=OuterRef("pk"), is_repeat=False)
        .filter(occupied_assignments(now=now))
        .values("prompt")
        .annotate(count=Count("id"))
        .values("count")
    )
    # Scalar subqueries, not EXISTS: each candidate prompt is probed (through the prompt's
    # own few assignments) rather than joined with the rater's whole history.
    done_by_rater = (
        _of_rater_on_prompt(rater).exclude(status=AssignmentStatus.LEASED).values("pk")[:1]
    )
    own_lease = _of_rater_on_prompt(rater).filter(status=AssignmentStatus.LEASED).values("pk")[:1]
    prompts = Prompt.objects.all()
    if database.is_postgresql():
        prompts = prompts.annotate(response_rows=_response_rows())
    if after > 0:
        prompts = prompts.filter(pk__gt=after)
    return (
        prompts.filter(
            project=project,
            is_complete=False,
            is_gold=False,
            archived_at__isnull=True,
            n_responses__gte=min_responses(project),  # the others wait for generation
        )
        .exclude(pk__in=list(skip))
        .alias(
            slots_taken=Coalesce(Subquery(slots_taken), Value(0)),
            done_by_rater=Subquery(done_by_rater),
        )
        .filter(slots_taken__lt=project.overlap + F("extra_raters"), done_by_rater__isnull=True)
        .annotate(own_lease_id=Subquery(own_lease))
        .order_by("id")
        # NO KEY UPDATE: foreign-key checks elsewhere (rankings, consensus rows) take KEY
        # SHARE locks on prompts; a plain FOR UPDATE would skip those prompts as "busy".
        .select_for_update(skip_locked=True, of=("self",), no_key=True)
        .first()
    )


def _of_rater_on_prompt(rater: User) -> QuerySet[Assignment]:
    """The rater's (non-repeat) assignment on the outer query's prompt.

    The rater is compared as `rater_id + 0`, which no index covers: the lookup then goes
    through the prompt's indexes (a prompt has a handful of assignments), never through a
    rater's (a rater may have thousands), whatever the planner's statistics say — with
    statistics from before a rater's history, PostgreSQL would otherwise walk it per probe.
    """
    return (
        Assignment.objects.filter(prompt=OuterRef("pk"), is_repeat=False)
        .alias(rater_key=F("rater_id") + 0)
        .filter(rater_key=rater.pk)
        .order_by()
    )


def _response_rows() -> Subquery:
    """PostgreSQL: the prompt's responses as JSON, read by the scan that locks the prompt."""
    from django.contrib.postgres.aggregates import JSONBAgg

    rows = (
        Response.objects.filter(prompt=OuterRef("pk"))
        .order_by()
        .values("prompt")
        .annotate(
            rows=JSONBAgg(
                JSONObject(id="id", position="position", text="text"), order_by="position"
            )
        )
        .values("rows")
    )
    return Subquery(rows, output_field=JSONField())


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
        if only_if_free and _free_slots(prompt=prompt, project=project, rater=rater, now=now) <= 0:
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
    return _insert_if_slot_free(
        lease=lease, cap=prompt_overlap(project=project, prompt=prompt), advance=from_queue
    )


def _frontier_advance(*, project: Project, rater: User, prompt_id: int) -> None:
    Membership.objects.filter(project=project, user=rater, queue_frontier__lt=prompt_id).update(
        queue_frontier=prompt_id
    )


def _insert_if_slot_free(*, lease: Assignment, cap: int, advance: bool) -> Assignment | None:
    """Insert the lease in one statement that counts the prompt's taken slots first and,
    with `advance`, moves the rater's frontier up to the prompt (PostgreSQL).

    The statement starts after the prompt's row lock was taken, so its snapshot sees every
    lease committed before; it inserts nothing when `cap` slots are taken by other raters.
    """
    taken = (
        Assignment.objects.filter(prompt_id=lease.prompt_id, is_repeat=False)
        .filter(occupied_assignments(now=lease.leased_at))
        .exclude(rater_id=lease.rater_id)
        .values("id")
    )
    taken_sql, taken_params = taken.query.sql_with_params()
    fields = [field for field in Assignment._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)
    values = [field.get_db_prep_save(field.pre_save(lease, True), connection) for field in fields]
    placeholders = ", ".join(["%s"] * len(fields))
    insert = (
        f"INSERT INTO {quote(Assignment._meta.db_table)} ({columns}) "
        f"SELECT {placeholders} WHERE (SELECT COUNT(*) FROM ({taken_sql}) AS taken) < %s "
        f"RETURNING id, prompt_id"
    )
    frontier = (
        f"UPDATE {quote(Membership._meta.db_table)} SET queue_frontier = lease.prompt_id "
        "FROM lease WHERE project_id = %s AND user_id = %s "
        "AND queue_frontier < lease.prompt_id"
    )
    sql = (
        f"WITH lease AS ({insert}), frontier AS ({frontier}) SELECT id FROM lease"
        if advance
        else insert
    )
    params = [*values, *taken_params, cap]
    if advance:
        params += [lease.project_id, lease.rater_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    lease.pk = row[0]
    lease._state.adding, lease._state.db = False, connection.alias
    return lease


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

    One query: the rater's membership status is read with it (a paused rater can't finish).
    """
    rater_status = (
        Membership.objects.filter(project=OuterRef("project_id"), user=rater)
        .order_by()
        .values("status")[:1]
    )
    assignment = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("project", "prompt")
        .annotate(rater_status=Subquery(rater_status))
        .filter(pk=assignment_id, rater=rater)
        .first()
    )
    if assignment is None:
        raise NotFound("assignment not found")
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
    # One statement: the prompt is marked complete when its submitted rankings reach its
    # overlap, counted by the database at the moment of the update.
    submitted = (
        Assignment.objects.filter(
            prompt=OuterRef("pk"), is_repeat=False, status=AssignmentStatus.SUBMITTED
        )
        .values("prompt")
        .annotate(count=Count("id"))
        .values("count")
    )
    Prompt.objects.filter(pk=assignment.prompt_id, is_complete=False).filter(
        GreaterThanOrEqual(
            Coalesce(Subquery(submitted), Value(0)),
            Value(assignment.project.overlap) + F("extra_raters"),
        )
    ).update(is_complete=True)


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
