"""Reads for the labeling app: who may see which project, and queue progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.errors import NotAllowed, NotFound
from labeling.models import (
    Assignment,
    AssignmentStatus,
    AuditEvent,
    Membership,
    Project,
    Prompt,
    Response,
    Role,
)

AnyUser = User | AnonymousUser

LEAD_ROLES = (Role.LEAD,)
DATA_ROLES = (Role.LEAD, Role.ENGINEER)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def projects_for_user(*, user: User) -> QuerySet[Project]:
    if getattr(user, "is_staff", False):
        return Project.objects.filter(staged_for__isnull=True)
    return Project.objects.filter(memberships__user=user).distinct()


def membership_for(*, user: AnyUser, project: Project) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(project=project, user=user).first()


def project_role_for(*, user: AnyUser, project: Project) -> str | None:
    """The effective role: staff act as lead on every project."""
    if getattr(user, "is_staff", False):
        return Role.LEAD
    membership = membership_for(user=user, project=project)
    return membership.role if membership else None


def project_for_user(
    *, user: AnyUser, project_id: int, roles: tuple[str, ...] | None = None
) -> Project:
    """The project if the user may see it (404 otherwise) and holds one of `roles` (403)."""
    project = Project.objects.filter(pk=project_id, staged_for__isnull=True).first()
    if project is None:
        raise NotFound("project not found")
    role = project_role_for(user=user, project=project)
    if role is None:
        raise NotFound("project not found")
    if roles is not None and role not in roles:
        raise NotAllowed(f"this needs the {' or '.join(roles)} role on the project")
    return project


def project_progress(*, project: Project) -> dict[str, int]:
    prompts = Prompt.objects.filter(project=project).aggregate(
        total=Count("id"), complete=Count("id", filter=Q(is_complete=True))
    )
    submitted = Assignment.objects.filter(
        project=project, status=AssignmentStatus.SUBMITTED, is_repeat=False
    ).count()
    return {
        "prompts": prompts["total"],
        "complete_prompts": prompts["complete"],
        "rankings": submitted,
        "rankings_wanted": prompts["total"] * project.overlap,
    }


def rater_done_count(*, project: Project, rater: User) -> int:
    return Assignment.objects.filter(
        project=project, rater=rater, status=AssignmentStatus.SUBMITTED
    ).count()


LOADED_RESPONSES = "loaded_responses"
"""Where a prompt object keeps its responses once read (see `prompt_responses_load`)."""


def prompt_responses_load(prompt: Prompt) -> list[Response]:
    """The prompt's responses (id, position, text) in import order, read once per prompt
    object: a lease reads them to shuffle them, the task payload reuses them."""
    loaded: list[Response] | None = getattr(prompt, LOADED_RESPONSES, None)
    if loaded is None:
        loaded = list(
            Response.objects.filter(prompt=prompt)
            .only("id", "prompt_id", "position", "text")
            .order_by("position")
        )
        setattr(prompt, LOADED_RESPONSES, loaded)
    return loaded


def prompt_responses_keep(prompt: Prompt, rows: list[dict[str, Any]]) -> None:
    """Keep responses already read as rows of {id, position, text} (the lease scan reads
    them with the prompt), so `prompt_responses_load` does not read them again."""
    responses = []
    for row in sorted(rows, key=lambda row: row["position"]):
        response = Response(pk=row["id"], prompt=prompt, position=row["position"], text=row["text"])
        response._state.adding = False
        responses.append(response)
    setattr(prompt, LOADED_RESPONSES, responses)


def task_payload(assignment: Assignment, *, membership: Membership | None = None) -> dict:
    """The task as the rater sees it: responses in shown order, labels A, B, C…; no models.
    Given the rater's membership, it also says whether the guidelines changed since the
    rater last confirmed them."""
    texts = {response.pk: response.text for response in prompt_responses_load(assignment.prompt)}
    return {
        "assignment_id": assignment.pk,
        "prompt": {"id": assignment.prompt_id, "messages": assignment.prompt.messages},
        "responses": [
            {"id": response_id, "label": chr(ord("A") + index), "text": texts[response_id]}
            for index, response_id in enumerate(assignment.shown_order)
        ],
        "allow_ties": assignment.project.allow_ties,
        "expires_at": assignment.expires_at,
        "guidelines_version": assignment.project.guidelines_version,
        "guidelines_changed": bool(membership and membership.needs_guidelines(assignment.project)),
    }


def audit_events(*, project: Project) -> QuerySet[AuditEvent]:
    """The project's audit log, newest first."""
    return AuditEvent.objects.filter(project=project).order_by("-id")


