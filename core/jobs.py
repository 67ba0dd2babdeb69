"""The one job lifecycle every background job uses (agreement runs, exports, and the jobs
that come later): status, claim, heartbeat, progress, finish, fail with a reason, retry after
a lost worker, and the sweep that ends jobs nobody will finish.

A job is a row; the Celery task only carries its id. The row, not the broker, is the truth:

    queued ──claim──▶ running ──finish──▶ done
       │                 │  └──fail──────▶ failed
       └─ broker refused / lost message / worker lost too often ──▶ failed (with the reason)

- **Enqueue on commit** (`job_enqueue`): the task is sent once the transaction that created
  the row commits; if the broker refuses, the job fails with "could not queue" at once
  rather than waiting forever.
- **Claim** (`job_claim`) is a conditional UPDATE, so a redelivered message cannot run a job
  twice. A *running* job whose heartbeat went silent (its worker was killed) may be claimed
  again by the redelivered message (Celery's `acks_late` + `task_reject_on_worker_lost`),
  up to `MAX_ATTEMPTS`.
- **Heartbeat** (`job_heartbeat`) while working, with progress fields; it answers False
  when the job is no longer this worker's (failed by the sweep), so the worker stops.
- **Finish / fail** are conditional on `running`: a job the sweep gave up stays failed.
- **Sweep** (`jobs_sweep`, from beat): queued jobs whose message never arrived and running
  jobs whose heartbeat is older than the stale limit are failed with the reason; their
  partial files are the job kind's to clean (`on_abandoned`).

Pure Django: no app imports, so every app may build on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""A job whose worker was lost this many times is failed rather than retried again."""

ERROR_CHARS = 4000


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


LIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class Job(models.Model):
    """Abstract base of every job row: the lifecycle's columns."""

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life from the worker running the job."
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="How many times a worker claimed the job."
    )

    class Meta:
        abstract = True

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


def describe_error(error: BaseException) -> str:
    """A failure reason for the job row: the exception's type and message, bounded."""
    return f"{type(error).__name__}: {error}"[:ERROR_CHARS]


def stale_after() -> timedelta:
    """A running job silent this long lost its worker.

    Workers beat between steps (an export's batches, an agreement run's phases), far more
    often than this; `JOB_STALE_SECONDS` in the settings.
    """
    return timedelta(seconds=settings.JOB_STALE_SECONDS)


def queued_too_long() -> timedelta:
    """A queued job no worker picked up in this long lost its message (or has no worker)."""
    return timedelta(seconds=settings.JOB_QUEUED_SECONDS)


def _silent_since(cutoff: datetime) -> Q:
    """Running jobs with no sign of life since the cutoff: their last heartbeat, or their
    start when they never beat (a row from before heartbeats, or set running by hand), which
    would otherwise stay running, unclaimable and unswept, for ever."""
    return Q(status=JobStatus.RUNNING) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )


def job_enqueue(model: type[Job], *, job_id: int, task_name: str) -> None:
    """Send the job's task (by its registered name, with the job id) once the current
    transaction commits, at once outside one.

    By name, so a service never imports its own tasks module (which imports the service).
    A refused broker fails the job with the reason instead of leaving it queued for a
    worker that will never hear of it.
    """
    transaction.on_commit(partial(_send_or_fail, model, job_id, task_name))


def _send_or_fail(model: type[Job], job_id: int, task_name: str) -> None:
    try:
        _task(task_name).delay(job_id)
    except Exception as error:
        logger.exception("could not queue %s %s", model._meta.verbose_name, job_id)
        job_fail(
            model,
            job_id=job_id,
            reason=f"could not queue the job: {describe_error(error)}",
            from_statuses=(JobStatus.QUEUED,),
        )


def _task(task_name: str) -> Any:
    """The registered task of that name.

    Workers import every app's tasks module when they start; a web process has not (Celery's
    autodiscovery is lazy), so the first lookup there imports them.
    """
    if task_name not in current_app.tasks:
        current_app.loader.import_default_modules()
    return current_app.tasks[task_name]


def job_claim(model: type[Job], *, job_id: int) -> bool:
    """queued → running, or retake a running job whose worker went silent; True if won.

    Only one worker wins the conditional UPDATE, so a message delivered twice runs the job
    once; a job retaken too often is failed instead.
    """
    now = timezone.now()
    silent = _silent_since(now - stale_after())
    claimed = (
        model._default_manager.filter(Q(status=JobStatus.QUEUED) | silent, pk=job_id)
        .filter(attempts__lt=MAX_ATTEMPTS)
        .update(
            status=JobStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            error="",
        )
    )
    if claimed:
        return True
    job_fail(
        model,
        job_id=job_id,
        reason=f"abandoned: its worker was lost {MAX_ATTEMPTS} times",
        extra=Q(attempts__gte=MAX_ATTEMPTS) & (Q(status=JobStatus.QUEUED) | silent),
    )
    return False


