"""The one job lifecycle (`core.jobs`), with export jobs as the concrete kind: enqueue on
commit by task name, claim by conditional UPDATE, heartbeat, finish, fail, retake after a
lost worker, and the sweep of jobs nobody will finish."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from core import jobs
from core.jobs import (
    MAX_ATTEMPTS,
    JobStatus,
    job_claim,
    job_enqueue,
    job_fail,
    job_finish,
    job_heartbeat,
    jobs_sweep,
)
from core.tasks import jobs_sweep_task
from exports.models import ExportJob
from exports.params import export_params_clean
from exports.services import EXPORT_TASK
from tests.exports.broker import broker_refusing

pytestmark = pytest.mark.django_db


@pytest.fixture
def export_folder(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    return tmp_path / "exports"


@pytest.fixture
def job(project, lead) -> ExportJob:
    return ExportJob.objects.create(
        project=project, created_by=lead, params=export_params_clean({})
    )


def reload(job: ExportJob) -> ExportJob:
    return ExportJob.objects.get(pk=job.pk)


def silence(job: ExportJob, field: str = "heartbeat_at", seconds: int | None = None) -> None:
    seconds = seconds or settings.JOB_STALE_SECONDS + 5
    ExportJob.objects.filter(pk=job.pk).update(
        **{field: timezone.now() - timedelta(seconds=seconds)}
    )


# --- claim --------------------------------------------------------------------------------


def test_claim_takes_a_queued_job_once(job):
    assert job_claim(ExportJob, job_id=job.pk) is True
    assert job_claim(ExportJob, job_id=job.pk) is False

    claimed = reload(job)
    assert claimed.status == "running" and claimed.attempts == 1
    assert claimed.started_at and claimed.heartbeat_at


@pytest.mark.django_db(transaction=True)
def test_of_two_claims_racing_for_one_job_only_one_wins(project, lead):
    job = ExportJob.objects.create(project=project, created_by=lead, params=export_params_clean({}))
    start = threading.Barrier(2)
    won: list[bool] = []

    def claim() -> None:
        start.wait()
        try:
            won.append(job_claim(ExportJob, job_id=job.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(won) == [False, True]
    assert reload(job).attempts == 1


def test_claim_retakes_a_running_job_whose_heartbeat_went_silent(job):
    assert job_claim(ExportJob, job_id=job.pk)
    silence(job)

    assert job_claim(ExportJob, job_id=job.pk) is True

    retaken = reload(job)
    assert retaken.status == "running" and retaken.attempts == 2
    assert timezone.now() - retaken.heartbeat_at < timedelta(minutes=1)


def test_claim_leaves_a_running_job_with_a_live_worker_alone(job):
    assert job_claim(ExportJob, job_id=job.pk)
    silence(job, seconds=settings.JOB_STALE_SECONDS // 2)

    assert job_claim(ExportJob, job_id=job.pk) is False
    assert reload(job).attempts == 1


def test_a_job_lost_max_attempts_times_is_failed_not_retaken(job):
    for _ in range(MAX_ATTEMPTS):
        assert job_claim(ExportJob, job_id=job.pk)
        silence(job)

    assert job_claim(ExportJob, job_id=job.pk) is False

    failed = reload(job)
    assert failed.status == "failed" and failed.attempts == MAX_ATTEMPTS
    assert failed.error == f"abandoned: its worker was lost {MAX_ATTEMPTS} times"


def test_finished_jobs_are_never_claimed(job):
    assert job_claim(ExportJob, job_id=job.pk)
    assert job_finish(ExportJob, job_id=job.pk, rows=3)

    assert job_claim(ExportJob, job_id=job.pk) is False
    assert reload(job).status == "done"


# --- heartbeat, finish, fail ----------------------------------------------------------------


def test_heartbeat_records_progress_while_running(job):
    assert job_claim(ExportJob, job_id=job.pk)
    silence(job, seconds=30)

    assert job_heartbeat(ExportJob, job_id=job.pk, rows=40, prompts=5) is True

    beating = reload(job)
    assert (beating.rows, beating.prompts) == (40, 5)
    assert timezone.now() - beating.heartbeat_at < timedelta(seconds=10)


def test_heartbeat_after_fail_returns_false(job):
    assert job_claim(ExportJob, job_id=job.pk)
    assert job_fail(ExportJob, job_id=job.pk, reason="abandoned")

    assert job_heartbeat(ExportJob, job_id=job.pk, rows=10) is False
    assert reload(job).rows == 0


def test_finish_after_fail_is_refused(job):
    assert job_claim(ExportJob, job_id=job.pk)
    assert job_fail(ExportJob, job_id=job.pk, reason="abandoned: its worker stopped responding")

    assert job_finish(ExportJob, job_id=job.pk, rows=99, sha256="ab" * 32) is False

    failed = reload(job)
    assert failed.status == "failed" and failed.rows == 0 and failed.sha256 == ""
    assert failed.error == "abandoned: its worker stopped responding"


def test_fail_after_finish_leaves_the_job_done(job):
    assert job_claim(ExportJob, job_id=job.pk)
    assert job_finish(ExportJob, job_id=job.pk, rows=7)

    assert job_fail(ExportJob, job_id=job.pk, reason="too late") is False
    assert (reload(job).status, reload(job).error) == ("done", "")


def test_finish_records_the_result_and_the_time(job):
    assert job_claim(ExportJob, job_id=job.pk)

    assert job_finish(ExportJob, job_id=job.pk, rows=12, sha256="0" * 64)

    done = reload(job)
    assert (done.status, done.rows, done.sha256) == ("done", 12, "0" * 64)
    assert done.finished_at >= done.started_at


def test_fail_keeps_a_bounded_reason(job):
    assert job_fail(ExportJob, job_id=job.pk, reason="x" * 10_000)

    assert len(reload(job).error) == jobs.ERROR_CHARS


def test_a_worker_whose_job_was_retaken_can_no_longer_beat_finish_or_fail_it(job):
    assert job_claim(ExportJob, job_id=job.pk)  # attempt 1, then its worker stalls
    silence(job)
    assert job_claim(ExportJob, job_id=job.pk)  # attempt 2 takes over

    assert job_heartbeat(ExportJob, job_id=job.pk, attempt=1, rows=5) is False
    assert job_finish(ExportJob, job_id=job.pk, attempt=1, rows=5) is False
    assert job_fail(ExportJob, job_id=job.pk, attempt=1, reason="stale worker") is False
    assert job_heartbeat(ExportJob, job_id=job.pk, attempt=2, rows=6) is True
    assert job_finish(ExportJob, job_id=job.pk, attempt=2, rows=6) is True
    assert (reload(job).status, reload(job).rows) == ("done", 6)


# --- enqueue ------------------------------------------------------------------------------


def test_enqueue_sends_the_task_by_name_when_the_transaction_commits(
    job, export_folder, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        job_enqueue(ExportJob, job_id=job.pk, task_name=EXPORT_TASK)
    assert reload(job).status == "queued"  # nothing is sent before the commit

    for callback in callbacks:
        callback()  # the commit: tasks run in-process in the tests

    assert reload(job).status == "done"


def test_enqueue_of_a_task_nobody_registered_fails_the_job(job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_enqueue(ExportJob, job_id=job.pk, task_name="exports.tasks.no_such_task")

    failed = reload(job)
    assert failed.status == "failed"
    assert failed.error.startswith("could not queue the job: NotRegistered")


def test_enqueue_with_the_broker_down_fails_the_job_could_not_queue(
    job, django_capture_on_commit_callbacks
):
    with broker_refusing(), django_capture_on_commit_callbacks(execute=True):
        job_enqueue(ExportJob, job_id=job.pk, task_name=EXPORT_TASK)

    failed = reload(job)
    assert failed.status == "failed" and failed.finished_at
    assert failed.error.startswith("could not queue the job: OperationalError")


# --- sweep --------------------------------------------------------------------------------


def test_sweep_fails_lost_jobs_with_the_reason_and_leaves_the_others(project, lead):
    def make(**fields) -> ExportJob:
        return ExportJob.objects.create(
            project=project, created_by=lead, params=export_params_clean({}), **fields
        )

    now = timezone.now()
    long_ago = now - timedelta(
        seconds=max(settings.JOB_QUEUED_SECONDS, settings.JOB_STALE_SECONDS) + 5
    )
    never_picked_up = make(created_at=long_ago)
    waiting = make()
    silent = make(status="running", started_at=long_ago, heartbeat_at=long_ago)
    never_beat = make(status="running", started_at=long_ago)  # a row from before heartbeats
    alive = make(status="running", started_at=long_ago, heartbeat_at=now)
    done = make(status="done", created_at=long_ago, finished_at=long_ago)
    abandoned: list[int] = []

    result = jobs_sweep(ExportJob, on_abandoned=abandoned.append)

    assert sorted(result.job_ids) == sorted([never_picked_up.pk, silent.pk, never_beat.pk])
    assert sorted(abandoned) == sorted(result.job_ids) and result.failed == 3
    assert "never picked up by a worker" in reload(never_picked_up).error
    assert reload(silent).error == "abandoned: its worker stopped responding"
    assert reload(never_beat).status == "failed"
    assert [reload(j).status for j in (waiting, alive, done)] == ["queued", "running", "done"]
    assert jobs_sweep(ExportJob).failed == 0  # a second beat finds nothing more


def test_a_failing_clean_up_does_not_stop_the_sweep(project, lead, caplog):
    old = timezone.now() - timedelta(seconds=settings.JOB_QUEUED_SECONDS + 5)
    first, second = (
        ExportJob.objects.create(
            project=project, created_by=lead, params=export_params_clean({}), created_at=old
        )
        for _ in range(2)
    )

    def broken(job_id: int) -> None:
        raise OSError("disk gone")

    result = jobs_sweep(ExportJob, on_abandoned=broken)

    assert result.failed == 2
    assert {reload(first).status, reload(second).status} == {"failed"}
    assert "cleaning up abandoned job" in caplog.text


def test_exports_are_a_registered_job_kind_swept_by_the_beat_task(job):
    kinds = {kind.model: kind for kind in jobs.job_kinds()}
    assert ExportJob in kinds and kinds[ExportJob].on_abandoned is not None
    assert settings.CELERY_BEAT_SCHEDULE["sweep-lost-jobs"]["task"] == jobs_sweep_task.name
    silence(job, field="created_at", seconds=settings.JOB_QUEUED_SECONDS + 5)

    counts = jobs_sweep_task.delay().get()

    assert counts["exports.ExportJob"] == 1
    assert reload(job).status == JobStatus.FAILED
