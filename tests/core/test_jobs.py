"""The one job lifecycle (`core.jobs`), with export jobs as the concrete kind: enqueue on
commit by task name, claim by conditional UPDATE, heartbeat, finish, fail, retake after a
lost worker, and the sweep of jobs nobody will finish."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.celery import app as celery_app
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
    assert retaken.heartbeat_at and timezone.now() - retaken.heartbeat_at < timedelta(minutes=1)


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
    assert beating.heartbeat_at and timezone.now() - beating.heartbeat_at < timedelta(seconds=10)


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
    assert done.finished_at and done.started_at and done.finished_at >= done.started_at


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


# --- sweep ----------------------------------------------------------------------------------


def make_job(project, lead, **fields) -> ExportJob:
    return ExportJob.objects.create(
        project=project, created_by=lead, params=export_params_clean({}), **fields
    )


def test_sweep_fails_given_up_jobs_with_the_reason_and_leaves_the_others(project, lead):
    now = timezone.now()
    given_up = now - timedelta(seconds=settings.JOB_GIVE_UP_SECONDS + 5)
    stale = now - timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
    never_picked_up = make_job(project, lead, created_at=given_up)
    waiting = make_job(project, lead)
    silent = make_job(project, lead, status="running", started_at=given_up, heartbeat_at=given_up)
    never_beat = make_job(project, lead, status="running", started_at=given_up)
    lost_too_often = make_job(
        project, lead, status="running", started_at=stale, heartbeat_at=stale, attempts=MAX_ATTEMPTS
    )
    alive = make_job(project, lead, status="running", started_at=given_up, heartbeat_at=now)
    done = make_job(project, lead, status="done", created_at=given_up, finished_at=given_up)
    abandoned: list[int] = []

    result = jobs_sweep(ExportJob, on_abandoned=abandoned.append)

    expected = [never_picked_up.pk, silent.pk, never_beat.pk, lost_too_often.pk]
    assert sorted(result.job_ids) == sorted(expected)
    assert sorted(abandoned) == sorted(result.job_ids) and result.failed == 4
    assert "never picked up by a worker" in reload(never_picked_up).error
    assert reload(silent).error == "abandoned: its worker stopped responding"
    assert reload(never_beat).status == "failed"
    assert reload(lost_too_often).error == f"abandoned: its worker was lost {MAX_ATTEMPTS} times"
    assert [reload(j).status for j in (waiting, alive, done)] == ["queued", "running", "done"]
    assert jobs_sweep(ExportJob).failed == 0  # a second beat finds nothing more


class SentTasks:
    """Stands in for the registered task: records what would go to the broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, float | None]] = []

    def delay(self, job_id: int) -> None:
        self.sent.append((job_id, None))

    def apply_async(self, args: tuple[int], countdown: float | None = None) -> None:
        self.sent.append((args[0], countdown))


@pytest.fixture
def sent(monkeypatch) -> SentTasks:
    tasks = SentTasks()
    monkeypatch.setattr(jobs, "_task", lambda name: tasks)
    return tasks


def test_sweep_sends_lost_messages_again_once_then_waits(project, lead, sent):
    now = timezone.now()
    overdue = now - timedelta(seconds=settings.JOB_QUEUED_SECONDS + 5)
    stale = now - timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
    lost_message = make_job(project, lead, created_at=overdue)
    just_queued = make_job(project, lead)
    worker_gone = make_job(
        project, lead, status="running", created_at=overdue, started_at=stale, heartbeat_at=stale
    )
    alive = make_job(project, lead, status="running", created_at=overdue, heartbeat_at=now)

    result = jobs_sweep(ExportJob, task_name=EXPORT_TASK)

    assert result.failed == 0
    assert sorted(result.resent) == sorted([lost_message.pk, worker_gone.pk])
    assert sorted(sent.sent) == sorted([(lost_message.pk, None), (worker_gone.pk, None)])
    assert reload(lost_message).sent_at and reload(lost_message).status == "queued"
    assert [reload(j).sent_at for j in (just_queued, alive)] == [None, None]
    # The next beat waits JOB_QUEUED_SECONDS for the message sent again to be picked up.
    assert jobs_sweep(ExportJob, task_name=EXPORT_TASK).resent == ()
    later = now + timedelta(seconds=settings.JOB_QUEUED_SECONDS + 5)
    assert lost_message.pk in jobs_sweep(ExportJob, task_name=EXPORT_TASK, now=later).resent


def test_a_message_lost_for_good_is_failed_when_the_sweep_gives_up(project, lead, sent):
    job = make_job(project, lead)
    later = timezone.now() + timedelta(seconds=settings.JOB_GIVE_UP_SECONDS + 5)

    result = jobs_sweep(ExportJob, task_name=EXPORT_TASK, now=later)

    assert result.job_ids == (job.pk,) and result.resent == () and sent.sent == []
    assert "never picked up by a worker" in reload(job).error


