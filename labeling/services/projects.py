"""Projects, members, invites and sign-up."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from labeling.models import (
    Assignment,
    AssignmentStatus,
    AuditAction,
    Invite,
    Membership,
    MemberStatus,
    Project,
    Prompt,
    Role,
)
from labeling.services.audit import audit_record, field_changes, field_values

# Projects and members -------------------------------------------------------------------


@transaction.atomic
def project_create(*, creator: User, name: str, **fields: Any) -> Project:
    project = Project.objects.create(name=name, created_by=creator, **fields)
    Membership.objects.create(project=project, user=creator, role=Role.LEAD)
    audit_record(action=AuditAction.PROJECT_CREATE, actor=creator, project=project, target=name)
    return project


@transaction.atomic
def project_update(*, project: Project, by: User | None = None, **fields: Any) -> Project:
    """Save changed settings; a new overlap takes effect at once (raising it reopens complete
    prompts, lowering it closes prompts that have enough rankings); new guidelines get a
    new version, which raters must read before their next task. The audit log gets each
    changed setting, old and new (`by` None: the system changed it)."""
    # Read from the database: a bound ModelForm has already written the new values onto
    # the instance it was given.
    locked = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
    before = field_values(locked, fields)
    changes = field_changes(before, fields)
    if "task_kind" in changes and Assignment.objects.filter(project=project).exists():
        raise Conflict(
            "the task kind can't change once raters have worked on the project",
            field="task_kind",
            code="task_kind_locked",
        )
    if "guidelines" in changes:
        fields = {
            **fields,
            "guidelines_version": locked.guidelines_version + 1,
            "guidelines_updated_at": timezone.now(),
        }
        changes["guidelines_version"] = {
            "old": locked.guidelines_version,
            "new": fields["guidelines_version"],
        }
    for name, value in fields.items():
        setattr(project, name, value)
    project.save(update_fields=list(fields))
    if "overlap" in changes:
        prompts_completion_refresh(project=project)
    if changes:
        audit_record(
            action=AuditAction.PROJECT_SETTINGS, actor=by, project=project, changes=changes
        )
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


@transaction.atomic
def member_update(
    *,
    project: Project,
    username: str,
    by: User | None = None,
    role: str | None = None,
    status: str | None = None,
    excluded: bool | None = None,
) -> Membership:
    """Change a member's role, status or exclusion; the audit log gets what changed.

    The membership row is locked first: callers that also touch the rater's flags lock
    the membership before any flag, so two lead actions on one rater never deadlock."""
    refuse_acting_on_oneself(by=by, username=username, status=status, excluded=excluded)
    membership = membership_lock(project=project, username=username)
    wanted = {
        name: value
        for name, value in (("role", role), ("status", status), ("excluded", excluded))
        if value is not None
    }
    changes = field_changes(field_values(membership, wanted), wanted)
    for name, value in wanted.items():
        setattr(membership, name, value)
    if changes:
        membership.save(update_fields=list(changes))
        audit_record(
            action=AuditAction.MEMBER_UPDATE,
            actor=by,
            project=project,
            target=username,
            changes=changes,
        )
    if status == MemberStatus.PAUSED:
        assignments_release_for_rater(project=project, rater=membership.user)
    return membership


def refuse_acting_on_oneself(
    *, by: User | None, username: str, status: str | None, excluded: bool | None
) -> None:
    """A lead cannot pause or exclude themselves (they would lose the queue and their own
    rankings without anyone noticing); resuming or re-including oneself stays allowed."""
    if by is None or by.get_username() != username:
        return
    if status == MemberStatus.PAUSED:
        raise InvalidInput("you cannot pause yourself", field="username")
    if excluded:
        raise InvalidInput("you cannot exclude your own rankings", field="username")


def membership_lock(*, project: Project, username: str) -> Membership:
    """The member's row, locked for the rest of the transaction (NotFound if not a member)."""
    membership = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(project=project, user__username=username)
        .first()
    )
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this project", field="username")
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
    with transaction.atomic():
        invite = Invite.objects.create(
            project=project, created_by=created_by, role=role, max_uses=max_uses
        )
        audit_record(
            action=AuditAction.INVITE_CREATE,
            actor=created_by,
            project=project,
            target=f"{role} invite {invite.code[:6]}…",
            changes={"role": role, "max_uses": max_uses, "expires_at": invite.expires_at},
        )
    return invite


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
