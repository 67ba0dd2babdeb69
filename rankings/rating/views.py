"""The rater's ranking page and its actions: submit, skip, undo, renew, guidelines seen.

The page holds the current task and the one after it, both leased; rank.js swaps the next
task in the moment the rater submits and sends the submit in the background, retrying it
on network errors (an identical resubmit returns the stored ranking, so nothing doubles).
The actions answer JSON to the page (`Accept: application/json`, see `page.py`); a plain
form post (no JavaScript) is answered with a redirect back to the page, which then shows
the next task. Which task is served is `services.task_for_rater`, as for the API.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.errors import Conflict, InvalidInput, NotAllowed, NotFound, RanklabError
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import Assignment, Membership, MemberStatus, Project
from labeling.task_kinds import task_kind_handler
from rankings.rating import services as rating_services
from rankings.rating.forms import RankingForm, SkipForm, TaskRules, form_problems
from rankings.rating.page import (
    PAUSED_MESSAGE,
    TEMPLATE,
    RaterRequest,
    error_answer,
    int_or_none,
    lower_first,
    next_answer,
    progress,
    sentence,
    task_context,
    task_json,
    wants_json,
)

# Page -----------------------------------------------------------------------------------------


@login_required
@require_GET
def rate(request: RaterRequest, project_id: int) -> HttpResponse:
    project = _project_or_404(request, project_id)
    membership = labeling_selectors.membership_for(user=request.user, project=project)
    if membership is None:
        raise Http404("project not found")
    context: dict[str, Any] = {"project": project, "undo_seconds": rating_services.UNDO_SECONDS}
    if membership.status == MemberStatus.PAUSED:
        return _render_paused_page(request, context)
    if membership.needs_guidelines(project):
        context.update(state="guidelines", progress=progress(request, project))
        return render(request, TEMPLATE, context)
    return task_kind_handler(project.task_kind).rater_page(request, project, membership)


def rank_page(request: HttpRequest, project: Project, membership: Membership) -> HttpResponse:
    """The `rank` kind's rater page: the current task and the one to preload."""
    request = cast(RaterRequest, request)
    context: dict[str, Any] = {"project": project, "undo_seconds": rating_services.UNDO_SECONDS}
    try:
        tasks = rating_services.task_for_rater(
            project=project, rater=request.user, membership=membership, with_following=True
        )
    except NotAllowed:
        return _render_paused_page(request, context)
    current, following = tasks.current, tasks.following
    context["progress"] = progress(request, project)
    context["state"] = "task" if current else "empty"
    context["task"] = task_context(current, project) if current else None
    context["following"] = task_context(following, project) if following else None
    return render(request, TEMPLATE, context)


def _render_paused_page(request: RaterRequest, context: dict[str, Any]) -> HttpResponse:
    context.update(
        state="paused", paused=PAUSED_MESSAGE, progress=progress(request, context["project"])
    )
    return render(request, TEMPLATE, context, status=403)


@login_required
@require_POST
def guidelines_seen(request: RaterRequest, project_id: int) -> HttpResponse:
    project = _project_or_404(request, project_id)
    try:
        labeling_services.membership_mark_guidelines_seen(project=project, user=request.user)
    except NotFound as error:
        raise Http404(error.message) from None
    return redirect("rankings:rate", project_id=project.pk)


# Actions --------------------------------------------------------------------------------------


@login_required
@require_POST
def submit(request: RaterRequest, assignment_id: int) -> HttpResponse:
    assignment = _assignment_for_rater(request, assignment_id)
    if isinstance(assignment, HttpResponse):
        return assignment
    project = assignment.project
    form = RankingForm(request.POST, rules=TaskRules.for_assignment(assignment))
    try:
        if not form.is_valid():
            raise InvalidInput(" ".join(form_problems(form)))
        rating_services.ranking_submit(
            assignment_id=assignment.pk,
            rater=request.user,
            ranking=form.cleaned_data["groups"],
            ratings=form.cleaned_data["ratings"],
            rationale=form.cleaned_data["rationale"],
            seconds=form.cleaned_data["seconds"],
            strength=form.cleaned_data["strength"],
        )
    except RanklabError as error:
        return _answer_error(request, project, assignment, error, form_problems(form))
    if not wants_json(request):
        messages.success(request, "Ranking saved.")
        return redirect("rankings:rate", project_id=project.pk)
    return next_answer(request, project, message="Ranking saved.", undo=assignment)


