"""What the rater page is answered: task fragments, the state after an action, errors.

The page's actions answer JSON (`Accept: application/json`). Success is `{ok: true,
message, progress, current, following, …}`; an error is the one error shape of the whole
site, `{detail, code, field}`, with the status from `RanklabError.status_code`, plus what
the page needs to carry on (the next task after a conflict, the paused notice, the
problems to show beside the form).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest, JsonResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from core.errors import NotAllowed, RanklabError
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import Assignment, Project
from rankings.models import Ranking
from rankings.rating import services as rating_services
from rankings.rating.forms import STRENGTH_LABELS, TaskRules, rating_field_name

TEMPLATE = "rankings/rate.html"
# rank.js stores the browser's UTC offset here so "done today" means the rater's today.
TIMEZONE_COOKIE = "ranklab_tz"
SKIP_REASONS = [
    "I can't judge this topic",
    "The prompt or the responses are broken",
    "Harmful or disturbing content",
]
PAUSED_MESSAGE = "A lead has paused your work on this project; no tasks are served for now."


class RaterRequest(HttpRequest):
    """What login_required guarantees on the rater's views."""

    user: User


# Answers ----------------------------------------------------------------------------------------


def error_answer(
    error: RanklabError, *, project: Project | None = None, detail: str = "", **extra: Any
) -> JsonResponse:
    """The error in the one shape `{detail, code, field}`, as a rater-facing sentence.

    A paused rater also gets the paused notice as the page's current task.
    """
    body: dict[str, Any] = {**error.as_dict(), "detail": detail or sentence(error.message)}
    if isinstance(error, NotAllowed) and project is not None:
        body["current"] = {
            "assignment_id": None,
            "html": render_to_string(
                f"{TEMPLATE}#paused", {"project": project, "paused": PAUSED_MESSAGE}
            ),
        }
        body["following"] = None
    body.update(extra)
    return JsonResponse(body, status=error.status_code)


def next_answer(
    request: RaterRequest,
    project: Project,
    *,
    message: str,
    error: RanklabError | None = None,
    undo: Assignment | None = None,
) -> JsonResponse:
    """The state after a submit or skip: progress, the current task, the one to preload.

    `showing` (posted by the page) is the task the page already shows, the preloaded one:
    it stays current while still the rater's, and only its id is sent back; the page gets
    HTML only for tasks it lacks. With `error` (a conflict) the same state comes in the
    error shape, `message` as its detail.
    """
    showing_id = int_or_none(request.POST.get("showing"))
    membership = labeling_selectors.membership_for(user=request.user, project=project)
    if membership is not None and membership.needs_guidelines(project):
        # The guidelines changed while the rater worked: they read them again first.
        return JsonResponse(
            {
                "notice": "",
                "progress": progress(request, project),
                "undo": undo_answer(undo),
                "current": {
                    "assignment_id": None,
                    "html": render_state(request, project, "guidelines_gate"),
                },
                "following": None,
            }
        )
    try:
        tasks = rating_services.task_for_rater(
            project=project,
            rater=request.user,
            membership=membership,
            showing_id=showing_id,
            with_following=True,
        )
    except NotAllowed as paused:
        return error_answer(paused, project=project, detail=f"{message} {sentence(paused.message)}")
    current, following = tasks.current, tasks.following
    data: dict[str, Any] = {
        "notice": "The next task was given to another rater; here is a new one."
        if tasks.showing_lost
        else "",
        "progress": progress(request, project),
        "undo": undo_answer(undo),
    }
    if current is None:
        data["current"] = {"assignment_id": None, "html": render_state(request, project, "empty")}
        data["following"] = None
    else:
        html = tasks.showing_lost or current.pk != showing_id
        data["current"] = task_json(request, current, project, html=html)
        data["following"] = (
            task_json(request, following, project, html=True)
            if following is not None
            else {"assignment_id": None, "html": render_state(request, project, "empty")}
        )
    if error is not None:
        return error_answer(error, detail=message, **data)
    return JsonResponse({"ok": True, "message": message, **data})


def task_json(
    request: RaterRequest, assignment: Assignment, project: Project, *, html: bool
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "assignment_id": assignment.pk,
        "expires_in": rating_services.lease_seconds_left(assignment),
        "html": None,
    }
    if html:
        data["html"] = render_to_string(
            f"{TEMPLATE}#task",
            {"project": project, "task": task_context(assignment, project)},
            request=request,
        )
    return data


def undo_answer(undo: Assignment | None) -> dict[str, Any] | None:
    """What the page needs to offer undoing the task just saved."""
    if undo is None:
        return None
    return {
        "assignment_id": undo.pk,
        "url": reverse("rankings:undo", kwargs={"assignment_id": undo.pk}),
        "seconds": rating_services.UNDO_SECONDS,
    }


def render_state(request: RaterRequest, project: Project, state: str) -> str:
    return render_to_string(f"{TEMPLATE}#{state}", {"project": project}, request=request)


# Task -------------------------------------------------------------------------------------------


def task_context(assignment: Assignment, project: Project) -> dict[str, Any]:
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
        "expires_in": rating_services.lease_seconds_left(assignment),
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


# Helpers ----------------------------------------------------------------------------------------


def progress(request: RaterRequest, project: Project) -> dict[str, int]:
    return labeling_services.rater_progress(
        project=project, rater=request.user, day_start=_local_day_start(request)
    )


def _local_day_start(request: HttpRequest) -> datetime:
    """Midnight in the rater's time zone (from the page's cookie), as an aware UTC time."""
    minutes = int_or_none(request.COOKIES.get(TIMEZONE_COOKIE, "")) or 0
    offset = timedelta(minutes=max(-16 * 60, min(16 * 60, minutes)))
    local_now = timezone.now() + offset
    return local_now.replace(hour=0, minute=0, second=0, microsecond=0) - offset


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def int_or_none(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else f"{message}."


def lower_first(message: str) -> str:
    return message[:1].lower() + message[1:] if message[1:2].islower() else message
