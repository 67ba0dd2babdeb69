"""Writes for the labeling app: projects, members, invites, imports and task leases."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core import db
from core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from labeling.importing import PromptRecord, parse_import_body, validate_records
from labeling.models import (
    Assignment,
    AssignmentStatus,
    Invite,
    Membership,
    MemberStatus,
    Project,
    Prompt,
    Response,
    Role,
)

IMPORT_BATCH_SIZE = 2000
ANALYZE_AFTER_ROWS = 1000
LEASE_ATTEMPTS = 8


# Projects and members -------------------------------------------------------------------


@transaction.atomic
def project_create(*, creator: User, name: str, **fields: Any) -> Project:
    project = Project.objects.create(name=name, created_by=creator, **fields)
    Membership.objects.create(project=project, user=creator, role=Role.LEAD)
    return project


@transaction.atomic
def project_update(*, project: Project, **fields: Any) -> Project:
    """Save changed settings; a new overlap takes effect at once (raising it reopens complete
    prompts, lowering it closes prompts that have enough rankings)."""
    # Read from the database: a bound ModelForm has already written the new values onto
    # the instance it was given.
    overlap_before = Project.objects.filter(pk=project.pk).values_list("overlap", flat=True).get()
    for name, value in fields.items():
        setattr(project, name, value)
    project.save(update_fields=list(fields))
    if project.overlap != overlap_before:
        prompts_completion_refresh(project=project)
    return project


def prompts_completion_refresh(*, project: Project) -> int:
    """Recompute `is_complete` for every non-gold prompt of the project in two UPDATEs;
    returns how many prompts changed state."""
    submitted = (
        Assignment.objects.filter(
            prompt=OuterRef("pk"), is_repeat=False, status=AssignmentStatus.SUBMITTED
        )
        .order_by()
        .values("prompt")
        .annotate(count=Count("id"))
        .values("count")
    )
    counted = Prompt.objects.filter(project=project, is_gold=False).annotate(
        submitted=Coalesce(Subquery(submitted), Value(0)),
        wanted=Value(project.overlap) + F("extra_raters"),
    )
    closed = Prompt.objects.filter(
        pk__in=counted.filter(is_complete=False, submitted__gte=F("wanted")).values("pk")
    ).update(is_complete=True)
    reopened = Prompt.objects.filter(
        pk__in=counted.filter(is_complete=True, submitted__lt=F("wanted")).values("pk")
    ).update(is_complete=False)
    return closed + reopened


def member_update(
    *,
    project: Project,
    username: str,
    role: str | None = None,
    status: str | None = None,
    excluded: bool | None = None,
) -> Membership:
    membership = (
        Membership.objects.select_related("user")
        .filter(project=project, user__username=username)
        .first()
    )
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this project", field="username")
    changed = []
    for name, value in (("role", role), ("status", status), ("excluded", excluded)):
        if value is not None:
            setattr(membership, name, value)
            changed.append(name)
    if changed:
        membership.save(update_fields=changed)
    if status == MemberStatus.PAUSED:
        assignments_release_for_rater(project=project, rater=membership.user)
    return membership


def assignments_release_for_rater(*, project: Project, rater: User) -> int:
    """Return a paused rater's live leases to the pool by expiring them now."""
    now = timezone.now()
    return Assignment.objects.filter(
        project=project,
        rater=rater,
        status=AssignmentStatus.LEASED,
        expires_at__gt=now,
        leased_at__lt=now,
    ).update(expires_at=now)


# Invites and signup ------------------------------------------------------------------------


def invite_create(
    *, project: Project, created_by: User, role: str = Role.RATER, max_uses: int | None = None
) -> Invite:
    if role not in Role.values:
        raise InvalidInput(f"role must be one of {Role.values}", field="role")
    return Invite.objects.create(
        project=project, created_by=created_by, role=role, max_uses=max_uses
    )


def invite_usable(*, code: str) -> Invite:
    invite = Invite.objects.select_related("project").filter(code=code).first()
    if invite is None or not invite.is_usable():
        raise InvalidInput("this invite code is unknown or has expired", field="invite_code")
    return invite


@transaction.atomic
def invite_accept(*, code: str, user: User) -> Membership:
    invite = invite_usable(code=code)
    Invite.objects.filter(pk=invite.pk).update(uses=F("uses") + 1)
    membership, _ = Membership.objects.get_or_create(
        project=invite.project, user=user, defaults={"role": invite.role}
    )
    return membership


USERNAME_RULE = "1 to 150 letters, digits and @ . + - _ (no spaces, slashes or control marks)"


def username_validate(username: str) -> None:
    """Usernames appear in URLs, pages and exports: Django's rule (letters, digits, @.+-_),
    which also keeps out slashes, spaces, control and bidi-override characters."""
    if not username or len(username) > 150:
        raise InvalidInput(f"username must be {USERNAME_RULE}", field="username")
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError as error:
        raise InvalidInput(f"username must be {USERNAME_RULE}", field="username") from error


