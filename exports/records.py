"""Record formats: exports of one row per authored record (a demonstration, a red-team
attempt) rather than per preference pair — each declared once here with its task kind and
where its rows come from, for the export jobs (`exports.services.record_jobs`: JSON Lines,
gzip or Parquet, splits, byte-identical reruns) and the streamed JSON Lines download.

The names, labels and kinds are the pure registry's (`exports.formats.registry`); pair
formats stay there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInput
from exports.formats.red_team import RED_TEAM_FORMAT, red_team_arrow_schema, red_team_row
from exports.formats.registry import RECORD_FORMAT_KINDS, RECORD_FORMAT_NAMES
from exports.formats.rows import Row, encode_row
from exports.formats.sft import SFT_FORMAT_NAMES, sft_arrow_schema, sft_format, sft_row
from exports.params import STORED_PARAMS
from exports.selectors.demonstrations import demonstration_batches, exported_demonstrations
from exports.selectors.red_team import red_team_attempt_batches, red_team_attempt_count
from labeling.models import Project

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class RecordFormat:
    name: str
    label: str
    summary: str
    task_kind: str
    count: Callable[[Project, dict[str, Any]], int]
    """How many records the export takes (its progress estimate)."""
    batches: Callable[[Project, dict[str, Any]], Iterator[list[Any]]]
    """The records in a fixed order, a batch at a time; each has a `prompt_id`."""
    row: Callable[[Any, str, bool], Row]
    """(record, split, with_metadata) → the row."""
    arrow_schema: Callable[[bool], pa.Schema]
    """(with_metadata) → the fixed Parquet schema of the rows."""


def _sft(name: str) -> RecordFormat:
    spec = sft_format(name)
    return RecordFormat(
        name=name,
        label=spec.label,
        summary=spec.summary,
        task_kind=RECORD_FORMAT_KINDS[name],
        count=lambda project, params: exported_demonstrations(
            project=project, params=params
        ).count(),
        batches=lambda project, params: demonstration_batches(project=project, params=params),
        row=partial(sft_row, name),
        arrow_schema=partial(sft_arrow_schema, name),
    )


def _red_team() -> RecordFormat:
    return RecordFormat(
        name=RED_TEAM_FORMAT,
        label="Red-team attempts",
        summary="One row per labelled red-team attempt: brief, transcript (messages and turns "
        "with flags and failures), the rater's label (succeeded, category, severity, note), "
        "reviewers' labels, pseudonymous rater keys and the target model.",
        task_kind=RECORD_FORMAT_KINDS[RED_TEAM_FORMAT],
        count=lambda project, params: red_team_attempt_count(project=project),
        batches=lambda project, params: red_team_attempt_batches(project=project),
        row=lambda attempt, split, with_metadata: red_team_row(attempt),
        arrow_schema=lambda with_metadata: red_team_arrow_schema(),
    )


RECORD_FORMATS: tuple[RecordFormat, ...] = (*map(_sft, SFT_FORMAT_NAMES), _red_team())
_BY_NAME = {record.name: record for record in RECORD_FORMATS}
assert tuple(_BY_NAME) == RECORD_FORMAT_NAMES, "declare record formats in the registry too"


def record_format(name: str, *, project: Project) -> RecordFormat:
    """The format of that name for this project's kind; InvalidInput names `format`."""
    record = _BY_NAME.get(name)
    if record is None:
        raise InvalidInput(
            f"unknown record format; expected one of: {', '.join(RECORD_FORMAT_NAMES)}",
            field="format",
        )
    if record.task_kind != project.task_kind:
        raise InvalidInput(f"the {name} format is for {record.task_kind} projects", field="format")
    return record


def record_export_lines(*, project: Project, name: str) -> Iterator[bytes]:
    """The export as JSON Lines with the default parameters; the format is checked before
    the first line is made."""
    record = record_format(name, project=project)
    params = {param.name: param.default for param in STORED_PARAMS}
    return (
        encode_row(record.row(item, "", params["with_metadata"]))
        for batch in record.batches(project, params)
        for item in batch
    )
