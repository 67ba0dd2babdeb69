"""Reading exports back: a job's stored file by split, its first rows, and small exports
streamed straight to the client (the same bytes a job with the same parameters writes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from django.core.files import File

from core.db import read_on_replica, replica_reads
from core.errors import Conflict, InvalidInput, RanklabError
from core.jobs import JobStatus
from exports import formats
from exports.models import Container, ExportJob, PairStrategy, exports_storage
from exports.params import export_params_clean
from exports.services.batches import ExportRequest, export_batches, rows_estimate
from exports.services.prompt_ids import earlier_prompt_ids
from labeling.models import Project

STREAM_MAX_ROWS = 50_000
"""The most rows the stream endpoint sends; bigger exports are jobs."""
PREVIEW_ROWS = 5


class TooLarge(RanklabError):
    status_code = 413
    code = "too_large"


def export_file_name(*, job: ExportJob, split: str | None) -> str:
    """The stored file for the whole export or one split; errors say why there is none."""
    if job.status != JobStatus.DONE:
        raise Conflict(f"the export is {job.status}, not done", code="not_ready")
    if job.file_deleted_at is not None or not job.file:
        raise Conflict("the export's files were deleted", code="file_deleted")
    if split in (None, "", formats.ALL):
        return job.file.name or ""
    if split not in (formats.TRAIN, formats.TEST):
        raise InvalidInput("split must be train or test", field="split")
    entry = job.splits.get(split, {})
    if entry.get("file"):
        return str(entry["file"])
    if split == formats.TRAIN and not job.params.get("test_fraction"):
        # Not split: every row is a training row.
        return job.file.name or ""
    raise InvalidInput(
        "this export has no test split (test_fraction was 0)" if split == formats.TEST else "",
        field="split",
    )


class FileMissing(RanklabError):
    status_code = 410
    code = "file_missing"


def export_file_open(*, job: ExportJob, split: str | None) -> tuple[File, str]:
    """The stored file of the whole export or one split, open for reading, and its name;
    `FileMissing` (410) when storage lost it (removed by hand, a volume not mounted)."""
    name = export_file_name(job=job, split=split)
    try:
        return exports_storage().open(name, "rb"), name
    except FileNotFoundError:
        raise FileMissing(
            f"export {job.pk}'s file is missing from storage; create the export again "
            "(the same parameters over the same data give the same file)"
        ) from None


def export_preview(*, job: ExportJob, limit: int = PREVIEW_ROWS) -> list[formats.Row]:
    """The first rows of the export's file."""
    handle, _ = export_file_open(job=job, split=None)
    with handle:
        return formats.read_first_rows(cast(BinaryIO, handle), job.container, limit)


class _Drain:
    """A binary sink whose bytes are taken out after each batch."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks = []
        return data


def export_stream_open(
    *,
    project: Project,
    format: str = formats.DEFAULT_FORMAT,
    strategy: str = PairStrategy.ALL_PAIRS,
    container: str = Container.JSONL,
    params: dict[str, Any] | None = None,
    split: str | None = None,
    limit: int | None = None,
) -> Iterator[bytes]:
    """Check the request now and return the generator of the export's bytes.

    Without a limit the export must fit under `STREAM_MAX_ROWS` (by its estimate), and its
    bytes are exactly those of a job with the same parameters over the same data; with a
    limit the first `limit` rows are sent (a sample or preview).
    """
    cleaned = export_params_clean(
        params or {}, project=project, format=format, strategy=strategy, container=container
    )
    if format in formats.RECORD_FORMAT_NAMES:
        raise InvalidInput(
            f"{format} is written by export jobs (or streamed from "
            f"/api/projects/{{id}}/exports/records/{format}/); create one",
            field="format",
        )
    if container == Container.PARQUET:
        raise InvalidInput(
            "Parquet needs the whole file before it can be read; create an export job",
            field="container",
        )
    if split not in (None, "", formats.TRAIN, formats.TEST):
        raise InvalidInput("split must be train or test", field="split")
    if limit is not None and not 1 <= limit <= STREAM_MAX_ROWS:
        raise InvalidInput(f"limit must be between 1 and {STREAM_MAX_ROWS}", field="limit")
    request = ExportRequest(
        project=project,
        format=format,
        strategy=strategy,
        container=container,
        params=cleaned,
        skip_prompt_ids=earlier_prompt_ids(cleaned["since_export"]),
    )
    if limit is None:
        with replica_reads():
            estimate = rows_estimate(request)
        if estimate > STREAM_MAX_ROWS:
            raise TooLarge(
                f"about {estimate} rows is more than the {STREAM_MAX_ROWS} a stream sends; "
                "create an export job or pass a limit",
                field="limit",
            )
    return read_on_replica(_stream(request, split=split or None, limit=limit or STREAM_MAX_ROWS))


def _stream(request: ExportRequest, *, split: str | None, limit: int) -> Iterator[bytes]:
    sink = _Drain()
    files = formats.ExportFiles(
        fmt=request.format,
        container=request.container,
        **request.shape(),
        files={formats.ALL: cast(BinaryIO, sink)},
        background=False,
    )
    rows_per_pair = formats.format_spec(request.format).rows_per_pair
    rows = 0
    for batch in export_batches(request):
        for prompt, prompt_pairs, prompt_split in batch:
            if split and prompt_split != split:
                continue
            room = (limit - rows) // rows_per_pair
            if room <= 0:
                break
            rows += files.add(prompt, prompt_pairs[:room], prompt_split)
        files.flush()
        data = sink.take()
        if data:
            yield data
        if (limit - rows) // rows_per_pair <= 0:
            break
    files.close()
    data = sink.take()
    if data:
        yield data