def test_a_redelivered_message_of_a_job_that_still_looks_alive_comes_back_when_stale(
    job, sent, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.task_always_eager = False
    try:
        assert job_claim(ExportJob, job_id=job.pk)  # its worker was killed a moment ago
        silence(job, seconds=10)

        for _ in range(3):  # redelivered, and duplicates of it
            assert (
                jobs.job_claim_or_check_back(ExportJob, job_id=job.pk, task_name=EXPORT_TASK)
                is False
            )
    finally:
        celery_app.conf.task_always_eager = True

    assert len(sent.sent) == 1  # one message waits, however many arrive
    job_id, countdown = sent.sent[0]
    assert job_id == job.pk
    assert settings.JOB_STALE_SECONDS - 10 <= countdown <= settings.JOB_STALE_SECONDS - 8
    assert reload(job).status == "running" and reload(job).attempts == 1


def test_a_failing_clean_up_does_not_stop_the_sweep(project, lead, caplog):
    old = timezone.now() - timedelta(seconds=settings.JOB_GIVE_UP_SECONDS + 5)
    first, second = (make_job(project, lead, created_at=old) for _ in range(2))

    def broken(job_id: int) -> None:
        raise OSError("disk gone")

    result = jobs_sweep(ExportJob, on_abandoned=broken)

    assert result.failed == 2
    assert {reload(first).status, reload(second).status} == {"failed"}
    assert "cleaning up abandoned job" in caplog.text


def test_exports_are_a_registered_job_kind_swept_by_the_beat_task(job, export_folder):
    kinds = {kind.model: kind for kind in jobs.job_kinds()}
    assert ExportJob in kinds and kinds[ExportJob].on_abandoned is not None
    assert kinds[ExportJob].task_name == EXPORT_TASK and kinds[ExportJob].clean_up is not None
    assert settings.CELERY_BEAT_SCHEDULE["sweep-lost-jobs"]["task"] == jobs_sweep_task.name
    silence(job, field="created_at", seconds=settings.JOB_GIVE_UP_SECONDS + 5)

    counts = jobs_sweep_task.delay().get()

    assert counts["exports.ExportJob"] == 1
    assert reload(job).status == JobStatus.FAILED


def test_the_beat_task_sends_a_lost_message_again_and_the_job_finishes(job, export_folder):
    silence(job, field="created_at", seconds=settings.JOB_QUEUED_SECONDS + 5)

    counts = jobs_sweep_task.delay().get()  # tasks run in-process here: sent means run

    assert counts["exports.ExportJob.resent"] == 1
    assert reload(job).status == JobStatus.DONE


# --- heartbeat thread, time limit ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_job_beats_from_a_thread_while_a_long_step_runs(project, lead, settings):
    settings.JOB_HEARTBEAT_SECONDS = 0.05
    job = make_job(project, lead)
    assert job_claim(ExportJob, job_id=job.pk)
    silence(job, seconds=60)

    def last_beat() -> timedelta:
        beat = reload(job).heartbeat_at
        assert beat is not None
        return timezone.now() - beat

    with jobs.job_beating(ExportJob, job_id=job.pk, attempt=1):
        deadline = timezone.now() + timedelta(seconds=5)
        while last_beat() > timedelta(seconds=30):
            assert timezone.now() < deadline, "no beat from the thread"
            time.sleep(0.02)

    assert last_beat() < timedelta(seconds=5)


def test_a_job_past_its_hard_time_limit_is_failed_at_once_and_cleaned_up(job, monkeypatch):
    from celery.exceptions import TimeLimitExceeded
    from celery.signals import task_failure

    from exports.tasks import export_job_run_task

    cleaned: list[int] = []
    kind = jobs._kinds["exports.ExportJob"]
    monkeypatch.setitem(
        jobs._kinds,
        "exports.ExportJob",
        jobs.JobKind(model=ExportJob, task_name=EXPORT_TASK, on_abandoned=cleaned.append),
    )
    assert job_claim(ExportJob, job_id=job.pk)

    task_failure.send(  # what the worker's main process sends when it kills the task
        sender=export_job_run_task, exception=TimeLimitExceeded(1860), args=[job.pk], kwargs={}
    )

    failed = reload(job)
    assert failed.status == "failed" and cleaned == [job.pk]
    assert failed.error == "stopped: the job ran past its time limit (1860 s)"
    assert kind.on_abandoned is not None


# --- the client's answer when the broker refuses -----------------------------------------------


def test_raise_if_not_queued_answers_503_for_a_job_the_broker_refused(
    job, django_capture_on_commit_callbacks
):
    with broker_refusing(), django_capture_on_commit_callbacks(execute=True):
        job_enqueue(ExportJob, job_id=job.pk, task_name=EXPORT_TASK)

    with pytest.raises(jobs.JobNotQueued) as refused:
        jobs.job_raise_if_not_queued(job)

    assert refused.value.status_code == 503 and refused.value.code == "not_queued"
    assert "could not queue the export job" in refused.value.message


def test_raise_if_not_queued_lets_other_failures_through(job):
    assert job_fail(ExportJob, job_id=job.pk, reason="ValueError: boom")

    jobs.job_raise_if_not_queued(job)  # no error: the job ran and failed


def test_persistent_connections_are_checked_before_each_request():
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
