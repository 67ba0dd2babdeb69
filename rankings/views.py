"""Browser pages for rankings: the rater's ranking page, its submit and skip actions.

With htmx the actions answer with the `task` fragment of rankings/rate.html (the next task,
or the current one with a message); without JavaScript they redirect back to the page.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.errors import Conflict, InvalidInput, NotAllowed, NotFound, RanklabError
from labeling.models import Assignment, AssignmentStatus, Project
from rankings import services
from rankings.forms import RankingForm, SkipForm, first_error


class RaterRequest(HttpRequest):
    """What login_required and django-htmx's middleware guarantee on these views."""

    htmx: HtmxDetails
    user: User


@login_required
@require_GET
def rate(request: RaterRequest, project_id: int) -> HttpResponse:
    try:
        project = labeling_selectors.project_for_user(user=request.user, project_id=project_id)
    except NotFound as error:
        raise Http404(error.message) from None
    return _render_next_task(request, project)


@login_required
@require_POST
def submit(request: RaterRequest, assignment_id: int) -> HttpResponse:
    assignment = _assignment_for_rater(request, assignment_id)
    project = assignment.project
    form = RankingForm(request.POST, shown_ids=assignment.shown_order)
    try:
        if not form.is_valid():
            _raise_invalid(form)
        services.ranking_submit(
            assignment_id=assignment.pk,
            rater=request.user,
            ranking=form.cleaned_data["ranking"],
            rationale=form.cleaned_data["rationale"],
            seconds=form.cleaned_data["seconds"],
        )
    except RanklabError as error:
        return _render_after_error(request, project, assignment, error)
    if not request.htmx:
        messages.success(request, "Ranking saved.")
        return redirect("rankings:rate", project_id=project.pk)
    return _render_next_task(request, project, notice="Ranking saved.")


@login_required
@require_POST
def skip(request: RaterRequest, assignment_id: int) -> HttpResponse:
    assignment = _assignment_for_rater(request, assignment_id)
    project = assignment.project
    form = SkipForm(request.POST)
    try:
        if not form.is_valid():
            _raise_invalid(form)
        labeling_services.assignment_skip(
            assignment_id=assignment.pk, rater=request.user, reason=form.cleaned_data["reason"]
        )
    except RanklabError as error:
        return _render_after_error(request, project, assignment, error)
    if not request.htmx:
        messages.info(request, "Task skipped.")
        return redirect("rankings:rate", project_id=project.pk)
    return _render_next_task(request, project, notice="Task skipped.")


def _raise_invalid(form: RankingForm | SkipForm) -> None:
    raise InvalidInput(first_error(form))


def _assignment_for_rater(request: RaterRequest, assignment_id: int) -> Assignment:
    try:
        return labeling_services.assignment_for_rater(
            assignment_id=assignment_id, rater=request.user
        )
    except NotFound as error:
        raise Http404(error.message) from None


def _render_after_error(
    request: RaterRequest, project: Project, assignment: Assignment, error: RanklabError
) -> HttpResponse:
    """A conflict moves on to the next task; bad input keeps the rater on the current one."""
    if not request.htmx:
        messages.error(request, error.message)
        return redirect("rankings:rate", project_id=project.pk)
    # 409 and 422 (not 400/403, which django-htmx's debug script takes over as error pages)
    # are swapped into the task by rank.js.
    status = 409 if isinstance(error, Conflict) else 422
    if status == 409 or assignment.status != AssignmentStatus.LEASED:
        return _render_next_task(request, project, error=error.message, status=status)
    return _render_task(request, project, assignment=assignment, error=error.message, status=status)


def _render_next_task(
    request: RaterRequest,
    project: Project,
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    try:
        assignment = labeling_services.lease_next_assignment(project=project, rater=request.user)
    except NotFound as not_member:
        raise Http404(not_member.message) from None
    except NotAllowed as refused:
        # Only the page itself answers 403; after an action the action's own status stands.
        return _render_task(
            request,
            project,
            assignment=None,
            notice=notice,
            error=error,
            paused=refused.message,
            status=status if notice or error else refused.status_code,
        )
    return _render_task(
        request, project, assignment=assignment, notice=notice, error=error, status=status
    )


def _render_task(
    request: RaterRequest,
    project: Project,
    *,
    assignment: Assignment | None,
    notice: str = "",
    error: str = "",
    paused: str = "",
    status: int = 200,
) -> HttpResponse:
    if assignment is not None and assignment.project_id == project.pk:
        assignment.project = project
    context = {
        "project": project,
        "assignment": assignment,
        "task": _task(assignment) if assignment is not None else None,
        "done_count": labeling_selectors.rater_done_count(project=project, rater=request.user),
        "notice": notice,
        "error": error,
        "paused": paused,
    }
    template = "rankings/rate.html#task" if request.htmx else "rankings/rate.html"
    return render(request, template, context, status=status)


def _task(assignment: Assignment) -> dict:
    """The task as the API serves it, plus the no-JavaScript rank field of each response."""
    task = labeling_selectors.task_payload(assignment)
    form = RankingForm(shown_ids=assignment.shown_order)
    for response in task["responses"]:
        response["rank_field"] = form[f"rank_{response['id']}"]
    task["form"] = form
    return task
