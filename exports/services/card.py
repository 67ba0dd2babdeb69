"""An export's dataset card: made with its files (the facts as they stand then, so the card
never changes afterwards), and read back."""

from __future__ import annotations

from typing import Any

from core.errors import Conflict
from core.jobs import JobStatus
from exports import formats
from exports.card import CardTally, DataFile, render_card
from exports.models import ExportJob
from exports.selectors.card import card_facts


def export_card_make(
    *,
    job: ExportJob,
    params: dict[str, Any],
    results: dict[str, formats.FileResult],
    tally: CardTally,
) -> str:
    """The README.md of a job whose files were just written (`results` by part), with
    `job.rows` and `job.prompts` set; `params` are the parameters it ran with."""
    if formats.TRAIN in results:
        parts = [formats.TRAIN, formats.TEST, formats.ALL]
        files = tuple(_data_file(job, part, part, results) for part in parts)
    else:
        # Not split: the one file holds every row, which the card calls the train split.
        files = (_data_file(job, formats.TRAIN, formats.ALL, results),)
    return render_card(card_facts(job=job, params=params, files=files, tally=tally))


def _data_file(
    job: ExportJob, split: str, part: str, results: dict[str, formats.FileResult]
) -> DataFile:
    result = results[part]
    return DataFile(
        split=split,
        rows=result.rows,
        sha256=result.sha256,
        size_bytes=result.size_bytes,
        container=job.container,
    )


def export_card(*, job: ExportJob) -> str:
    """The card of a finished export; it stays when the files are deleted (it records
    their sha256)."""
    if job.status != JobStatus.DONE:
        raise Conflict(f"the export is {job.status}, not done", code="not_ready")
    if not job.card and job.format in formats.RECORD_FORMAT_NAMES:
        raise Conflict(
            f"{job.format} exports have no dataset card; download their files", code="no_card"
        )
    if not job.card:
        raise Conflict(
            "this export was made before exports had dataset cards; create it again",
            code="no_card",
        )
    return job.card
