"""Reads for the labeling app: who may see which project, and queue progress."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q, QuerySet

from core.errors import NotAllowed, NotFound
from labeling.models import Assignment, AssignmentStatus, Membership, Project, Prompt, Role

AnyUser = User | AnonymousUser

LEAD_ROLES = (Role.LEAD,)
DATA_ROLES = (Role.LEAD, Role.ENGINEER)


def projects_for_user(*, user: User) -> QuerySet[Project]:
    if getattr(user, "is_staff", False):
        return Project.objects.all()
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
    project = Project.objects.filter(pk=project_id).first()
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


def task_payload(assignment: Assignment) -> dict:
    """The task as the rater sees it: responses in shown order, labels A, B, C…; no models."""
    texts = dict(assignment.prompt.responses.values_list("id", "text"))
    return {
        "assignment_id": assignment.pk,
        "prompt": {"id": assignment.prompt_id, "messages": assignment.prompt.messages},
        "responses": [
            {"id": response_id, "label": chr(ord("A") + index), "text": texts[response_id]}
            for index, response_id in enumerate(assignment.shown_order)
        ],
        "allow_ties": assignment.project.allow_ties,
        "expires_at": assignment.expires_at,
    }
