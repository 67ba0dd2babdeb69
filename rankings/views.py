"""The rater's ranking page and its actions: submit, skip, undo, renew, guidelines seen.

The page holds the current task and the one after it, both leased; rank.js swaps the next
task in the moment the rater submits and sends the submit in the background, retrying it
on network errors (an identical resubmit returns the stored ranking, so nothing doubles).
The actions answer JSON to the page (`Accept: application/json`): what happened, the
progress, and the task to preload next. A plain form post (no JavaScript) is answered
with a redirect back to the page, which then shows the next task.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.errors import Conflict, InvalidInput, NotAllowed, NotFound, RanklabError
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, MemberStatus, Project
from rankings import services
from rankings.forms import (
    STRENGTH_LABELS,
    RankingForm,
    SkipForm,
    TaskRules,
    form_problems,
    rating_field_name,
)
from rankings.models import Ranking

TEMPLATE = "rankings/rate.html"
# rank.js stores the browser's UTC offset here so "done today" means the rater's today.
TIMEZONE_COOKIE = "ranklab_tz"
SKIP_REASONS = [
    "I can't judge this topic",
    "The prompt or the responses are broken",
    "Harmful or disturbing content",
]


class RaterRequest(HttpRequest):
    """What login_required guarantees on these views."""

    user: User


# Page -----------------------------------------------------------------------------------------


@login_required
@require_GET
def rate(request: RaterRequest, project_id: int) -> HttpResponse:
    project = _project_or_404(request, project_id)
    membership = labeling_selectors.membership_for(user=request.user, project=project)
    if membership is None:
        raise Http404("project not found")
    context: dict[str, Any] = {"project": project, "undo_seconds": services.UNDO_SECONDS}
    if membership.status == MemberStatus.PAUSED:
        return _render_paused_page(request, context)
    if project.guidelines.strip() and membership.guidelines_seen_at is None:
        context.update(state="guidelines", progress=_progress(request, project))
        return render(request, TEMPLATE, context)
    try:
        current, following = _lease_current_and_following(request, project)
    except NotAllowed:
        return _render_paused_page(request, context)
    context["progress"] = _progress(request, project)
    context["state"] = "task" if current else "empty"
    context["task"] = _task_context(current, project) if current else None
    context["following"] = _task_context(following, project) if following else None
    return render(request, TEMPLATE, context)


def _render_paused_page(request: RaterRequest, context: dict[str, Any]) -> HttpResponse:
    context.update(
        state="paused", paused=_paused_message(), progress=_progress(request, context["project"])
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
    project = assignment.project
    form = RankingForm(request.POST, rules=TaskRules.for_assignment(assignment))
    try:
        if not form.is_valid():
            raise InvalidInput(" ".join(form_problems(form)))
        services.ranking_submit(
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
    if not _wants_json(request):
        messages.success(request, "Ranking saved.")
        return redirect("rankings:rate", project_id=project.pk)
    return _answer_next(request, project, message="Ranking saved.", undo=assignment)


@login_required
@require_POST
def skip(request: RaterRequest, assignment_id: int) -> HttpResponse:
    assignment = _assignment_for_rater(request, assignment_id)
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
    if not _wants_json(request):
        messages.info(request, "Task skipped.")
        return redirect("rankings:rate", project_id=project.pk)
    return _answer_next(request, project, message="Task skipped.")


@login_required
@require_POST
def undo(request: RaterRequest, assignment_id: int) -> HttpResponse:
    """Reopen the task just submitted; the page shows it again with the answer filled in."""
    assignment = _assignment_for_rater(request, assignment_id)
    project = assignment.project
    try:
        services.ranking_undo(assignment_id=assignment.pk, rater=request.user)
    except RanklabError as error:
        if not _wants_json(request):
            messages.error(request, _sentence(error.message))
            return redirect("rankings:rate", project_id=project.pk)
        return _json_error(error, status=_status_for(error), project=project)
    if not _wants_json(request):
        messages.info(request, "Task reopened: your answer is filled in; change it and submit.")
        return redirect("rankings:rate", project_id=project.pk)
    assignment.refresh_from_db()
    return JsonResponse(
        {
            "ok": True,
            "message": "Task reopened: change your answer and submit again.",
            "progress": _progress(request, project),
            "current": _task_json(request, assignment, project, html=True),
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
    except NotFound as error:
        return JsonResponse({"ok": False, "code": error.code, "message": error.message}, status=404)
    except NotAllowed as error:
        project = Assignment.objects.select_related("project").get(pk=assignment_id).project
        return _json_error(error, status=403, project=project)
    except Conflict as error:
        message = (
            "This task was given to another rater after your time on it ran out."
            if error.code == "lease_taken"
            else _sentence(error.message)
        )
        return JsonResponse({"ok": False, "code": error.code, "message": message}, status=409)
    data: dict[str, Any] = {"ok": True, "expires_in": _expires_in(assignment)}
    also_id = _int_or_none(request.POST.get("also"))
    if also_id is not None and also_id != assignment.pk:
        try:
            also = labeling_services.assignment_renew(assignment_id=also_id, rater=request.user)
        except RanklabError:
            data["also"] = {"assignment_id": also_id, "expires_in": None}
        else:
            data["also"] = {"assignment_id": also_id, "expires_in": _expires_in(also)}
    return JsonResponse(data)


# Answers --------------------------------------------------------------------------------------


def _answer_error(
    request: RaterRequest,
    project: Project,
    assignment: Assignment,
    error: RanklabError,
    problems: list[str],
) -> HttpResponse:
    """Bad input keeps the rater on the task; a conflict moves on; paused stops."""
    message = _sentence(error.message)
    if isinstance(error, Conflict):
        message = f"Your answer to the previous task was not saved: {_lower_first(message)}"
    if not _wants_json(request):
        messages.error(request, message)
        return redirect("rankings:rate", project_id=project.pk)
    if isinstance(error, InvalidInput):
        return JsonResponse(
            {
                "ok": False,
                "code": error.code,
                "message": message,
                "problems": problems or [message],
                "assignment_id": assignment.pk,
            },
            status=422,
        )
    if isinstance(error, NotAllowed):
        return _json_error(error, status=403, project=project)
    return _answer_next(request, project, message=message, ok=False, code=error.code, status=409)


def _answer_next(
    request: RaterRequest,
    project: Project,
    *,
    message: str,
    ok: bool = True,
    code: str = "",
    status: int = 200,
    undo: Assignment | None = None,
) -> JsonResponse:
    """The state after a submit or skip: progress, the current task, the one to preload.

    `showing` is the task the page already shows (the preloaded one): its lease is renewed
    if it has used half of it, and only its id is sent back; the page gets HTML only for
    tasks it lacks.
    """
    showing_id = _int_or_none(request.POST.get("showing"))
    notice = ""
    current: Assignment | None = None
    try:
        if showing_id is not None:
            current = _showing_task(request, project, showing_id)
            if current is None:
                notice = "The next task was given to another rater; here is a new one."
        if current is None:
            labeling_services.assignments_restore_reopened(project=project, rater=request.user)
            current = labeling_services.lease_next_assignment(project=project, rater=request.user)
            showing_id = None
        following = (
            labeling_services.lease_following_assignment(
                project=project, rater=request.user, current_id=current.pk
            )
            if current is not None
            else None
        )
    except NotAllowed as paused:
        return _json_error(paused, status=403, project=project, message=message)
    data: dict[str, Any] = {
        "ok": ok,
        "code": code,
        "message": message,
        "notice": notice,
        "progress": _progress(request, project),
        "undo": None,
    }
    if undo is not None:
        data["undo"] = {
            "assignment_id": undo.pk,
            "url": reverse("rankings:undo", kwargs={"assignment_id": undo.pk}),
            "seconds": services.UNDO_SECONDS,
        }
    if current is None:
        data["current"] = {"assignment_id": None, "html": _render_state(request, project, "empty")}
        data["following"] = None
    else:
        html = current.pk != showing_id
        data["current"] = _task_json(request, current, project, html=html)
        data["following"] = (
            _task_json(request, following, project, html=True)
            if following is not None
            else {"assignment_id": None, "html": _render_state(request, project, "empty")}
        )
    return JsonResponse(data, status=status)


def _showing_task(request: RaterRequest, project: Project, showing_id: int) -> Assignment | None:
    """The rater's leased task the page shows, its lease renewed when half of it is used."""
    showing = Assignment.objects.filter(
        pk=showing_id, project=project, rater=request.user, status=AssignmentStatus.LEASED
    ).first()
    if showing is None:
        return None
    if _expires_in(showing) > project.lease_seconds / 2:
        return showing
    try:
        return labeling_services.assignment_renew(assignment_id=showing.pk, rater=request.user)
    except (Conflict, NotFound):
        return None


