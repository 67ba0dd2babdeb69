"""The lead's quality page: latest agreement with its evidence, its trend, and per-rater scores.

GET renders the page (or only its ``metrics`` fragment for htmx polling); POST queues a run
now and answers with the same fragment, or redirects back without JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.middleware import HtmxDetails

from labeling import selectors as labeling_selectors
from labeling.errors import NotAllowed, NotFound
from labeling.models import Project
from rankings import selectors, services
from rankings.metrics import PROJECT_STATISTICS
from rankings.models import AgreementRun, RunStatus

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

    htmx: HtmxDetails


@login_required
@require_http_methods(["GET", "POST"])
def quality(request: LeadRequest, project_id: int) -> HttpResponse:
    project = _project_for_data_role(request, project_id)
    if request.method == "POST":
        services.agreement_run_request(project=project, trigger="manual")
        if not request.htmx:
            messages.info(request, "Agreement run requested.")
            return redirect("rankings:quality", project_id=project.pk)
    template = "rankings/quality.html#metrics" if request.htmx else "rankings/quality.html"
    return render(request, template, quality_context(project))


def _project_for_data_role(request: HttpRequest, project_id: int) -> Project:
    try:
        return labeling_selectors.project_for_user(
            user=request.user, project_id=project_id, roles=labeling_selectors.DATA_ROLES
        )
    except NotFound as error:
        raise Http404(error.message) from None
    except NotAllowed as error:
        raise PermissionDenied(error.message) from None


def quality_context(project: Project) -> dict[str, Any]:
    """Everything the page shows, in a fixed number of queries whatever the rater count."""
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
        "rater_scores": selectors.rater_scores(run=latest) if latest else [],
    }


@dataclass(frozen=True)
class StatisticRow:
    key: str
    label: str
    value: float | None
    n_units: int
    n_pairs: int
    unit_name: str


def statistic_rows(stored: dict[str, Any]) -> list[StatisticRow]:
    return [
        StatisticRow(
            key=key,
            label=STATISTIC_LABELS[key][0],
            value=stored.get(key),
            n_units=int(stored.get(f"{key}_n_units") or 0),
            n_pairs=int(stored.get(f"{key}_n_pairs") or 0),
            unit_name=STATISTIC_LABELS[key][1],
        )
        for key in PROJECT_STATISTICS
    ]


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