@transaction.atomic
def user_signup_with_invite(*, invite_code: str, username: str, password: str) -> User:
    invite_usable(code=invite_code)
    User = get_user_model()
    username_validate(username)
    if User.objects.filter(username__iexact=username).exists():
        raise InvalidInput("this username is taken", field="username")
    user = User(username=username)
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise InvalidInput(" ".join(error.messages), field="password") from error
    user.set_password(password)
    try:
        user.save()
    except IntegrityError as error:
        raise InvalidInput("this username is taken", field="username") from error
    invite_accept(code=invite_code, user=user)
    return user


# Import ---------------------------------------------------------------------------------------


def prompts_import(*, project: Project, raw: bytes | str) -> list[int]:
    """Validate the whole payload, then write it in one transaction: all or nothing."""
    records = validate_records(parse_import_body(raw))
    return prompts_create(project=project, records=records)


@transaction.atomic
def prompts_create(*, project: Project, records: list[PromptRecord]) -> list[int]:
    """Insert prompts with their responses and gold rankings; returns the new prompt ids."""
    _refuse_existing_external_ids(project=project, records=records)
    if db.is_postgresql():
        return _prompts_copy(project=project, records=records)
    return _prompts_bulk_create(project=project, records=records)


def _prompts_bulk_create(*, project: Project, records: list[PromptRecord]) -> list[int]:
    """The portable path: prompts, then their responses and gold rankings, batch by batch."""
    created: list[int] = []
    for start in range(0, len(records), IMPORT_BATCH_SIZE):
        batch = records[start : start + IMPORT_BATCH_SIZE]
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(
                    project=project,
                    external_id=record.external_id,
                    messages=record.messages,
                    metadata=record.metadata,
                )
                for record in batch
            ]
        )
        responses = Response.objects.bulk_create(
            [
                Response(
                    prompt=prompt,
                    position=position,
                    external_id=item.external_id,
                    text=item.text,
                    model_name=item.model,
                    metadata=item.metadata,
                )
                for prompt, record in zip(prompts, batch, strict=True)
                for position, item in enumerate(record.responses)
            ]
        )
        _store_gold_rankings(prompts=prompts, records=batch, responses=responses)
        created.extend(prompt.pk for prompt in prompts)
    return created


def _prompts_copy(*, project: Project, records: list[PromptRecord]) -> list[int]:
    """PostgreSQL path: ids reserved from the sequences, rows streamed with COPY."""
    prompt_ids = db.reserve_ids(Prompt, len(records))
    response_ids = iter(db.reserve_ids(Response, sum(len(r.responses) for r in records)))
    now = timezone.now()
    prompt_rows, response_rows = [], []
    for prompt_id, record in zip(prompt_ids, records, strict=True):
        id_of_position = {}
        for position, item in enumerate(record.responses):
            response_id = next(response_ids)
            id_of_position[position] = response_id
            response_rows.append(
                (response_id, prompt_id, position, item.external_id, item.text, item.model,
                 item.metadata)
            )  # fmt: skip
        gold = (
            [[id_of_position[position] for position in group] for group in record.gold_ranking]
            if record.gold_ranking is not None
            else None
        )
        prompt_rows.append(
            (prompt_id, project.pk, record.external_id, record.messages, record.metadata, gold,
             gold is not None, False, 0, "", now)
        )  # fmt: skip
    db.copy_rows(
        Prompt,
        ["id", "project", "external_id", "messages", "metadata", "gold_ranking", "is_gold",
         "is_complete", "extra_raters", "extra_reason", "created_at"],
        prompt_rows,
    )  # fmt: skip
    db.copy_rows(
        Response,
        ["id", "prompt", "position", "external_id", "text", "model_name", "metadata"],
        response_rows,
    )
    if len(prompt_rows) >= ANALYZE_AFTER_ROWS:
        # Fresh statistics keep the queue scan on its index right after a big import.
        db.analyze(Prompt, Response)
    return prompt_ids


def _refuse_existing_external_ids(*, project: Project, records: list[PromptRecord]) -> None:
    wanted = {record.external_id: record.line for record in records if record.external_id}
    if not wanted:
        return
    existing = set(
        Prompt.objects.filter(project=project, external_id__in=list(wanted)).values_list(
            "external_id", flat=True
        )
    )
    if existing:
        first = min(existing, key=lambda external_id: wanted[external_id])
        raise InvalidInput(
            f"line {wanted[first]}: external_id: {first!r} already exists in this project",
            field="external_id",
        )