def _json_error(
    error: RanklabError, *, status: int, project: Project, message: str = ""
) -> JsonResponse:
    data: dict[str, Any] = {
        "ok": False,
        "code": error.code,
        "message": message or _sentence(error.message),
    }
    if isinstance(error, NotAllowed):
        data["current"] = {
            "assignment_id": None,
            "html": render_to_string(
                f"{TEMPLATE}#paused", {"project": project, "paused": _paused_message()}
            ),
        }
        data["following"] = None
    return JsonResponse(data, status=status)


def _task_json(
    request: RaterRequest, assignment: Assignment, project: Project, *, html: bool
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "assignment_id": assignment.pk,
        "expires_in": _expires_in(assignment),
        "html": None,
    }
    if html:
        data["html"] = render_to_string(
            f"{TEMPLATE}#task",
            {"project": project, "task": _task_context(assignment, project)},
            request=request,
        )
    return data


def _render_state(request: RaterRequest, project: Project, state: str) -> str:
    return render_to_string(f"{TEMPLATE}#{state}", {"project": project}, request=request)


# Task ---------------------------------------------------------------------------------------


def _task_context(assignment: Assignment, project: Project) -> dict[str, Any]:
    """Everything the task fragment shows; a reopened task carries the earlier answer."""
    if assignment.project_id == project.pk:
        assignment.project = project
    payload = labeling_selectors.task_payload(assignment)
    rules = TaskRules.for_assignment(assignment)
    earlier = (
        Ranking.objects.filter(assignment=assignment).first()
        if assignment.finished_at is not None
        else None
    )
    ranks: dict[int, int] = {}
    if earlier is not None:
        ranks = {
            int(response_id): rank
            for rank, group in enumerate(earlier.groups, start=1)
            for response_id in group
        }
    responses = []
    for response in payload["responses"]:
        response_id = response["id"]
        given = earlier.ratings.get(str(response_id), {}) if earlier is not None else {}
        responses.append(
            {
                **response,
                "rank": ranks.get(response_id),
                "rubric": [
                    _rubric_field(item, response_id, given.get(item["key"]))
                    for item in rules.rubric
                ],
            }
        )
    preference = ""
    if earlier is not None and rules.pairwise:
        preference = "tie" if len(earlier.groups) == 1 else str(earlier.groups[0][0])
    strengths = [(value, label) for value, label in STRENGTH_LABELS.items()]
    if not rules.allow_ties:
        strengths = [(value, label) for value, label in strengths if value]
    return {
        "assignment_id": assignment.pk,
        "submit_url": reverse("rankings:submit", kwargs={"assignment_id": assignment.pk}),
        "skip_url": reverse("rankings:skip", kwargs={"assignment_id": assignment.pk}),
        "renew_url": reverse("rankings:renew", kwargs={"assignment_id": assignment.pk}),
        "expires_in": _expires_in(assignment),
        "messages": payload["prompt"]["messages"],
        "responses": responses,
        "k": len(responses),
        "rank_choices": range(1, len(responses) + 1),
        "pairwise": rules.pairwise,
        "allow_ties": rules.allow_ties,
        "has_rubric": bool(rules.rubric),
        "require_rationale": rules.require_rationale,
        "reopened": earlier is not None,
        "rationale": earlier.rationale if earlier is not None else "",
        "preference": preference,
        "strength": earlier.strength if earlier is not None else None,
        "strengths": strengths,
        "skip_reasons": SKIP_REASONS,
    }