@login_required
@require_POST
def skip(request: RaterRequest, assignment_id: int) -> HttpResponse:
    assignment = _assignment_for_rater(request, assignment_id)
    if isinstance(assignment, HttpResponse):
        return assignment
    project = assignment.project
    form = SkipForm(request.POST)
    try:
        if not form.is_valid():
            raise InvalidInput(" ".join(form_problems(form)), field="reason")
        labeling_services.assignment_skip(
            assignment_id=assignment.pk, rater=request.user, reason=form.cleaned_data["reason"]
        )
    except RanklabError as error:
        return _answer_error(request, project, assignment, error, form_problems(form))
    if not wants_json(request):
        messages.info(request, "Task skipped.")
        return redirect("rankings:rate", project_id=project.pk)
    return next_answer(request, project, message="Task skipped.")


@login_required
@require_POST
def undo(request: RaterRequest, assignment_id: int) -> HttpResponse:
    """Reopen the task just submitted; the page shows it again with the answer filled in."""
    assignment = _assignment_for_rater(request, assignment_id)
    if isinstance(assignment, HttpResponse):
        return assignment
    project = assignment.project
    try:
        rating_services.ranking_undo(assignment_id=assignment.pk, rater=request.user)
    except RanklabError as error:
        if not wants_json(request):
            messages.error(request, sentence(error.message))
            return redirect("rankings:rate", project_id=project.pk)
        return error_answer(error, project=project)
    if not wants_json(request):
        messages.info(request, "Task reopened: your answer is filled in; change it and submit.")
        return redirect("rankings:rate", project_id=project.pk)
    assignment.refresh_from_db()
    return JsonResponse(
        {
            "ok": True,
            "message": "Task reopened: change your answer and submit again.",
            "progress": progress(request, project),
            "current": task_json(request, assignment, project, html=True),
        }
    )


@login_required
@require_POST
def renew(request: RaterRequest, assignment_id: int) -> HttpResponse:
    """Extend the lease while the rater works (and the preloaded task's, given as `also`)."""
    try:
        assignment = labeling_services.assignment_renew(
            assignment_id=assignment_id, rater=request.user
        )
    except NotAllowed as error:
        project = Assignment.objects.select_related("project").get(pk=assignment_id).project
        return error_answer(error, project=project)
    except Conflict as error:
        taken = error.code == "lease_taken"
        detail = "This task was given to another rater after your time on it ran out."
        return error_answer(error, detail=detail if taken else "")
    except RanklabError as error:
        return error_answer(error)
    data: dict[str, Any] = {
        "ok": True,
        "expires_in": rating_services.lease_seconds_left(assignment),
    }
    also_id = int_or_none(request.POST.get("also"))
    if also_id is not None and also_id != assignment.pk:
        try:
            also = labeling_services.assignment_renew(assignment_id=also_id, rater=request.user)
        except RanklabError:
            data["also"] = {"assignment_id": also_id, "expires_in": None}
        else:
            data["also"] = {
                "assignment_id": also_id,
                "expires_in": rating_services.lease_seconds_left(also),
            }
    return JsonResponse(data)


def _answer_error(
    request: RaterRequest,
    project: Project,
    assignment: Assignment,
    error: RanklabError,
    problems: list[str],
) -> HttpResponse:
    """Bad input keeps the rater on the task; a conflict moves on; paused stops."""
    message = sentence(error.message)
    if isinstance(error, Conflict):
        message = f"Your answer to the previous task was not saved: {lower_first(message)}"
    if not wants_json(request):
        messages.error(request, message)
        return redirect("rankings:rate", project_id=project.pk)
    if isinstance(error, InvalidInput):
        return error_answer(
            error, detail=message, problems=problems or [message], assignment_id=assignment.pk
        )
    if isinstance(error, Conflict):
        return next_answer(request, project, message=message, error=error)
    return error_answer(error, project=project)


# Helpers --------------------------------------------------------------------------------------


def _project_or_404(request: RaterRequest, project_id: int) -> Project:
    try:
        return labeling_selectors.project_for_user(user=request.user, project_id=project_id)
    except NotFound as error:
        raise Http404(error.message) from None


def _assignment_for_rater(request: RaterRequest, assignment_id: int) -> Assignment | HttpResponse:
    """The rater's assignment; when it is not theirs, a 404 (in the error shape for JSON)."""
    try:
        return labeling_services.assignment_for_rater(
            assignment_id=assignment_id, rater=request.user
        )
    except NotFound as error:
        if wants_json(request):
            return error_answer(error)
        raise Http404(error.message) from None
