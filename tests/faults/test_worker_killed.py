"""kill -9 of a Celery worker mid-job: the redelivered message retakes the job once its
heartbeat is stale and finishes it (the same sha256 for an export), and the killed attempt's
staged file is gone. Killed with its main process, the message stays unacknowledged in
Redis; the sweep of the next worker's beat sends it again.

(A job stopped by Celery's hard time limit is failed with that reason by the worker's
`task_failure` signal: tests/core/test_jobs.py.)"""

from __future__ import annotations

import time

import pytest

from core.jobs import JobStatus
from exports import services as export_services
from rankings.models import AgreementRun, RaterScore
from rankings.runs import services as run_services
from tests.faults.data import PROMPTS, rank_all
from tests.faults.helpers import wait_until

pytestmark = [
    pytest.mark.postgresql("a worker process shares the test database"),
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]

SLOW_EXPORT = {"batch_delay": "0.4", "batch_size": "4"}  # 10 batches, about 4 s
PARAMS = {"test_fraction": 0.25, "seed": 7}


@pytest.fixture
def ranked(project, rater, rater2):
    rank_all(project, [rater, rater2])
    return project


def reload(job):
    return type(job).objects.get(pk=job.pk)


def finished(job) -> bool:
    return reload(job).status in (JobStatus.DONE, JobStatus.FAILED)


def staged(exports) -> list[str]:
    return sorted(path.name for path in (exports / "staging").glob("*.partial"))


def test_a_worker_child_killed_mid_export_is_restarted_and_gives_the_same_file(
    broker, start_worker, ranked, lead, fault_settings
):
    worker = start_worker(**SLOW_EXPORT)
    job = export_services.export_job_create(project=ranked, created_by=lead, params=PARAMS)
    wait_until(lambda: reload(job).rows > 0, seconds=30, what="export under way")
    assert staged(fault_settings), "the export stages its files while it runs"

    worker.kill_child()
    killed_at = time.monotonic()
    wait_until(lambda: finished(job), seconds=40, what="export finished after the kill")
    recovered = time.monotonic() - killed_at

    done = reload(job)
    assert done.status == JobStatus.DONE, done.error
    assert done.attempts == 2 and done.rows == PROMPTS * 2 * 3
    assert staged(fault_settings) == []
    # The same parameters over the same data, run without a fault: the same bytes.
    again = export_services.export_job_create(project=ranked, created_by=lead, params=PARAMS)
    wait_until(lambda: finished(again), seconds=30, what="second export")
    assert reload(again).sha256 == done.sha256
    assert [reload(again).splits[name]["sha256"] for name in ("train", "test")] == [
        done.splits[name]["sha256"] for name in ("train", "test")
    ]
    assert (fault_settings / done.file.name).stat().st_size == done.size_bytes
    print(f"\nexport restarted after kill -9 of its worker child: done {recovered:.1f} s after")


def test_a_worker_child_killed_mid_agreement_run_is_restarted_and_finishes(
    broker, start_worker, ranked, lead, rater, rater2
):
    worker = start_worker(maths_delay="2")
    run = run_services.agreement_run_request(project=ranked, trigger="manual")
    wait_until(lambda: reload(run).status == JobStatus.RUNNING, seconds=30, what="run started")
    time.sleep(0.5)  # inside its maths

    worker.kill_child()
    killed_at = time.monotonic()
    wait_until(lambda: finished(run), seconds=40, what="run finished after the kill")
    recovered = time.monotonic() - killed_at

    done = reload(run)
    assert done.status == JobStatus.DONE, done.error
    assert done.attempts == 2 and done.n_rankings == PROMPTS * 2
    assert RaterScore.objects.filter(run=done).count() == 2
    assert AgreementRun.objects.filter(project=ranked).count() == 1
    print(f"\nagreement run restarted after kill -9 of its worker child: {recovered:.1f} s")


def test_a_whole_worker_killed_mid_export_is_caught_by_the_sweep_of_the_next_one(
    broker, start_worker, ranked, lead, fault_settings, tmp_path
):
    worker = start_worker(**SLOW_EXPORT)
    job = export_services.export_job_create(project=ranked, created_by=lead, params=PARAMS)
    wait_until(lambda: reload(job).rows > 0, seconds=30, what="export under way")

    worker.kill()  # main process too: the message stays unacknowledged in Redis
    killed_at = time.monotonic()
    start_worker("-B", "--schedule", str(tmp_path / "beat-schedule"), **SLOW_EXPORT)
    wait_until(lambda: finished(job), seconds=60, what="export finished after the kill")
    recovered = time.monotonic() - killed_at

    done = reload(job)
    assert done.status == JobStatus.DONE, done.error
    assert done.attempts == 2 and done.sent_at is not None  # sent again by the sweep
    assert staged(fault_settings) == []
    print(f"\nexport retaken after kill -9 of the whole worker: done {recovered:.1f} s after")
