"""Export jobs: create one (queued on commit), run it in streaming batches through the
`core.jobs` lifecycle, store its files, delete them.

The job row is the truth: a worker claims it, beats with its progress after every batch,
and stops when the beat is refused (the sweep gave the job up, or another worker retook
it); what it staged is then removed by whoever gave it up (`export_job_abandoned`).
"""

from __future__ import annotations

import gc
import logging
import os
import time
from array import array
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import IO, Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from core import db
from core.errors import Conflict
from core.jobs import (
    JobStatus,
    describe_error,
    job_beating,
    job_claim_or_check_back,
    job_enqueue,
    job_fail,
    job_finish,
    job_heartbeat,
)
from exports import formats, selectors
from exports.card import CardTally
from exports.models import Container, ExportJob, PairStrategy, exports_storage
from exports.params import export_params_clean
from exports.services.batches import BatchTimer, ExportRequest, export_batches, rows_estimate
from exports.services.card import export_card_make
from exports.services.prompt_ids import pack_prompt_ids
from exports.services.staging import (
    staged_file,
    staged_files_found,
    staged_files_remove,
    store,
)
from labeling.models import AuditAction, Project
from labeling.services import audit_record

logger = logging.getLogger(__name__)

EXPORT_TASK = "exports.tasks.export_job_run"
"""The Celery task that runs a job, by its registered name (see `core.jobs.job_enqueue`)."""


class JobLost(Exception):
    """The job is no longer this worker's: the sweep failed it, or another worker retook it."""


def export_job_create(
    *,
    project: Project,
    created_by: Any,
    format: str = formats.DEFAULT_FORMAT,
    strategy: str = PairStrategy.ALL_PAIRS,
    container: str = Container.JSONL,
    params: dict[str, Any] | None = None,
) -> ExportJob:
    """A queued job, sent to a worker once the transaction commits (failed with the reason
    if the broker refuses it)."""
    cleaned = export_params_clean(
        params or {}, project=project, format=format, strategy=strategy, container=container
    )
    with transaction.atomic():
        job = ExportJob.objects.create(
            project=project,
            created_by=created_by,
            format=format,
            strategy=strategy,
            container=container,
            params=cleaned,
        )
        audit_record(
            action=AuditAction.EXPORT_CREATE,
            actor=created_by,
            project=project,
            target=f"export {job.pk}",
            changes={"format": format, "strategy": strategy, "container": container, **cleaned},
        )
        job_enqueue(ExportJob, job_id=job.pk, task_name=EXPORT_TASK)
    return job


def export_job_run(*, job_id: int) -> dict[str, Any]:
    """Run a queued job (or retake one whose worker was lost) to done or failed; a failure
    is recorded on the job, not raised. A job another worker runs is left alone (its
    message comes back to check on it: `core.jobs.job_claim_or_check_back`)."""
    if not job_claim_or_check_back(ExportJob, job_id=job_id, task_name=EXPORT_TASK):
        return {"job_id": job_id, "status": _status(job_id), "skipped": True}
    job = ExportJob.objects.select_related("project").get(pk=job_id)
    try:
        with (
            _fewer_collections(),
            job_beating(ExportJob, job_id=job_id, attempt=job.attempts),
            _export_reads(job),
        ):
            _write_export_files(job)
    except JobLost:
        logger.warning("export %s was given up while running; stopped", job_id)
        return {"job_id": job_id, "status": _status(job_id), "lost": True}
    except Exception as error:
        logger.exception("export %s failed", job_id)
        job_fail(ExportJob, job_id=job_id, reason=describe_error(error), attempt=job.attempts)
        return {"job_id": job_id, "status": JobStatus.FAILED, "error": str(error)[:200]}
    return {"job_id": job_id, "status": JobStatus.DONE, "rows": job.rows}


def export_job_abandoned(job_id: int) -> None:
    """The sweep gave the job up (`on_abandoned`): remove what its lost worker staged."""
    removed = staged_files_remove(job_id)
    if removed:
        logger.info("removed %s staged file(s) of abandoned export %s", removed, job_id)


def export_staged_files_clean_up() -> int:
    """Every sweep (`clean_up`): remove staged files no running attempt is writing — left by
    a worker killed before the sweep gave its job up, or on a machine the sweep's clean-up
    of that job did not reach. How many were removed."""
    staged = staged_files_found()
    running = dict(
        ExportJob.objects.filter(
            pk__in={job_id for job_id, _, _ in staged}, status=JobStatus.RUNNING
        ).values_list("pk", "attempts")
    )
    removed = 0
    for job_id, attempt, path in staged:
        if running.get(job_id) != attempt:
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        logger.info("removed %s staged export file(s) of jobs that are over", removed)
    return removed


def _status(job_id: int) -> str | None:
    return ExportJob.objects.filter(pk=job_id).values_list("status", flat=True).first()


_GC_THRESHOLD = 50_000


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while an export runs.

    An export allocates millions of short-lived containers (decoded rows, pairs, encoded
    pieces), which reference counting frees batch by batch; with the default thresholds
    the collector would still walk the young generations every 2,000 allocations and cost
    about a third of the export's CPU time. Memory stays bounded by the batch.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(_GC_THRESHOLD, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


@contextmanager
def _export_reads(job: ExportJob) -> Iterator[None]:
    """The export reads its data from the read replica, when there is one that has the
    job's snapshot: a job pinned to a ranking the replica has not replayed yet (it lags)
    reads from the primary, so that the same parameters still give the same file."""
    pinned = job.params.get("until_ranking_id")
    with db.replica_reads():
        caught_up = (
            not db.has_replica()
            or pinned is None
            or selectors.newest_ranking_id(project=job.project) >= pinned
        )
        if caught_up:
            yield
            return
    logger.info("export %s: the read replica is behind its snapshot; reading the primary", job.pk)
    yield


