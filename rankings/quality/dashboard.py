"""What the dashboard's tables show: the project statistics with their intervals, and the
rater table, whose columns, cells and sort links come from ``rankings.stats.registry``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.template.defaultfilters import floatformat
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from rankings.quality.selectors import RATER_SORTS, RaterRow
from rankings.stats.project import PROJECT_STATISTICS
from rankings.stats.registry import (
    RATER_STATISTICS,
    STATISTICS,
    DashboardColumn,
    Number,
    RaterStatistic,
)

# What each project statistic is called on the page and what its units are.
STATISTIC_LABELS: dict[str, tuple[str, str]] = {
    "pairwise_agreement": ("Pairwise agreement", "response pairs"),
    "pairwise_agreement_no_ties": ("Pairwise agreement without ties", "response pairs"),
    "kappa": ("Fleiss' kappa on pair labels", "response pairs"),
    "alpha_ordinal": ("Krippendorff's alpha, ordinal", "responses"),
    "alpha_interval": ("Krippendorff's alpha, interval", "responses"),
    "kendall_w": ("Kendall's W, mean per prompt", "prompts"),
}
RANGE_DASH = " \u2013 "  # between the two ends of an interval
# p-values below this show as "< 0.001".
SMALLEST_P_VALUE = 0.001


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


# The rater table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortLink:
    key: str
    label: str
    query: str  # the ?sort= value this header links to
    current: str  # "ascending", "descending" or "" (for aria-sort)


def sort_links(sort: str, descending: bool) -> dict[str, SortLink]:
    """Header links: clicking the current column flips its direction."""
    links = {}
    for key, (label, _) in RATER_SORTS.items():
        if key == sort:
            query = key if descending else f"-{key}"
            current = "descending" if descending else "ascending"
        else:
            query, current = key, ""
        links[key] = SortLink(key=key, label=label, query=query, current=current)
    return links


@dataclass(frozen=True)
class Column:
    """A statistic's column in the rater table: its header, and a sort link if it sorts."""

    key: str
    label: str
    title: str
    link: SortLink | None


COLUMNS: tuple[tuple[RaterStatistic, DashboardColumn], ...] = tuple(
    (stat, stat.dashboard) for stat in RATER_STATISTICS if stat.dashboard is not None
)


def table_columns(links: dict[str, SortLink]) -> list[Column]:
    return [
        Column(
            key=stat.name,
            label=stat.label,
            title=spec.title,
            link=links[spec.sort] if spec.sort is not None else None,
        )
        for stat, spec in COLUMNS
    ]


@dataclass(frozen=True)
class Cell:
    key: str
    html: SafeString


@dataclass(frozen=True)
class TableLine:
    """A rater's row of the table: the row and its statistic cells, in column order."""

    row: RaterRow
    cells: list[Cell]


def table_lines(rows: list[RaterRow]) -> list[TableLine]:
    return [TableLine(row=row, cells=row_cells(row)) for row in rows]


def row_cells(row: RaterRow) -> list[Cell]:
    """Each column's value with its unit, then its detail lines (counts, intervals…)."""
    cells = []
    for stat, spec in COLUMNS:
        value = getattr(row, stat.name)
        if value is None:
            title = format_html(' title="{}"', spec.missing) if spec.missing else ""
            main = format_html('<span class="muted"{}>—</span>', title)
        else:
            main = format_html("{}{}", format_value(stat, value), stat.suffix)
        details: SafeString | str = ""
        if value is not None or spec.details_without_value:
            details = format_html_join(
                "",
                '<span class="sub">{}</span>',
                ((_detail(row, names),) for names in spec.details),
            )
        note = getattr(row, spec.note, None) if spec.note else None
        if note is not None:
            details = format_html(
                '{}<span class="sub" data-decision="{}">{}</span>', details, note.state, note.text
            )
        cells.append(Cell(key=stat.name, html=format_html("{}{}", main, details)))
    return cells


def format_value(stat: RaterStatistic, value: Number) -> str:
    """A statistic's number as the dashboard writes it (``floatformat``, like the templates)."""
    if value is None:
        return "—"
    if stat.is_count:
        return str(int(value))
    if stat.unit == "p_value" and value < SMALLEST_P_VALUE:
        return f"< {SMALLEST_P_VALUE:g}"
    return str(floatformat(value, stat.digits))


def _detail(row: RaterRow, names: tuple[str, ...]) -> str:
    """One detail line: the statistics shown together (an interval: low to high)."""
    first = STATISTICS[names[0]]
    shown = RANGE_DASH.join(format_value(STATISTICS[name], getattr(row, name)) for name in names)
    return first.detail.format(shown)