def _running(model: type[Job], job_id: int, attempt: int | None) -> Any:
    """The job if it is running and, given the attempt a worker claimed, still on that
    attempt: a worker whose job was retaken after its heartbeat went silent (it was only
    slow, not dead) must not beat, finish or fail it any more."""
    jobs = model._default_manager.filter(pk=job_id, status=JobStatus.RUNNING)
    return jobs if attempt is None else jobs.filter(attempts=attempt)


def job_heartbeat(
    model: type[Job], *, job_id: int, attempt: int | None = None, **progress: Any
) -> bool:
    """Record a sign of life (and progress fields); False when the job is no longer running
    (or no longer on the worker's `attempt`)."""
    return bool(_running(model, job_id, attempt).update(heartbeat_at=timezone.now(), **progress))


def job_finish(model: type[Job], *, job_id: int, attempt: int | None = None, **fields: Any) -> bool:
    """running → done with the result fields; False if the job was failed (or retaken)
    meanwhile."""
    return bool(
        _running(model, job_id, attempt).update(
            status=JobStatus.DONE, finished_at=timezone.now(), error="", **fields
        )
    )


def job_fail(
    model: type[Job],
    *,
    job_id: int,
    reason: str,
    attempt: int | None = None,
    from_statuses: Iterable[str] = LIVE_STATUSES,
    extra: Q | None = None,
) -> bool:
    """Mark a live job failed with the reason; a finished job is left as it is, and so is,
    given the worker's `attempt`, a job another worker retook since."""
    jobs = model._default_manager.filter(pk=job_id, status__in=list(from_statuses))
    if attempt is not None:
        jobs = jobs.filter(attempts=attempt)
    if extra is not None:
        jobs = jobs.filter(extra)
    return bool(
        jobs.update(status=JobStatus.FAILED, error=reason[:ERROR_CHARS], finished_at=timezone.now())
    )


def lost_jobs_filter(*, now: datetime | None = None) -> Q:
    """Jobs nobody will finish: queued past `queued_too_long`, running silent past `stale_after`."""
    now = now or timezone.now()
    return Q(status=JobStatus.QUEUED, created_at__lt=now - queued_too_long()) | _silent_since(
        now - stale_after()
    )


@dataclass(frozen=True)
class SweepResult:
    failed: int
    job_ids: tuple[int, ...]


def jobs_sweep(
    model: type[Job],
    *,
    on_abandoned: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> SweepResult:
    """Fail every lost job of this kind with the reason; `on_abandoned(job_id)` cleans up
    after each (a partial file, say). Safe to run from several beats at once."""
    now = now or timezone.now()
    lost = list(
        model._default_manager.filter(lost_jobs_filter(now=now)).values_list("pk", "status")
    )
    failed: list[int] = []
    for job_id, status in lost:
        reason = (
            "abandoned: queued but never picked up by a worker (lost message or no worker)"
            if status == JobStatus.QUEUED
            else "abandoned: its worker stopped responding"
        )
        # Conditional again: the job may have finished or been claimed since the read.
        if job_fail(model, job_id=job_id, reason=reason, extra=lost_jobs_filter(now=now)):
            failed.append(job_id)
            if on_abandoned is not None:
                try:
                    on_abandoned(job_id)
                except Exception:
                    logger.exception("cleaning up abandoned job %s failed", job_id)
    return SweepResult(failed=len(failed), job_ids=tuple(failed))


# The registry of job kinds: each app registers its job models when it is ready, so the
# one sweep covers every kind without core importing any app.


@dataclass(frozen=True)
class JobKind:
    model: type[Job]
    on_abandoned: Callable[[int], None] | None = None


_kinds: dict[str, JobKind] = {}


def register_job_kind(
    model: type[Job], *, on_abandoned: Callable[[int], None] | None = None
) -> None:
    _kinds[model._meta.label] = JobKind(model=model, on_abandoned=on_abandoned)


def job_kinds() -> tuple[JobKind, ...]:
    return tuple(_kinds[label] for label in sorted(_kinds))


def sweep_all_job_kinds() -> dict[str, int]:
    """Beat entry: fail the lost jobs of every registered kind; counts by model label."""
    return {
        kind.model._meta.label: jobs_sweep(kind.model, on_abandoned=kind.on_abandoned).failed
        for kind in job_kinds()
    }
