"""The lead's quality dashboard: agreement and its trend, raters, flags, hard prompts.

One URL per page. GET renders the page; with htmx it renders one fragment of it, named by
``?fragment=`` (``metrics`` by default: the poll while a run is pending). POST on the page
queues a run now. Flag and rater actions post to their own URLs and answer with the
fragment they changed, telling the others to refresh through htmx events; without
JavaScript they redirect back to the page.

Events (``HX-Trigger``): ``run-finished`` when a poll sees the run done (every section
reloads), ``raters-changed`` / ``flags-changed`` after an action on the other section,
``metrics-changed`` when an exclusion queued a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import trigger_client_event
from django_htmx.middleware import HtmxDetails

from core.errors import NotAllowed, NotFound, RanklabError
from core.jobs import JobStatus
from labeling import selectors as labeling_selectors
from labeling.models import Membership, MemberStatus, Project
from rankings.models import AgreementRun, Flag, FlagStatus
from rankings.quality import actions, charts, dashboard, thresholds
from rankings.quality import selectors as quality_selectors
from rankings.runs import selectors as run_selectors
from rankings.runs import services as run_services
from rankings.stats.registry import TOO_FAST

TEMPLATE = "rankings/quality.html"
FRAGMENTS = ("metrics", "raters", "flags", "prompts")
LOW_AGREEMENT_PROMPTS = 5
EXTRA_RATER_PROMPTS = 20
RECENTLY_CLOSED_FLAGS = 8


class LeadRequest(HttpRequest):
    """What login_required and django-htmx's middleware guarantee on this page."""

    user: User
    htmx: HtmxDetails


@login_required
@require_http_methods(["GET", "POST"])
def quality(request: LeadRequest, project_id: int) -> HttpResponse:
    project = _project_for(request, project_id, roles=labeling_selectors.DATA_ROLES)
    if request.method == "POST":
        run_services.agreement_run_request(project=project, trigger="manual")
        if not request.htmx:
            messages.info(request, "Agreement run requested.")
            return redirect("rankings:quality", project_id=project.pk)
        return render(request, f"{TEMPLATE}#metrics", metrics_context(project))
    if not request.htmx:
        return render(request, TEMPLATE, quality_context(project, request=request))
    fragment = request.GET.get("fragment") or "metrics"
    if fragment not in FRAGMENTS:
        raise Http404("no such part of the page")
    context = FRAGMENT_CONTEXTS[fragment](project, request=request)
    response = render(request, f"{TEMPLATE}#{fragment}", context)
    if fragment == "metrics" and request.GET.get("polling") and not context["pending"]:
        trigger_client_event(response, "run-finished")
    return response


def _project_for(request: HttpRequest, project_id: int, *, roles: tuple[str, ...]) -> Project:
    try:
        return labeling_selectors.project_for_user(
            user=request.user, project_id=project_id, roles=roles
        )
    except NotFound as error:
        raise Http404(error.message) from None
    except NotAllowed as error:
        raise PermissionDenied(error.message) from None


# Actions -----------------------------------------------------------------------------------

FLAG_ACTIONS = {
    "dismiss": ("Flag dismissed.", actions.flag_dismiss),
    "pause": ("Rater paused.", actions.flag_pause_rater),
    "exclude": ("Rater's rankings excluded and rater paused.", actions.flag_exclude_rater),
}
RATER_ACTIONS = ("pause", "resume", "exclude", "include")


@login_required
@require_POST
def flag_action(request: LeadRequest, project_id: int, flag_id: int, action: str) -> HttpResponse:
    """Dismiss a flag (with the lead's note), pause its rater, or exclude their rankings."""
    project = _project_for(request, project_id, roles=labeling_selectors.LEAD_ROLES)
    if action not in FLAG_ACTIONS:
        raise Http404("no such action")
    flag = Flag.objects.select_related("rater").filter(pk=flag_id, project=project).first()
    if flag is None:
        raise Http404("flag not found")
    done, act = FLAG_ACTIONS[action]
    error, status = None, 200
    try:
        act(flag=flag, by=request.user, note=request.POST.get("note", ""))
    except RanklabError as problem:
        error, status = problem.message, problem.status_code
    if not request.htmx:
        _tell(request, error, f"{done} ({flag.rater.username}, {flag.get_code_display()})")
        return redirect("rankings:quality", project_id=project.pk)
    response = render(
        request,
        f"{TEMPLATE}#flags",
        {**flags_context(project, request=request), "error": error},
        status=status,  # the error's own status; htmx swaps 4xx answers too (base.html)
    )
    if error is None:
        events = (
            ["raters-changed", "metrics-changed"] if action == "exclude" else ["raters-changed"]
        )
        for event in events:
            trigger_client_event(response, event)
    return response


