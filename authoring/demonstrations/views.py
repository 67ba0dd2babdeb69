"""The rater page of a demonstration project and its actions: write (or rank, then rewrite)
a reply, review one, skip, and the live preview of the markdown being written.

The page (`/rate/<id>/`, dispatched here by `labeling.task_kinds`) is served as plain HTML
forms that work without JavaScript; demonstration.js adds the debounced preview (rendered
here by the same sanitizer as every page, `labeling.rendering.render_markdown`), keyboard
shortcuts and the copy of the best response into the editor. Bad input keeps the rater on
the task with their text and the problem named; a conflict moves on to the next task.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from authoring.demonstrations import reviews, selectors, services
from authoring.demonstrations.models import ReviewDecision
from authoring.demonstrations.options import DemonstrationOptions
from authoring.demonstrations.validation import MAX_TEXT_CHARS
from core.errors import InvalidInput, NotAllowed, RanklabError
from labeling import services as labeling_services
from labeling.models import Membership, Project
from labeling.rendering import render_markdown
from rankings.rating.forms import SkipForm, form_problems
from rankings.rating.page import PAUSED_MESSAGE, SKIP_REASONS, RaterRequest, progress, sentence

TEMPLATE = "demonstrations/rate.html"


def demonstration_page(
    request: HttpRequest,
    project: Project,
    membership: Membership,
    *,
    problems: list[str] | None = None,
    given: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The rater's current write or review task (membership, pause and guidelines checked)."""
    request = cast(RaterRequest, request)
    context: dict[str, Any] = {
        "project": project,
        "progress": progress(request, project),
        "max_chars": MAX_TEXT_CHARS,
        "skip_reasons": SKIP_REASONS,
        "decisions": ReviewDecision.choices,
        "problems": problems or [],
        "given": given or {},
    }
    try:
        task = services.task_for_rater(project=project, rater=request.user, membership=membership)
    except NotAllowed:
        context.update(state="paused", paused=PAUSED_MESSAGE)
        return render(request, TEMPLATE, context, status=403)
    if task is None:
        context["state"] = "empty"
        return render(request, TEMPLATE, context, status=status)
    payload = selectors.task_payload(task, project=project, membership=membership)
    context["state"] = payload["task"]
    context["task"] = _page_task(payload, given or {})
    return render(request, TEMPLATE, context, status=status)


