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

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import trigger_client_event
from django_htmx.middleware import HtmxDetails

from core.errors import NotAllowed, NotFound, RanklabError
from labeling import selectors as labeling_selectors
from labeling.models import Membership, MemberStatus, Project
from rankings import flags as flag_rules
from rankings import quality as quality_services
from rankings import selectors, services
from rankings.metrics import PROJECT_STATISTICS
from rankings.models import AgreementRun, Flag, FlagStatus, RunStatus

TEMPLATE = "rankings/quality.html"
FRAGMENTS = ("metrics", "raters", "flags", "prompts")
LOW_AGREEMENT_PROMPTS = 5
EXTRA_RATER_PROMPTS = 20
RECENTLY_CLOSED_FLAGS = 8

# What each statistic is called on the page and what its units are.
STATISTIC_LABELS: dict[str, tuple[str, str]] = {
    "pairwise_agreement": ("Pairwise agreement", "response pairs"),
    "pairwise_agreement_no_ties": ("Pairwise agreement without ties", "response pairs"),
    "kappa": ("Fleiss' kappa on pair labels", "response pairs"),
    "alpha_ordinal": ("Krippendorff's alpha, ordinal", "responses"),
    "alpha_interval": ("Krippendorff's alpha, interval", "responses"),
    "kendall_w": ("Kendall's W, mean per prompt", "prompts"),
}
# The statistics drawn over time: key, legend label, stroke colour, dash pattern ("" = solid).
# Dashes as well as colours, so the lines stay apart without colour vision.
CHART_SERIES = (
    ("pairwise_agreement", "Pairwise agreement", "#2f55d4", ""),
    ("alpha_ordinal", "Krippendorff's alpha (ordinal)", "#a35200", "6 4"),
)


class LeadRequest(HttpRequest):
    """What login_required and django-htmx's middleware guarantee on this page."""

    user: User
    htmx: HtmxDetails


