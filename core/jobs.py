"""The one job lifecycle every background job uses (agreement runs, exports, and the jobs
that come later): status, claim, heartbeat, progress, finish, fail with a reason, retry after
a lost worker or a lost message, and the sweep that ends jobs nobody will finish.

A job is a row; the Celery task only carries its id. The row, not the broker, is the truth:

    queued ──claim──▶ running ──finish──▶ done
       │   ▲             │  │ └──fail──────▶ failed
       │   └─ re-sent ◀──┘  └─ silent: retaken by a redelivered or re-sent message
       └─ broker refused / never picked up / silent too long / time limit ──▶ failed (reason)

- **Enqueue on commit** (`job_enqueue`): the task is sent once the transaction that created
  the row commits; if the broker refuses, the job fails with "could not queue" at once
  (`job_raise_if_not_queued` turns that into a 503 for the client) rather than waiting.
- **Claim** (`job_claim`) is a conditional UPDATE, so a message delivered twice runs the job
  once. A *running* job whose heartbeat went silent for `JOB_STALE_SECONDS` (its worker was
  killed) is claimed again by the redelivered message (Celery's `acks_late` +
  `task_reject_on_worker_lost`), up to `MAX_ATTEMPTS`. A message that finds the job running
  with a live heartbeat comes back when that heartbeat would be stale (`job_claim_or_check_back`):
  a worker killed a moment ago still looks alive, and its redelivered message must not be
  dropped.
- **Heartbeat** (`job_heartbeat`) between steps, with progress fields, answers False when the
  job is no longer this worker's (so it stops); `job_beating` also beats from a thread every
  `JOB_HEARTBEAT_SECONDS` so a long step never looks like a dead worker.
- **Finish / fail** are conditional on `running` (and on the worker's attempt).
- **Sweep** (`jobs_sweep`, from beat every `JOB_SWEEP_SECONDS`): a queued job not picked up
  `JOB_QUEUED_SECONDS` after its message was sent, and a silent running job, get their
  message sent again (a lost message, a worker gone with its unacknowledged message); jobs
  queued or silent for `JOB_GIVE_UP_SECONDS`, or lost `MAX_ATTEMPTS` times, are failed with
  the reason, and the job kind cleans up after them (`on_abandoned`, and `clean_up` on
  every sweep for what no job row points at any more).
- **Time limit**: a job whose task hit Celery's hard time limit is failed with that reason
  at once (it would hit it again).

Pure Django: no app imports, so every app may build on it. Over 400 lines on purpose: the
states above and the functions that move a job between them are one contract, read top to
bottom; split, each half would need the other to be understood.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connections, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.errors import RanklabError

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""A job whose worker was lost this many times is failed rather than retried again."""

ERROR_CHARS = 4000
QUEUE_REFUSED = "could not queue the job"
"""How the reason of a job the broker refused starts."""


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


LIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobNotQueued(RanklabError):
    """The broker refused the job's task: the job is failed, the client should retry later."""

    status_code = 503
    code = "not_queued"


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
    sent_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the job's task was last sent again (or is due back); the first "
        "sending is at created_at.",
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
    """A running job silent this long lost its worker, and may be retaken.

    Workers beat between steps and from a thread every `JOB_HEARTBEAT_SECONDS`, far more
    often than this; `JOB_STALE_SECONDS` in the settings.
    """
    return timedelta(seconds=settings.JOB_STALE_SECONDS)


def queued_too_long() -> timedelta:
    """A queued job no worker picked up this long after its message was sent lost it: the
    message is sent again."""
    return timedelta(seconds=settings.JOB_QUEUED_SECONDS)


def given_up_after() -> timedelta:
    """A job queued, or silent, this long is failed: no worker will finish it."""
    return timedelta(seconds=settings.JOB_GIVE_UP_SECONDS)


def _silent_since(cutoff: datetime) -> Q:
    """Running jobs with no sign of life since the cutoff: their last heartbeat, or their
    start when they never beat (a row from before heartbeats, or set running by hand), which
    would otherwise stay running, unclaimable and unswept, for ever."""
    return Q(status=JobStatus.RUNNING) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )


def _sent_before(cutoff: datetime) -> Q:
    return Q(sent_at__lt=cutoff) | Q(sent_at__isnull=True, created_at__lt=cutoff)


# --- enqueue --------------------------------------------------------------------------------


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
            reason=f"{QUEUE_REFUSED}: {describe_error(error)}",
            from_statuses=(JobStatus.QUEUED,),
        )


def job_raise_if_not_queued(job: Job) -> None:
    """Raise `JobNotQueued` (a 503) when the broker refused the job just created.

    For the API and pages that create a job for a client who waits on it; the job row
    stays, failed with the reason, so the refusal is on record.
    """
    job.refresh_from_db(fields=["status", "error"])
    if job.status == JobStatus.FAILED and job.error.startswith(QUEUE_REFUSED):
        raise JobNotQueued(
            f"could not queue the {job._meta.verbose_name} (the task queue is unavailable); "
            f"it was marked failed, try again in a moment"
        )


