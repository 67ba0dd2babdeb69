"""The leaderboard's inline SVG chart as pixel coordinates for the template: one row per
model, strongest on top, its strength as a dot and its interval as a bar."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rankings.stats.leaderboard import Leaderboard

ROW_HEIGHT = 30
NAME_CHARACTERS = 28  # longer model names are shortened in the chart (the table has them whole)
TICK_STEPS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0)


@dataclass(frozen=True)
class ChartRow:
    rank: int
    name: str
    label: str
    strength: float
    low: float | None
    high: float | None
    y: float
    x: float
    x_low: float | None
    x_high: float | None


@dataclass(frozen=True)
class ChartTick:
    x: float
    label: str


@dataclass(frozen=True)
class IntervalChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    zero_x: float
    rows: list[ChartRow]
    ticks: list[ChartTick]

    # Derived positions: the template cannot do arithmetic on floats.
    @property
    def axis_title_x(self) -> float:
        return (self.left + self.right) / 2

    @property
    def tick_label_y(self) -> int:
        return self.bottom + 16

    @property
    def name_x(self) -> int:
        return self.left - 10


def interval_chart(board: Leaderboard, *, width: int = 720) -> IntervalChart | None:
    """Coordinates of a dot-and-interval chart of the models' strengths; None without any."""
    drawn = [row for row in board.models if row.strength is not None]
    if not drawn:
        return None
    left, right, top = 190, width - 24, 12
    bottom = top + ROW_HEIGHT * len(drawn)
    height = bottom + 40
    values = [0.0]
    for row in drawn:
        values += [value for value in (row.strength, row.low, row.high) if value is not None]
    low, high = min(values), max(values)
    step = _tick_step(high - low)
    low = math.floor(low / step) * step
    high = math.ceil(high / step) * step
    if high - low < step:
        high = low + step

    def x_of(value: float) -> float:
        return round(left + (value - low) * (right - left) / (high - low), 1)

    rows = []
    for rank, row in enumerate(drawn, start=1):
        assert row.strength is not None
        label = (
            row.name if len(row.name) <= NAME_CHARACTERS else row.name[: NAME_CHARACTERS - 1] + "…"
        )
        rows.append(
            ChartRow(
                rank=rank,
                name=row.name,
                label=label,
                strength=row.strength,
                low=row.low,
                high=row.high,
                y=top + ROW_HEIGHT * (rank - 1) + ROW_HEIGHT / 2,
                x=x_of(row.strength),
                x_low=None if row.low is None else x_of(row.low),
                x_high=None if row.high is None else x_of(row.high),
            )
        )
    count = round((high - low) / step)
    tick_values = [round(low + index * step, 6) + 0.0 for index in range(count + 1)]
    ticks = [ChartTick(x=x_of(value), label=f"{value:g}") for value in tick_values]
    return IntervalChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        zero_x=x_of(0.0),
        rows=rows,
        ticks=ticks,
    )


def _tick_step(span: float) -> float:
    """The smallest round step that gives at most eight ticks across ``span``."""
    for step in TICK_STEPS:
        if span / step <= 8:
            return step
    return TICK_STEPS[-1] * math.ceil(span / (8 * TICK_STEPS[-1]))