@login_required
@require_http_methods(["GET", "POST"])
def quality(request: LeadRequest, project_id: int) -> HttpResponse:
    project = _project_for(request, project_id, roles=labeling_selectors.DATA_ROLES)
    if request.method == "POST":
        services.agreement_run_request(project=project, trigger="manual")
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
    "dismiss": ("Flag dismissed.", quality_services.flag_dismiss),
    "pause": ("Rater paused.", quality_services.flag_pause_rater),
    "exclude": ("Rater's rankings excluded and rater paused.", quality_services.flag_exclude_rater),
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
    error = None
    try:
        act(flag=flag, by=request.user, note=request.POST.get("note", ""))
    except RanklabError as problem:
        error = problem.message
    if not request.htmx:
        _tell(request, error, f"{done} ({flag.rater.username}, {flag.get_code_display()})")
        return redirect("rankings:quality", project_id=project.pk)
    response = render(
        request, f"{TEMPLATE}#flags", {**flags_context(project, request=request), "error": error}
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
    error = None
    try:
        if action == "pause":
            quality_services.rater_pause(project=project, username=username, by=request.user)
        elif action == "resume":
            quality_services.rater_resume(project=project, username=username)
        else:
            quality_services.rater_set_excluded(
                project=project, username=username, excluded=action == "exclude"
            )
    except NotFound as problem:
        raise Http404(problem.message) from None
    except RanklabError as problem:
        error = problem.message
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
        request, f"{TEMPLATE}#raters", {**raters_context(project, request=request), "error": error}
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
    flags = quality_services.project_flags(project=project)
    context.update(raters_context(project, request=request, latest=latest, flags=flags))
    context.update(flags_context(project, request=request, flags=flags, rows=context["rows"]))
    context.update(prompts_context(project, request=request, latest=latest))
    return context


def metrics_context(project: Project, *, request: HttpRequest | None = None) -> dict[str, Any]:
    history = selectors.agreement_history(project=project)
    latest = history[0] if history else None
    newest = selectors.agreement_run_newest(project=project)
    pending = newest if newest and newest.status in (RunStatus.QUEUED, RunStatus.RUNNING) else None
    failed = newest if newest and newest.status == RunStatus.FAILED else None
    return {
        "project": project,
        "latest": latest,
        "statistics": statistic_rows(latest.metrics) if latest else [],
        "pending": pending,
        "failed": failed,
        "chart": history_chart(list(reversed(history))),
    }


def _latest_run(project: Project) -> AgreementRun | None:
    history = selectors.agreement_history(project=project)[:1]
    return history[0] if history else None


_NO_RUN: Any = object()


def raters_context(
    project: Project,
    *,
    request: HttpRequest | None = None,
    latest: AgreementRun | None = _NO_RUN,
    flags: list[Flag] | None = None,
) -> dict[str, Any]:
    if latest is _NO_RUN:
        latest = _latest_run(project)
    raw_sort = request.GET.get("sort") if request is not None else None
    sort, descending = quality_services.parse_rater_sort(raw_sort)
    rows = quality_services.rater_rows(
        project=project, run=latest, sort=sort, descending=descending, flags=flags
    )
    rules = flag_rules.rules_from_settings(project.quality_settings)
    return {
        "project": project,
        "latest": latest,
        "rows": rows,
        "sort": sort,
        "descending": descending,
        "sort_links": sort_links(sort, descending),
        "scatter": agreement_speed_scatter(
            rows,
            too_fast_below=rules.thresholds[flag_rules.TOO_FAST]["max_speed_ratio"],
        ),
    }


def flags_context(
    project: Project,
    *,
    request: HttpRequest | None = None,
    flags: list[Flag] | None = None,
    rows: list[quality_services.RaterRow] | None = None,
) -> dict[str, Any]:
    if flags is None:
        flags = quality_services.project_flags(project=project)
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
        latest = _latest_run(project)
    extra_prompts, extra_total = quality_services.prompts_with_extra_raters(
        project=project, limit=EXTRA_RATER_PROMPTS
    )
    return {
        "project": project,
        "latest": latest,
        "low_prompts": quality_services.low_agreement_prompts(
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


@dataclass(frozen=True)
class SortLink:
    key: str
    label: str
    query: str  # the ?sort= value this header links to
    current: str  # "ascending", "descending" or "" (for aria-sort)


def sort_links(sort: str, descending: bool) -> dict[str, SortLink]:
    """Header links: clicking the current column flips its direction."""
    links = {}
    for key, (label, _) in quality_services.RATER_SORTS.items():
        if key == sort:
            query = key if descending else f"-{key}"
            current = "descending" if descending else "ascending"
        else:
            query, current = key, ""
        links[key] = SortLink(key=key, label=label, query=query, current=current)
    return links


def quality_url(project: Project, **params: str) -> str:
    url = reverse("rankings:quality", args=[project.pk])
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return f"{url}?{query}" if query else url


@dataclass(frozen=True)
class StatisticRow:
    key: str
    label: str
    value: float | None
    n_units: int
    n_pairs: int
    unit_name: str
    low: float | None = None  # bootstrap interval over prompts, when the run stored one
    high: float | None = None


def statistic_rows(stored: dict[str, Any]) -> list[StatisticRow]:
    return [
        StatisticRow(
            key=key,
            label=STATISTIC_LABELS[key][0],
            value=stored.get(key),
            n_units=int(stored.get(f"{key}_n_units") or 0),
            n_pairs=int(stored.get(f"{key}_n_pairs") or 0),
            unit_name=STATISTIC_LABELS[key][1],
            low=_interval_end(stored, key, 0),
            high=_interval_end(stored, key, 1),
        )
        for key in PROJECT_STATISTICS
    ]


def _interval_end(stored: dict[str, Any], key: str, end: int) -> float | None:
    """``{key}_low`` / ``{key}_high``, or ``{key}_ci`` as a [low, high] pair."""
    value = stored.get(f"{key}_{('low', 'high')[end]}")
    if value is None:
        interval = stored.get(f"{key}_ci")
        if isinstance(interval, list | tuple) and len(interval) == 2:
            value = interval[end]
    return float(value) if isinstance(value, int | float) else None


# Trend chart -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    value: float
    run_id: int


@dataclass(frozen=True)
class ChartSeries:
    key: str
    label: str
    colour: str
    dashes: str
    lines: list[str]  # SVG polyline ``points`` attributes; a missing value breaks the line
    points: list[ChartPoint]


@dataclass(frozen=True)
class ChartTick:
    y: float
    label: str


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    series: list[ChartSeries]
    ticks: list[ChartTick]
    first_label: str
    last_label: str


def history_chart(
    runs: Sequence[AgreementRun], *, width: int = 600, height: int = 220
) -> LineChart | None:
    """Pixel coordinates for an inline SVG line chart of the runs, oldest first.

    The y axis spans 0..1 and stretches down when alpha goes negative. Returns None when no
    run has a value to draw.
    """
    values = [[run.metrics.get(key) for run in runs] for key, *_ in CHART_SERIES]
    present = [value for row in values for value in row if value is not None]
    if not present:
        return None
    left, right, top, bottom = 44, width - 12, 12, height - 28
    # Whole halves keep the ticks on round numbers whichever step is used.
    low, high = min(0.0, math.floor(min(present) * 2) / 2), 1.0
    step = 0.25 if high - low <= 1.5 else 0.5

    def x_of(index: int) -> float:
        if len(runs) == 1:
            return (left + right) / 2
        return left + index * (right - left) / (len(runs) - 1)

    def y_of(value: float) -> float:
        return bottom - (value - low) * (bottom - top) / (high - low)

    series = []
    for (key, label, colour, dashes), row in zip(CHART_SERIES, values, strict=True):
        points: list[ChartPoint] = []
        lines: list[str] = []
        segment: list[str] = []
        for index, (run, value) in enumerate(zip(runs, row, strict=True)):
            if value is None:
                lines.extend(_finish(segment))
                segment = []
                continue
            point = ChartPoint(round(x_of(index), 1), round(y_of(value), 1), value, run.pk)
            points.append(point)
            segment.append(f"{point.x},{point.y}")
        lines.extend(_finish(segment))
        series.append(
            ChartSeries(
                key=key, label=label, colour=colour, dashes=dashes, lines=lines, points=points
            )
        )
    tick_values = [high - index * step for index in range(round((high - low) / step) + 1)]
    ticks = [ChartTick(y=round(y_of(tick), 1), label=f"{tick:.2f}") for tick in tick_values]
    return LineChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        series=series,
        ticks=ticks,
        first_label=_run_label(runs[0]),
        last_label=_run_label(runs[-1]),
    )


def _finish(segment: list[str]) -> list[str]:
    """A polyline needs two points; a lone point is drawn by its marker only."""
    return [" ".join(segment)] if len(segment) >= 2 else []


def _run_label(run: AgreementRun) -> str:
    finished = run.finished_at or run.created_at
    return finished.strftime("%Y-%m-%d %H:%M")


# Agreement vs speed scatter ------------------------------------------------------------------

SPEED_TICKS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
LABELLED_POINTS_MAX = 25


@dataclass(frozen=True)
class ScatterPoint:
    x: float
    y: float
    username: str
    agreement: float
    speed_ratio: float
    flagged: bool
    codes: str
    label_x: float
    label_y: float
    label_anchor: str
    mark_x: float  # top left of the square drawn for flagged raters
    mark_y: float


@dataclass(frozen=True)
class AxisTick:
    at: float
    label: str


@dataclass(frozen=True)
class ScatterChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    points: list[ScatterPoint]
    x_ticks: list[AxisTick]
    y_ticks: list[AxisTick]
    too_fast_x: float | None  # right edge of the shaded "too fast" band, if in range
    chance_y: float
    missing: int  # raters without both numbers
    show_labels: bool

    # Derived positions: the template cannot do arithmetic on floats.
    @property
    def too_fast_width(self) -> float:
        return round((self.too_fast_x or self.left) - self.left, 1)

    @property
    def too_fast_label_x(self) -> float:
        return round((self.left + (self.too_fast_x or self.left)) / 2, 1)

    @property
    def chance_label_y(self) -> float:
        return round(self.chance_y - 4, 1)

    @property
    def plot_height(self) -> int:
        return self.bottom - self.top

    @property
    def x_title_x(self) -> float:
        return (self.left + self.right) / 2

    @property
    def y_title_y(self) -> float:
        return (self.top + self.bottom) / 2


def agreement_speed_scatter(
    rows: Sequence[quality_services.RaterRow],
    *,
    too_fast_below: float = 0.3,
    width: int = 600,
    height: int = 300,
) -> ScatterChart | None:
    """Pixel coordinates for an inline SVG scatter: speed (log scale) across, agreement up.

    Raters with open flags are drawn as red squares, the rest as blue circles (shape as well
    as colour). Returns None when no rater has both numbers.
    """
    measured = [row for row in rows if row.agreement is not None and row.speed_ratio]
    if not measured:
        return None
    left, right, top, bottom = 48, width - 16, 14, height - 40
    ratios = [row.speed_ratio for row in measured]
    low = min(min(ratios) / 1.25, too_fast_below / 1.5)
    high = max(max(ratios) * 1.25, 2.0)
    log_low, log_high = math.log10(low), math.log10(high)

    def x_of(ratio: float) -> float:
        return left + (math.log10(ratio) - log_low) * (right - left) / (log_high - log_low)

    def y_of(value: float) -> float:
        return bottom - value * (bottom - top)

    points = []
    for row in measured:
        x, y = round(x_of(row.speed_ratio), 1), round(y_of(row.agreement), 1)
        near_right = x > right - 90
        open_codes = sorted({flag.code for flag in row.open_flags})
        points.append(
            ScatterPoint(
                x=x,
                y=y,
                username=row.username,
                agreement=row.agreement,
                speed_ratio=row.speed_ratio,
                flagged=bool(open_codes),
                codes=", ".join(open_codes),
                label_x=round(x - 7 if near_right else x + 7, 1),
                label_y=y,
                label_anchor="end" if near_right else "start",
                mark_x=round(x - 4.5, 1),
                mark_y=round(y - 4.5, 1),
            )
        )
    points = _spread_labels(points)
    x_ticks = [
        AxisTick(at=round(x_of(tick), 1), label=f"{tick:g}")
        for tick in SPEED_TICKS
        if low <= tick <= high
    ]
    y_ticks = [
        AxisTick(at=round(y_of(tick), 1), label=f"{tick:.2f}") for tick in (1, 0.75, 0.5, 0.25, 0)
    ]
    too_fast_x = round(x_of(too_fast_below), 1) if low < too_fast_below < high else None
    return ScatterChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        points=points,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        too_fast_x=too_fast_x,
        chance_y=round(y_of(0.5), 1),
        missing=len(rows) - len(measured),
        show_labels=len(points) <= LABELLED_POINTS_MAX,
    )


LABEL_HEIGHT = 11
LABEL_CHARACTER_WIDTH = 5.6  # 10px sans-serif, roughly


def _spread_labels(points: list[ScatterPoint]) -> list[ScatterPoint]:
    """Move name labels down until they no longer overlap one already placed (top first)."""
    placed: list[tuple[float, float, float]] = []  # left, right, y of each placed label
    spread = []
    for point in sorted(points, key=lambda point: (point.y, point.x)):
        width = LABEL_CHARACTER_WIDTH * len(point.username)
        left = point.label_x if point.label_anchor == "start" else point.label_x - width
        right = left + width
        y = point.y
        while any(
            left < other_right and other_left < right and abs(y - other_y) < LABEL_HEIGHT
            for other_left, other_right, other_y in placed
        ):
            y += LABEL_HEIGHT
        placed.append((left, right, y))
        spread.append(replace(point, label_y=round(y, 1)))
    return spread