def _page_task(payload: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The payload plus what the page's forms need: rank choices, the editor's text."""
    responses = payload.get("responses", [])
    ranks = given.get("ranks", {})
    text = given.get("text")
    if text is None:
        text = payload.get("text", "")
    return {
        **payload,
        "rank_choices": range(1, len(responses) + 1),
        "responses": [{**response, "rank": ranks.get(response["id"])} for response in responses],
        "editor_text": text,
        "preview_html": render_markdown(text) if text else "",
        "original_html": render_markdown(payload["original_response"]["text"])
        if payload.get("original_response")
        else "",
        "decision": given.get("decision", ""),
        "reason": given.get("reason", ""),
        "rank_then_rewrite": payload["mode"] == "rank_then_rewrite",
    }


# Actions --------------------------------------------------------------------------------------


@login_required
@require_POST
def submit(request: RaterRequest, assignment_id: int) -> HttpResponse:
    assignment = _rater_assignment(request, assignment_id)
    project = assignment.project
    options = DemonstrationOptions.of(project)
    shown_ids = [int(response_id) for response_id in assignment.shown_order]
    ranks = _posted_ranks(request, shown_ids) if options.rank_then_rewrite else {}
    given = {"text": request.POST.get("text", ""), "ranks": ranks}
    try:
        ranking = _groups_from_ranks(ranks, shown_ids) if options.rank_then_rewrite else None
        services.demonstration_submit(
            assignment_id=assignment.pk,
            rater=request.user,
            text=request.POST.get("text", ""),
            ranking=ranking,
            original_response=_int_or_none(request.POST.get("original_response"))
            if options.rank_then_rewrite
            else None,
            seconds=_seconds(request),
        )
    except RanklabError as error:
        return _answer_error(request, project, error, given)
    messages.success(request, "Demonstration saved.")
    return redirect("rankings:rate", project_id=project.pk)


@login_required
@require_POST
def review(request: RaterRequest, review_id: int) -> HttpResponse:
    try:
        found = reviews.review_for_rater(review_id=review_id, rater=request.user)
    except RanklabError as error:
        raise Http404(error.message) from None
    project = found.project
    decision = request.POST.get("decision", "")
    given = {
        "decision": decision,
        "reason": request.POST.get("reason", ""),
        "text": request.POST.get("text", ""),
    }
    try:
        reviews.review_submit(
            review_id=found.pk,
            reviewer=request.user,
            decision=decision,
            reason=request.POST.get("reason", ""),
            text=request.POST.get("text", "") if decision == ReviewDecision.EDIT else None,
        )
    except RanklabError as error:
        return _answer_error(request, project, error, given)
    messages.success(request, "Review saved.")
    return redirect("rankings:rate", project_id=project.pk)


@login_required
@require_POST
def review_skip(request: RaterRequest, review_id: int) -> HttpResponse:
    try:
        found = reviews.review_for_rater(review_id=review_id, rater=request.user)
    except RanklabError as error:
        raise Http404(error.message) from None
    form = SkipForm(request.POST)
    try:
        if not form.is_valid():
            raise InvalidInput(" ".join(form_problems(form)), field="reason")
        reviews.review_skip(
            review_id=found.pk, reviewer=request.user, reason=form.cleaned_data["reason"]
        )
    except RanklabError as error:
        messages.error(request, sentence(error.message))
        return redirect("rankings:rate", project_id=found.project_id)
    messages.info(request, "Review skipped.")
    return redirect("rankings:rate", project_id=found.project_id)


@login_required
@require_POST
def preview(request: RaterRequest) -> JsonResponse:
    """The editor's text as the page will show it: sanitized markdown, as everywhere."""
    text = request.POST.get("text", "")
    if len(text) > MAX_TEXT_CHARS:
        error = InvalidInput(f"must be at most {MAX_TEXT_CHARS} characters", field="text")
        return JsonResponse(error.as_dict(), status=400)
    return JsonResponse({"html": render_markdown(text)})


# Helpers --------------------------------------------------------------------------------------


def _answer_error(
    request: RaterRequest, project: Project, error: RanklabError, given: dict[str, Any]
) -> HttpResponse:
    """Bad input: the same task again with the rater's text and the problem. Otherwise (a
    conflict, paused) the message, and the page moves on."""
    if isinstance(error, InvalidInput):
        membership = labeling_services.rater_membership(project_id=project.pk, rater=request.user)
        field = f"{error.field}: " if error.field else ""
        return demonstration_page(
            request,
            project,
            membership,
            problems=[sentence(f"{field}{error.message}")],
            given=given,
            status=400,
        )
    messages.error(request, sentence(error.message))
    return redirect("rankings:rate", project_id=project.pk)


def _rater_assignment(request: RaterRequest, assignment_id: int) -> Any:
    try:
        return labeling_services.assignment_for_rater(
            assignment_id=assignment_id, rater=request.user
        )
    except RanklabError as error:
        raise Http404(error.message) from None


def _posted_ranks(request: HttpRequest, shown_ids: list[int]) -> dict[int, int]:
    ranks = {}
    for response_id in shown_ids:
        rank = _int_or_none(request.POST.get(f"rank_{response_id}"))
        if rank is not None:
            ranks[response_id] = rank
    return ranks


def _groups_from_ranks(ranks: dict[int, int], shown_ids: list[int]) -> list[list[int]]:
    """Rank numbers per response (1 best; equal numbers tie) as tie groups best→worst."""
    missing = [response_id for response_id in shown_ids if response_id not in ranks]
    if missing:
        raise InvalidInput("give every response a rank before rewriting", field="ranking")
    groups: dict[int, list[int]] = {}
    for response_id in shown_ids:
        groups.setdefault(ranks[response_id], []).append(response_id)
    return [groups[rank] for rank in sorted(groups)]


def _seconds(request: HttpRequest) -> float | None:
    raw = request.POST.get("seconds", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0 <= value <= 86_400 else None


def _int_or_none(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None