# Queue health ----------------------------------------------------------------------------------

LIVE_LEASES_SHOWN = 50


def queue_health(*, project: Project, now: datetime | None = None) -> dict[str, Any]:
    """How the queue is doing, in six queries whatever the size of the project:
    prompt states (gold and archived prompts left out), throughput over the last hour and
    day, rankings still wanted and the time to collect them at the current pace, live
    leases (oldest first) and each rater's work today (UTC)."""
    now = now or timezone.now()
    open_prompts = Prompt.objects.filter(project=project, is_gold=False, archived_at__isnull=True)
    states = open_prompts.aggregate(
        total=Count("id"),
        complete=Count("id", filter=Q(is_complete=True)),
        wanted=Coalesce(Sum("extra_raters", filter=Q(is_complete=False)), 0),
        incomplete=Count("id", filter=Q(is_complete=False)),
    )
    on_incomplete = Assignment.objects.filter(
        project=project,
        is_repeat=False,
        prompt__in=open_prompts.filter(is_complete=False).values("pk"),
    ).filter(
        Q(status=AssignmentStatus.SUBMITTED)
        | Q(status=AssignmentStatus.LEASED, expires_at__gt=now)
        | Q(status=AssignmentStatus.LEASED, finished_at__isnull=False)
    )
    started = on_incomplete.aggregate(
        prompts=Count("prompt", distinct=True),
        submitted=Count("id", filter=Q(status=AssignmentStatus.SUBMITTED)),
    )
    done = Assignment.objects.filter(
        project=project, status=AssignmentStatus.SUBMITTED, finished_at__gte=now - DAY
    ).aggregate(
        last_hour=Count("id", filter=Q(finished_at__gte=now - HOUR)),
        last_day=Count("id"),
    )
    remaining = max(
        states["incomplete"] * project.overlap + states["wanted"] - started["submitted"], 0
    )
    pace = done["last_hour"] or done["last_day"] / 24
    leases = list(
        Assignment.objects.filter(
            project=project, status=AssignmentStatus.LEASED, expires_at__gt=now
        )
        .select_related("rater")
        .order_by("leased_at")[:LIVE_LEASES_SHOWN]
    )
    return {
        "prompts": states["total"],
        "complete": states["complete"],
        "in_progress": started["prompts"],
        "untouched": states["incomplete"] - started["prompts"],
        "per_hour_last_hour": done["last_hour"],
        "per_hour_last_day": round(done["last_day"] / 24, 1),
        "rankings_remaining": remaining,
        "hours_to_finish": round(remaining / pace, 1) if pace and remaining else None,
        "live_leases": leases,
        "live_lease_count": Assignment.objects.filter(
            project=project, status=AssignmentStatus.LEASED, expires_at__gt=now
        ).count(),
        "raters_today": raters_today(project=project, now=now),
    }


def raters_today(*, project: Project, now: datetime) -> list[dict[str, Any]]:
    """Per rater since midnight UTC: rankings submitted and tasks skipped, busiest first."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (
        Assignment.objects.filter(project=project, finished_at__gte=midnight)
        .values("rater__username")
        .annotate(
            submitted=Count("id", filter=Q(status=AssignmentStatus.SUBMITTED)),
            skipped=Count("id", filter=Q(status=AssignmentStatus.SKIPPED)),
        )
        .order_by("-submitted", "rater__username")
    )
    return [
        {
            "username": row["rater__username"],
            "submitted": row["submitted"],
            "skipped": row["skipped"],
        }
        for row in rows
    ]