def _rubric_field(item: dict[str, Any], response_id: int, given: Any) -> dict[str, Any]:
    field = {**item, "name": rating_field_name(response_id, item["key"]), "given": given}
    if item["kind"] == "scale":
        field["values"] = list(range(item["min"], item["max"] + 1))
    return field


def _lease_current_and_following(
    request: RaterRequest, project: Project
) -> tuple[Assignment | None, Assignment | None]:
    labeling_services.assignments_restore_reopened(project=project, rater=request.user)
    current = labeling_services.lease_next_assignment(project=project, rater=request.user)
    if current is None:
        return None, None
    following = labeling_services.lease_following_assignment(
        project=project, rater=request.user, current_id=current.pk
    )
    return current, following


# Helpers --------------------------------------------------------------------------------------


def _project_or_404(request: RaterRequest, project_id: int) -> Project:
    try:
        return labeling_selectors.project_for_user(user=request.user, project_id=project_id)
    except NotFound as error:
        raise Http404(error.message) from None


def _assignment_for_rater(request: RaterRequest, assignment_id: int) -> Assignment:
    try:
        return labeling_services.assignment_for_rater(
            assignment_id=assignment_id, rater=request.user
        )
    except NotFound as error:
        raise Http404(error.message) from None


def _progress(request: RaterRequest, project: Project) -> dict[str, int]:
    return labeling_services.rater_progress(
        project=project, rater=request.user, day_start=_local_day_start(request)
    )


def _local_day_start(request: HttpRequest) -> datetime:
    """Midnight in the rater's time zone (from the page's cookie), as an aware UTC time."""
    minutes = _int_or_none(request.COOKIES.get(TIMEZONE_COOKIE, "")) or 0
    offset = timedelta(minutes=max(-16 * 60, min(16 * 60, minutes)))
    local_now = timezone.now() + offset
    return local_now.replace(hour=0, minute=0, second=0, microsecond=0) - offset


def _expires_in(assignment: Assignment) -> int:
    return max(0, int((assignment.expires_at - timezone.now()).total_seconds()))


def _paused_message() -> str:
    return "A lead has paused your work on this project; no tasks are served for now."


def _status_for(error: RanklabError) -> int:
    if isinstance(error, InvalidInput):
        return 422
    if isinstance(error, NotAllowed):
        return 403
    if isinstance(error, NotFound):
        return 404
    return 409


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _int_or_none(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else f"{message}."


def _lower_first(message: str) -> str:
    return message[:1].lower() + message[1:] if message[1:2].islower() else message