def _store_gold_rankings(
    *, prompts: list[Prompt], records: list[PromptRecord], responses: list[Response]
) -> None:
    ids_by_prompt: dict[int, dict[int, int]] = {}
    for response in responses:
        ids_by_prompt.setdefault(response.prompt_id, {})[response.position] = response.pk
    gold_prompts = []
    for prompt, record in zip(prompts, records, strict=True):
        if record.gold_ranking is None:
            continue
        id_of = ids_by_prompt[prompt.pk]
        prompt.gold_ranking = [
            [id_of[position] for position in group] for group in record.gold_ranking
        ]
        prompt.is_gold = True
        gold_prompts.append(prompt)
    if gold_prompts:
        Prompt.objects.bulk_update(gold_prompts, ["gold_ranking", "is_gold"])


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
        return _lease_new(project=project, rater=rater, now=now, rng=rng)


def _lease_new(
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
        Prompt.objects.filter(project=project, is_complete=False, is_gold=False)
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
        Prompt.objects.filter(project=project, is_gold=True)
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


# Rater page: the following task, lease renewal, reopening for undo, progress -----------------
# The browser page keeps the task after the current one leased and rendered, so submit → next
# is a swap in the page; it renews the lease while the rater is active, and can reopen the
# task just submitted (undo) without ever deleting the ranking.


def lease_following_assignment(
    *, project: Project, rater: User, current_id: int, rng: random.Random | None = None
) -> Assignment | None:
    """The task after the rater's current one, leased now so the page can preload it.

    A live lease other than the current one is returned first, so a rater holds at most one
    task ahead; otherwise a new lease is chosen like `lease_next_assignment` does, never on
    a prompt the rater already holds.
    """
    require_active_rater(project=project, rater=rater)
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
        return _lease_new(project=project, rater=rater, now=now, rng=rng, skip=held_prompts)


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
        Prompt.objects.filter(project=project, is_complete=False, is_gold=False)
        .exclude(Exists(finished_by_rater))
        .count()
    )
    return {"done_today": done_today, "left": left}


# Gold prompts -------------------------------------------------------------------------------


def prompt_for_lead(*, project: Project, prompt_ref: str | int) -> Prompt:
    """A project's prompt by id or by external id."""
    prompts = Prompt.objects.filter(project=project)
    text = str(prompt_ref).strip()
    prompt = prompts.filter(external_id=text).first() if text else None
    if prompt is None and text.isdigit():
        prompt = prompts.filter(pk=int(text)).first()
    if prompt is None:
        raise NotFound(f"no prompt {text!r} in this project", field="prompt")
    return prompt


def gold_ranking_from_labels(*, prompt: Prompt, text: str) -> list[list[int]]:
    """Read "A > B = C > D" (letters in import order) as tie groups of response ids."""
    ids = list(prompt.responses.order_by("position").values_list("id", flat=True))
    groups: list[list[int]] = []
    for part in text.replace(" ", "").upper().split(">"):
        group = []
        for label in part.split("="):
            index = ord(label) - ord("A") if len(label) == 1 else -1
            if not 0 <= index < len(ids):
                raise InvalidInput(
                    f"{label or '(empty)'!s} is not a response label A to {chr(64 + len(ids))}",
                    field="gold_ranking",
                )
            group.append(ids[index])
        groups.append(group)
    return groups


def prompt_set_gold(
    *, project: Project, prompt: Prompt, gold_ranking: list[list[int]] | None
) -> Prompt:
    """Mark a prompt as gold with its reference ranking, or (None) make it normal again.

    Gold prompts leave the normal queue and are served at the project's gold rate.
    """
    if prompt.project_id != project.pk:
        raise NotFound("prompt not found", field="prompt")
    if gold_ranking is None:
        prompt.gold_ranking, prompt.is_gold = None, False
    else:
        prompt.gold_ranking, prompt.is_gold = _clean_gold_groups(prompt, gold_ranking), True
    prompt.save(update_fields=["gold_ranking", "is_gold"])
    return prompt


def _clean_gold_groups(prompt: Prompt, raw: object) -> list[list[int]]:
    ids = set(prompt.responses.values_list("id", flat=True))
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(
            "gold_ranking: must be a non-empty list of tie groups", field="gold_ranking"
        )
    groups: list[list[int]] = []
    seen: set[int] = set()
    for index, group in enumerate(raw):
        members = group if isinstance(group, list) else [group]
        if not members:
            raise InvalidInput(f"gold_ranking[{index}]: is an empty group", field="gold_ranking")
        for member in members:
            if isinstance(member, bool) or not isinstance(member, int) or member not in ids:
                raise InvalidInput(
                    f"gold_ranking[{index}]: {member!r} is not a response of this prompt",
                    field="gold_ranking",
                )
            if member in seen:
                raise InvalidInput(
                    f"gold_ranking[{index}]: response {member} appears twice", field="gold_ranking"
                )
            seen.add(member)
        groups.append(list(members))
    if seen != ids:
        raise InvalidInput(
            "gold_ranking: must place every response exactly once", field="gold_ranking"
        )
    return groups