def _task(task_name: str) -> Any:
    """The registered task of that name.

    Workers import every app's tasks module when they start; a web process has not (Celery's
    autodiscovery is lazy), so the first lookup there imports them.
    """
    if task_name not in current_app.tasks:
        current_app.loader.import_default_modules()
    return current_app.tasks[task_name]


# --- claim ----------------------------------------------------------------------------------


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


def job_claim_or_check_back(model: type[Job], *, job_id: int, task_name: str) -> bool:
    """`job_claim`; when the job is running with a live heartbeat, send the task again to
    arrive when that heartbeat would be stale, and answer False.

    A worker killed a moment ago still looks alive: the message Celery redelivers at once
    (`task_reject_on_worker_lost`) must not be dropped, or the job would wait for the sweep.
    If the worker is alive after all, the message comes back, finds the job done, and stops.
    One message waits per job (`sent_at` holds when it is due), however many duplicates
    arrive.
    """
    if job_claim(model, job_id=job_id):
        return True
    if current_app.conf.task_always_eager:
        return False  # in-process: nobody was lost
    row = (
        model._default_manager.filter(pk=job_id, status=JobStatus.RUNNING)
        .values_list("heartbeat_at", "started_at")
        .first()
    )
    if row is None:
        return False
    now = timezone.now()
    last_sign = row[0] or row[1] or now
    due = max(last_sign + stale_after(), now) + timedelta(seconds=1)
    waiting = model._default_manager.filter(
        Q(sent_at__isnull=True) | Q(sent_at__lt=now), pk=job_id, status=JobStatus.RUNNING
    ).update(sent_at=due)
    if waiting:
        try:
            _task(task_name).apply_async((job_id,), countdown=(due - now).total_seconds())
        except Exception:
            logger.exception("could not send %s %s again", model._meta.verbose_name, job_id)
    return False


# --- heartbeat, finish, fail ------------------------------------------------------------------


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


@contextmanager
def job_beating(model: type[Job], *, job_id: int, attempt: int) -> Iterator[None]:
    """Beat every `JOB_HEARTBEAT_SECONDS` from a thread while the block runs.

    The heartbeat then says the worker process is alive, even through a step longer than
    `JOB_STALE_SECONDS` (one big query, a long transaction); whether the job is still this
    worker's is for the block's own `job_heartbeat` calls to find out. A beat that fails (a
    database busy or briefly away) is logged and tried again at the next interval.
    """
    stop = threading.Event()
    interval = float(settings.JOB_HEARTBEAT_SECONDS)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    job_heartbeat(model, job_id=job_id, attempt=attempt)
                except Exception as error:
                    logger.warning("heartbeat of job %s failed: %s", job_id, error)
        finally:
            connections.close_all()  # this thread's connections only

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


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


# --- sweep ----------------------------------------------------------------------------------


def lost_jobs_filter(*, now: datetime | None = None) -> Q:
    """Jobs nobody will finish: queued or silent past `given_up_after`, or silent past
    `stale_after` after `MAX_ATTEMPTS` lost workers."""
    now = now or timezone.now()
    give_up = now - given_up_after()
    return (
        Q(status=JobStatus.QUEUED, created_at__lt=give_up)
        | _silent_since(give_up)
        | (_silent_since(now - stale_after()) & Q(attempts__gte=MAX_ATTEMPTS))
    )


def resend_due_filter(*, now: datetime | None = None) -> Q:
    """Jobs whose message was lost: queued and not picked up `queued_too_long` after it was
    sent, or running silent (the worker died with its unacknowledged message, which Redis
    would give back only after its visibility timeout); not sent again within that time."""
    now = now or timezone.now()
    lost_message = Q(status=JobStatus.QUEUED) | (
        _silent_since(now - stale_after()) & Q(attempts__lt=MAX_ATTEMPTS)
    )
    return lost_message & _sent_before(now - queued_too_long()) & ~lost_jobs_filter(now=now)


def live_job_filter(*, now: datetime | None = None) -> Q:
    """Jobs a worker may still finish: queued or running, and not given up by the sweep."""
    return Q(status__in=LIVE_STATUSES) & ~lost_jobs_filter(now=now)


@dataclass(frozen=True)
class SweepResult:
    failed: int
    job_ids: tuple[int, ...]
    resent: tuple[int, ...] = ()


def jobs_sweep(
    model: type[Job],
    *,
    on_abandoned: Callable[[int], None] | None = None,
    task_name: str | None = None,
    now: datetime | None = None,
) -> SweepResult:
    """Fail every lost job of this kind with the reason (`on_abandoned(job_id)` cleans up
    after each: a partial file, say); given the kind's `task_name`, send the task again for
    the jobs whose message was lost. Safe to run from several beats at once."""
    now = now or timezone.now()
    lost = list(
        model._default_manager.filter(lost_jobs_filter(now=now)).values_list(
            "pk", "status", "attempts"
        )
    )
    failed: list[int] = []
    for job_id, status, attempts in lost:
        if status == JobStatus.QUEUED:
            reason = "abandoned: queued but never picked up by a worker (lost message or no worker)"
        elif attempts >= MAX_ATTEMPTS:
            reason = f"abandoned: its worker was lost {MAX_ATTEMPTS} times"
        else:
            reason = "abandoned: its worker stopped responding"
        # Conditional again: the job may have finished or been claimed since the read.
        if job_fail(model, job_id=job_id, reason=reason, extra=lost_jobs_filter(now=now)):
            failed.append(job_id)
            _clean_up_after(on_abandoned, job_id)
    resent = _resend_lost_messages(model, task_name=task_name, now=now) if task_name else ()
    return SweepResult(failed=len(failed), job_ids=tuple(failed), resent=resent)


