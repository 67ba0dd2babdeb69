"""Export jobs of the record formats (`exports.records`: one row per demonstration or
red-team attempt), written to JSON Lines (plain or gzip) or Parquet under the job lifecycle
of `exports.services.jobs`.

The rows come in the record's fixed order with canonical JSON (`encode_row`) or a fixed Arrow
schema, and the split is a seeded hash of the prompt id (`split_for_prompt`, as for pairs):
the same parameters over the same data give byte-identical files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from core.jobs import job_finish
from exports import formats
from exports.models import Container, ExportJob, exports_storage
from exports.params import STORED_PARAMS
from exports.records import RecordFormat, record_format
from exports.services.prompt_ids import pack_prompt_ids
from exports.services.staging import staged_file, staged_files_remove, store

Beat = Callable[..., None]
FileName = Callable[[ExportJob, str], str]


class _PartWriter:
    """One file of the export: JSON Lines bytes or Parquet tables, hashed on the way out."""

    def __init__(
        self, handle: IO[bytes], *, job: ExportJob, record: RecordFormat, with_metadata: bool
    ) -> None:
        self._parquet = job.container == Container.PARQUET
        if self._parquet:
            self._schema = record.arrow_schema(with_metadata)
            self._writer: Any = formats.ParquetWriter(handle, self._schema)
        else:
            compress = job.container == Container.JSONL_GZ
            self._writer = formats.JsonlWriter(handle, compress=compress)

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._parquet:
            import pyarrow as pa

            self._writer.write_table(pa.Table.from_pylist(rows, schema=self._schema))
        else:
            self._writer.write_encoded(b"".join(map(formats.encode_row, rows)), len(rows))

    def close(self) -> formats.FileResult:
        result: formats.FileResult = self._writer.close()
        return result


def record_export_write(
    job: ExportJob, *, beat: Beat, file_name: FileName, lost: type[Exception]
) -> None:
    """Write, store and finish the job's files. `beat` raises `lost` when the job is no
    longer this worker's; what was staged or stored is then removed."""
    started_at = time.perf_counter()
    params = {param.name: param.default for param in STORED_PARAMS} | job.params
    with_metadata = params["with_metadata"]
    seed, test_fraction = params["seed"], params["test_fraction"]
    parts = [formats.ALL, formats.TRAIN, formats.TEST] if test_fraction > 0 else [formats.ALL]
    record = record_format(job.format, project=job.project)
    job.rows_estimated = record.count(job.project, params)
    beat(job, rows_estimated=job.rows_estimated)
    storage = exports_storage()
    staged_files_remove(job.pk)
    staged: dict[str, tuple[IO[bytes], str]] = {}
    stored: list[str] = []
    try:
        for part in parts:
            staged[part] = staged_file(storage, job_id=job.pk, attempt=job.attempts, part=part)
        writers = {
            part: _PartWriter(handle, job=job, record=record, with_metadata=with_metadata)
            for part, (handle, _) in staged.items()
        }
        rows_by_split = {formats.TRAIN: 0, formats.TEST: 0}
        prompt_ids: list[int] = []
        rows = 0
        for batch in record.batches(job.project, params):
            by_part: dict[str, list[dict[str, Any]]] = {part: [] for part in parts}
            for data in batch:
                split = formats.split_for_prompt(data.prompt_id, seed, test_fraction)
                row = record.row(data, split, with_metadata)
                by_part[formats.ALL].append(row)
                if split in by_part:
                    by_part[split].append(row)
                rows_by_split[split] += 1
                prompt_ids.append(data.prompt_id)
            for part, part_rows in by_part.items():
                writers[part].write(part_rows)
            rows += len(batch)
            beat(job, rows=rows, prompts=len(set(prompt_ids)))
        results = {part: writer.close() for part, writer in writers.items()}
        for handle, _ in staged.values():
            handle.close()
        names = {}
        for part, (_, path) in staged.items():
            names[part] = store(storage, file_name(job, part), path)
            stored.append(names[part])
        combined = results[formats.ALL]
        job.rows, job.sha256, job.size_bytes = combined.rows, combined.sha256, combined.size_bytes
        job.prompts = len(set(prompt_ids))
        job.splits = {
            name: {"rows": rows_by_split[name]}
            | (
                {
                    "file": names[name],
                    "sha256": results[name].sha256,
                    "size_bytes": results[name].size_bytes,
                }
                if name in results
                else {}
            )
            for name in (formats.TRAIN, formats.TEST)
        }
        job.timings = {"total": round(time.perf_counter() - started_at, 3)}
        finished = job_finish(
            ExportJob,
            job_id=job.pk,
            attempt=job.attempts,
            file=names[formats.ALL],
            rows=job.rows,
            sha256=job.sha256,
            size_bytes=job.size_bytes,
            prompts=job.prompts,
            splits=job.splits,
            exported_prompt_ids=pack_prompt_ids(np.array(prompt_ids, dtype=np.int64)),
            timings=job.timings,
        )
        if not finished:
            raise lost(job.pk)
        stored.clear()  # the job's now
    finally:
        for handle, path in staged.values():
            handle.close()
            if os.path.exists(path):
                os.unlink(path)
        for name in stored:
            storage.delete(name)
