"""The `red_team` task kind as the registry sees it: next task, rater page, options, and
the agreement run extension."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from authoring.redteam import selectors, services
from authoring.redteam.agreement_runs import EXTENSION, red_team_agreement
from authoring.redteam.options import clean_red_team_options
from authoring.redteam.views import red_team_page
from core.errors import InvalidInput
from labeling.models import Membership, Project, TaskKind
from labeling.task_kinds import TaskKindHandler

__all__ = ["EXTENSION", "RED_TEAM", "red_team_agreement", "target_endpoint_check"]


def red_team_next_task(
    project: Project, rater: User, membership: Membership
) -> dict[str, Any] | None:
    attempt = services.red_team_lease(project=project, rater=rater, membership=membership)
    return None if attempt is None else selectors.red_team_task_payload(attempt)


def briefs_needed(project: Project) -> int:
    return 0  # a brief has no responses: the rater's chat is the work


def target_endpoint_check(options: dict[str, Any], project: Project | None) -> None:
    """The target must be one of the project's own endpoints (so none while it is created)."""
    problem = services.target_endpoint_problem(
        project_id=None if project is None else project.pk,
        endpoint_id=options.get("target_endpoint"),
    )
    if problem is not None:
        raise InvalidInput(problem, field="task_options.target_endpoint")


RED_TEAM = TaskKindHandler(
    kind=TaskKind.RED_TEAM,
    next_task=red_team_next_task,
    rater_page=red_team_page,
    clean_options=clean_red_team_options,
    check_for_project=target_endpoint_check,
    min_responses=briefs_needed,
)
