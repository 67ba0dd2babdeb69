"""Red-team pages: the rater's chat (served by the task-kind registry at /rate/<id>/) and
the lead's page of attempts, label agreement and the loop to ranking."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from authoring.redteam import selectors, services
from authoring.redteam.options import red_team_options
from core.auth import signed_in_user
from core.errors import Conflict
from labeling.models import Membership, Project, TaskKind
from labeling.views import lead_project_or_error
from rankings.rating.page import RaterRequest, progress

RATER_TEMPLATE = "redteam/rate.html"
LEAD_TEMPLATE = "redteam/attempts.html"


def red_team_page(request: HttpRequest, project: Project, membership: Membership) -> HttpResponse:
    """The rater's chat with the target model on their leased brief, then the label form."""
    rater_request = cast(RaterRequest, request)
    context: dict[str, Any] = {
        "project": project,
        "progress": progress(rater_request, project),
        "options": red_team_options(project),
    }
    try:
        services.target_endpoint(project)
    except Conflict as problem:
        context.update(state="no_target", problem=problem.message)
        return render(request, RATER_TEMPLATE, context)
    attempt = services.red_team_lease(
        project=project, rater=rater_request.user, membership=membership
    )
    if attempt is None:
        context["state"] = "empty"
        return render(request, RATER_TEMPLATE, context)
    context.update(
        state="task",
        attempt=attempt,
        task=selectors.red_team_task_payload(attempt),
        urls={
            "turns": reverse("api-red-team-turns", args=[attempt.assignment_id]),
            "submit": reverse("api-red-team-submit", args=[attempt.assignment_id]),
            "skip": reverse("api-skip", args=[attempt.assignment_id]),
            "flag": reverse("api-red-team-flag", args=[attempt.assignment_id, 0]),
        },
    )
    return render(request, RATER_TEMPLATE, context)


@login_required
@require_GET
def attempts_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """The lead's view: label agreement from the newest run, and the attempts."""
    project = lead_project_or_error(request, project_id)
    signed_in_user(request)
    attempts = list(selectors.attempts_for_project(project=project)[: selectors.ATTEMPTS_PAGE])
    context = {
        "project": project,
        "is_red_team": project.task_kind == TaskKind.RED_TEAM,
        "agreement": selectors.red_team_agreement_latest(project=project),
        "attempts": [selectors.attempt_payload(attempt) for attempt in attempts],
        "categories": red_team_options(project).categories,
        "severities": range(5),
    }
    return render(request, LEAD_TEMPLATE, context)