def _file_name(job: ExportJob, part: str) -> str:
    suffix = "" if part == formats.ALL else f"-{part}"
    return f"exports/project-{job.project_id}/export-{job.pk}{suffix}.{job.container}"


def _beat(job: ExportJob, **progress: Any) -> None:
    if not job_heartbeat(ExportJob, job_id=job.pk, attempt=job.attempts, **progress):
        raise JobLost(job.pk)


def _write_export_files(job: ExportJob) -> None:
    if job.format in formats.RECORD_FORMAT_NAMES:  # one row per record, no pairs
        from exports.services.record_jobs import record_export_write

        record_export_write(job, beat=_beat, file_name=_file_name, lost=JobLost)
        return
    started_at = time.perf_counter()
    timer = BatchTimer()
    request = ExportRequest.for_job(job)
    # Pin the snapshot: rankings arriving while the job runs wait for the next export.
    pinned = job.params["until_ranking_id"]
    job.last_ranking_id = (
        selectors.newest_ranking_id(project=job.project) if pinned is None else pinned
    )
    request = request.pinned(job.last_ranking_id)
    job.rows_estimated = rows_estimate(request)
    _beat(job, rows_estimated=job.rows_estimated, last_ranking_id=job.last_ranking_id)
    timer.add("estimate", started_at)
    split = request.params["test_fraction"] > 0
    parts = [formats.ALL, formats.TRAIN, formats.TEST] if split else [formats.ALL]
    storage = exports_storage()
    staged_files_remove(job.pk)  # what an earlier, lost attempt left behind
    staged: dict[str, tuple[IO[bytes], str]] = {}
    files: formats.ExportFiles | None = None
    stored: list[str] = []
    exported_ids = array("q")
    tally = CardTally()  # who the rows come from, for the dataset card
    try:
        for part in parts:
            staged[part] = staged_file(storage, job_id=job.pk, attempt=job.attempts, part=part)
        files = formats.ExportFiles(
            fmt=job.format,
            container=job.container,
            **request.shape(),
            files={part: handle for part, (handle, _) in staged.items()},
        )
        rows = 0
        # Closed at once if the job stops early, which stops the read-ahead thread.
        with closing(export_batches(request, timer=timer, prefetch=True, tally=tally)) as batches:
            for batch in batches:
                started = time.perf_counter()
                for prompt, prompt_pairs, prompt_split in batch:
                    rows += files.add(prompt, prompt_pairs, prompt_split)
                    exported_ids.append(prompt.prompt_id)
                files.encode()
                started = timer.add("encode", started)
                files.flush()
                timer.add("write", started)
                _beat(job, rows=rows, prompts=len(exported_ids))
        started = time.perf_counter()
        results = files.close()
        rows_by_split = files.rows_by_split
        files = None  # closed
        for handle, _ in staged.values():
            handle.close()
        started = timer.add("write", started)
        names = {}
        for part, (_, path) in staged.items():
            names[part] = store(storage, _file_name(job, part), path)
            stored.append(names[part])
        timer.add("store", started)
        covered = np.concatenate(
            [np.frombuffer(exported_ids, dtype=np.int64), request.skip_prompt_ids.ids]
        )
        combined = results[formats.ALL]
        job.rows, job.sha256, job.size_bytes = combined.rows, combined.sha256, combined.size_bytes
        job.prompts = len(exported_ids)
        job.splits = {
            name: {"rows": rows_by_split.get(name, 0)}
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
        started = time.perf_counter()
        card = export_card_make(job=job, params=request.params, results=results, tally=tally)
        timer.add("card", started)
        timer.seconds["total"] = time.perf_counter() - started_at
        job.timings = timer.rounded()
        if not job_finish(
            ExportJob,
            job_id=job.pk,
            attempt=job.attempts,
            file=names[formats.ALL],
            rows=job.rows,
            sha256=job.sha256,
            size_bytes=job.size_bytes,
            prompts=job.prompts,
            splits=job.splits,
            exported_prompt_ids=pack_prompt_ids(covered),
            timings=job.timings,
            card=card,
        ):
            raise JobLost(job.pk)
        stored.clear()  # the job's now
    finally:
        if files is not None:  # stopped early: stop the writer before closing its files
            files.abort()
        for handle, path in staged.values():
            handle.close()
            if os.path.exists(path):
                os.unlink(path)
        for name in stored:  # stored, but the job was failed or retaken meanwhile
            storage.delete(name)


def export_job_delete_file(*, job: ExportJob, deleted_by: Any) -> ExportJob:
    """Delete a finished export's files; the job record, its numbers and sha256 stay."""
    with transaction.atomic():
        locked = ExportJob.objects.select_for_update().get(pk=job.pk)
        if not locked.file:
            raise Conflict("this export has no file to delete", code="no_file")
        names = [locked.file.name or ""] + [
            split["file"] for split in locked.splits.values() if split.get("file")
        ]
        locked.file.name = ""
        locked.splits = {
            name: {key: value for key, value in split.items() if key != "file"}
            for name, split in locked.splits.items()
        }
        locked.file_deleted_at = timezone.now()
        locked.file_deleted_by = deleted_by
        locked.save(update_fields=["file", "splits", "file_deleted_at", "file_deleted_by"])
        audit_record(
            action=AuditAction.EXPORT_DELETE,
            actor=deleted_by,
            project=locked.project,
            target=f"export {job.pk}",
            changes={"files": names, "sha256": locked.sha256},
        )
        transaction.on_commit(lambda: _delete_stored(names))
    return locked


def _delete_stored(names: list[str]) -> None:
    storage = exports_storage()
    for name in names:
        storage.delete(name)
