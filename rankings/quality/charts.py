"""The dashboard's inline SVG charts, as pixel coordinates for the templates: agreement over
the runs, and each rater's agreement against their speed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rankings.models import AgreementRun
from rankings.quality.selectors import RaterRow

# The statistics drawn over time: key, legend label, stroke colour, dash pattern ("" = solid).
# Dashes as well as colours, so the lines stay apart without colour vision.
CHART_SERIES = (
    ("pairwise_agreement", "Pairwise agreement", "#2f55d4", ""),
    ("alpha_ordinal", "Krippendorff's alpha (ordinal)", "#a35200", "6 4"),
)


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
    present: list[float] = [value for row in values for value in row if value is not None]
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
    rows: Sequence[RaterRow],
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