def _clean_up_after(on_abandoned: Callable[[int], None] | None, job_id: int) -> None:
    if on_abandoned is None:
        return
    try:
        on_abandoned(job_id)
    except Exception:
        logger.exception("cleaning up abandoned job %s failed", job_id)


def job_send_again_if_lost(model: type[Job], *, job_id: int, task_name: str) -> bool:
    """Send the task again (on commit) if the job's message looks lost (`resend_due_filter`);
    for a client asking for a job that is already queued, without waiting for the sweep."""
    if not model._default_manager.filter(resend_due_filter(), pk=job_id).update(
        sent_at=timezone.now()
    ):
        return False
    job_enqueue(model, job_id=job_id, task_name=task_name)
    return True


def _resend_lost_messages(model: type[Job], *, task_name: str, now: datetime) -> tuple[int, ...]:
    due = resend_due_filter(now=now)
    resent = []
    for job_id in model._default_manager.filter(due).values_list("pk", flat=True):
        # Conditional: of two sweeps at once, one sends.
        if not model._default_manager.filter(due, pk=job_id).update(sent_at=now):
            continue
        try:
            _task(task_name).delay(job_id)
        except Exception:
            logger.exception("could not send %s %s again", model._meta.verbose_name, job_id)
            continue
        logger.info("sent %s %s again: its message was lost", model._meta.verbose_name, job_id)
        resent.append(job_id)
    return tuple(resent)


# The registry of job kinds: each app registers its job models when it is ready, so the
# one sweep covers every kind without core importing any app.


@dataclass(frozen=True)
class JobKind:
    model: type[Job]
    task_name: str | None = None
    on_abandoned: Callable[[int], None] | None = None
    clean_up: Callable[[], int] | None = None


_kinds: dict[str, JobKind] = {}


def register_job_kind(
    model: type[Job],
    *,
    task_name: str | None = None,
    on_abandoned: Callable[[int], None] | None = None,
    clean_up: Callable[[], int] | None = None,
) -> None:
    """Sweep this job model: `task_name` runs a job (sent again when its message was lost),
    `on_abandoned(job_id)` cleans up after a job the sweep failed, `clean_up()` after jobs
    in general on every sweep (files of jobs that are over), answering how much it removed."""
    _kinds[model._meta.label] = JobKind(
        model=model, task_name=task_name, on_abandoned=on_abandoned, clean_up=clean_up
    )


def job_kinds() -> tuple[JobKind, ...]:
    return tuple(_kinds[label] for label in sorted(_kinds))


def job_kind_of_task(task_name: str) -> JobKind | None:
    return next((kind for kind in _kinds.values() if kind.task_name == task_name), None)


def jobs_sweep_kind(model: type[Job], *, now: datetime | None = None) -> SweepResult:
    """Sweep one registered kind with its task and clean-up."""
    kind = _kinds[model._meta.label]
    return jobs_sweep(model, on_abandoned=kind.on_abandoned, task_name=kind.task_name, now=now)


def sweep_all_job_kinds() -> dict[str, int]:
    """Beat entry: fail the lost jobs of every registered kind, send lost messages again,
    clean up; counts by model label (`<label>` failed, `<label>.resent`, `<label>.cleaned`)."""
    counts: dict[str, int] = {}
    for kind in job_kinds():
        label = kind.model._meta.label
        result = jobs_sweep_kind(kind.model)
        counts[label] = result.failed
        counts[f"{label}.resent"] = len(result.resent)
        if kind.clean_up is not None:
            try:
                counts[f"{label}.cleaned"] = kind.clean_up()
            except Exception:
                logger.exception("periodic clean-up of %s failed", label)
    return counts


def job_fail_past_time_limit(*, task_name: str, args: Any, limit: Any) -> bool:
    """A job's task was killed by Celery's hard time limit: fail the job with that reason
    and clean up after it (it would hit the limit again if retaken). From the worker's
    `task_failure` signal (`core.apps`)."""
    kind = job_kind_of_task(task_name)
    if kind is None or not args:
        return False
    job_id = int(args[0])
    failed = job_fail(
        kind.model,
        job_id=job_id,
        reason=f"stopped: the job ran past its time limit ({limit} s)",
        from_statuses=(JobStatus.RUNNING,),
    )
    if failed:
        _clean_up_after(kind.on_abandoned, job_id)
    return failed