@login_required
@require_POST
def rater_action(request: LeadRequest, project_id: int, username: str, action: str) -> HttpResponse:
    """From the rater table: pause or resume a rater, exclude or include their rankings."""
    project = _project_for(request, project_id, roles=labeling_selectors.LEAD_ROLES)
    if action not in RATER_ACTIONS:
        raise Http404("no such action")
    error, status = None, 200
    try:
        if action == "pause":
            actions.rater_pause(project=project, username=username, by=request.user)
        elif action == "resume":
            actions.rater_resume(project=project, username=username, by=request.user)
        else:
            actions.rater_set_excluded(
                project=project, username=username, excluded=action == "exclude", by=request.user
            )
    except NotFound as problem:
        raise Http404(problem.message) from None
    except RanklabError as problem:
        error, status = problem.message, problem.status_code
    done = {
        "pause": "paused",
        "resume": "resumed",
        "exclude": "excluded from agreement and exports",
        "include": "included in agreement and exports again",
    }[action]
    if not request.htmx:
        _tell(request, error, f"{username} {done}.")
        return redirect("rankings:quality", project_id=project.pk)
    response = render(
        request,
        f"{TEMPLATE}#raters",
        {**raters_context(project, request=request), "error": error},
        status=status,  # the error's own status; htmx swaps 4xx answers too (base.html)
    )
    if error is None:
        trigger_client_event(response, "flags-changed")
        if action in ("exclude", "include"):
            trigger_client_event(response, "metrics-changed")
    return response


def _tell(request: HttpRequest, error: str | None, done: str) -> None:
    if error is None:
        messages.success(request, done)
    else:
        messages.error(request, error)


# What the page shows -------------------------------------------------------------------------


def quality_context(project: Project, *, request: HttpRequest | None = None) -> dict[str, Any]:
    """Everything the page shows, in a fixed number of queries whatever the rater count."""
    context = metrics_context(project)
    latest = context["latest"]
    flags = quality_selectors.project_flags(project=project)
    context.update(raters_context(project, request=request, latest=latest, flags=flags))
    context.update(flags_context(project, request=request, flags=flags, rows=context["rows"]))
    context.update(prompts_context(project, request=request, latest=latest))
    return context


def metrics_context(project: Project, *, request: HttpRequest | None = None) -> dict[str, Any]:
    history = run_selectors.agreement_history(project=project)
    latest = history[0] if history else None
    newest = run_selectors.agreement_run_newest(project=project)
    pending = newest if newest and newest.is_live else None
    failed = newest if newest and newest.status == JobStatus.FAILED else None
    return {
        "project": project,
        "latest": latest,
        "statistics": dashboard.statistic_rows(latest.metrics) if latest else [],
        "pending": pending,
        "failed": failed,
        "chart": charts.history_chart(list(reversed(history))),
    }


_NO_RUN: Any = object()


def raters_context(
    project: Project,
    *,
    request: HttpRequest | None = None,
    latest: AgreementRun | None = _NO_RUN,
    flags: list[Flag] | None = None,
) -> dict[str, Any]:
    if latest is _NO_RUN:
        latest = run_selectors.latest_agreement_run(project=project)
    raw_sort = request.GET.get("sort") if request is not None else None
    sort, descending = quality_selectors.parse_rater_sort(raw_sort)
    rows = quality_selectors.rater_rows(
        project=project, run=latest, sort=sort, descending=descending, flags=flags
    )
    rules = thresholds.rules_from_settings(project.quality_settings)
    links = dashboard.sort_links(sort, descending)
    return {
        "project": project,
        "latest": latest,
        "rows": rows,
        "table": dashboard.table_lines(rows),
        "columns": dashboard.table_columns(links),
        "sort": sort,
        "descending": descending,
        "sort_links": links,
        "scatter": charts.agreement_speed_scatter(
            rows, too_fast_below=rules.thresholds[TOO_FAST]["max_speed_ratio"]
        ),
    }


def flags_context(
    project: Project,
    *,
    request: HttpRequest | None = None,
    flags: list[Flag] | None = None,
    rows: list[quality_selectors.RaterRow] | None = None,
) -> dict[str, Any]:
    if flags is None:
        flags = quality_selectors.project_flags(project=project)
    if rows is not None:
        paused = {row.username for row in rows if row.status == MemberStatus.PAUSED}
        excluded = {row.username for row in rows if row.excluded}
    else:
        members = Membership.objects.filter(project=project).values_list(
            "user__username", "status", "excluded"
        )
        paused = {name for name, status, _ in members if status == MemberStatus.PAUSED}
        excluded = {name for name, _, is_excluded in members if is_excluded}
    open_flags = [flag for flag in flags if flag.status == FlagStatus.OPEN]
    closed = [flag for flag in flags if flag.status != FlagStatus.OPEN][:RECENTLY_CLOSED_FLAGS]
    return {
        "project": project,
        "open_flags": [
            FlagCard(flag, flag.rater.username in paused, flag.rater.username in excluded)
            for flag in open_flags
        ],
        "closed_flags": closed,
    }


@dataclass(frozen=True)
class FlagCard:
    flag: Flag
    rater_paused: bool
    rater_excluded: bool


def prompts_context(
    project: Project,
    *,
    request: HttpRequest | None = None,
    latest: AgreementRun | None = _NO_RUN,
) -> dict[str, Any]:
    if latest is _NO_RUN:
        latest = run_selectors.latest_agreement_run(project=project)
    extra_prompts, extra_total = quality_selectors.prompts_with_extra_raters(
        project=project, limit=EXTRA_RATER_PROMPTS
    )
    return {
        "project": project,
        "latest": latest,
        "low_prompts": quality_selectors.low_agreement_prompts(
            project=project, run=latest, limit=LOW_AGREEMENT_PROMPTS
        ),
        "extra_prompts": extra_prompts,
        "extra_total": extra_total,
    }


FRAGMENT_CONTEXTS = {
    "metrics": metrics_context,
    "raters": raters_context,
    "flags": flags_context,
    "prompts": prompts_context,
}
