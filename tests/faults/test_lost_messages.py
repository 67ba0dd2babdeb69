"""Messages lost: the test's own Redis is restarted without persistence while no worker
runs, so the queued jobs' messages are gone. The sweep (beat, in the next worker) sends an
export's message again; "run now" sends a lost agreement run's message again at once
instead of answering the stale queued run."""

from __future__ import annotations

import time

import pytest

from core.jobs import JobStatus
from exports import services as export_services
from rankings.models import AgreementRun
from rankings.runs import services as run_services
from tests.exports.broker import forget_broker_state
from tests.faults.data import PROMPTS, rank_all
from tests.faults.helpers import JOB_SETTINGS, wait_until

pytestmark = [
    pytest.mark.postgresql("a worker process shares the test database"),
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def ranked(project, rater, rater2):
    rank_all(project, [rater, rater2])
    return project


def reload(job):
    return type(job).objects.get(pk=job.pk)


def lose_every_message(broker, queue: str) -> None:
    assert broker.queued_messages(queue) >= 1
    broker.restart()  # no persistence: the queue is gone
    forget_broker_state()  # this process reconnects to the new server
    assert broker.queued_messages(queue) == 0


def test_an_export_whose_message_was_lost_is_sent_again_by_the_sweep(
    broker, queue, start_worker, ranked, lead, tmp_path
):
    job = export_services.export_job_create(project=ranked, created_by=lead)
    lose_every_message(broker, queue)

    start_worker("-B", "--schedule", str(tmp_path / "beat-schedule"))  # beat sweeps every 1 s
    # A bound on "never stuck", not a speed claim: generous, as the suite may share the cores.
    took = wait_until(
        lambda: reload(job).status in (JobStatus.DONE, JobStatus.FAILED),
        seconds=90,
        what="lost export finished",
    )

    done = reload(job)
    assert done.status == JobStatus.DONE, done.error
    assert done.sent_at is not None and done.attempts == 1
    assert done.rows == PROMPTS * 2 * 3
    print(f"\nlost export message: sent again and done {took:.1f} s after the worker started")


def test_run_now_sends_a_lost_agreement_run_again_instead_of_answering_it_stale(
    broker, queue, start_worker, ranked
):
    lost = run_services.agreement_run_request(project=ranked, trigger="manual")
    lose_every_message(broker, queue)
    start_worker()  # no beat: only "run now" can recover it
    time.sleep(1)
    assert reload(lost).status == JobStatus.QUEUED  # nothing arrived

    time.sleep(JOB_SETTINGS["JOB_QUEUED_SECONDS"])  # now overdue
    again = run_services.agreement_run_request(project=ranked, trigger="manual")
    took = wait_until(
        lambda: reload(lost).status in (JobStatus.DONE, JobStatus.FAILED),
        seconds=30,
        what="lost run finished",
    )

    assert again.pk == lost.pk
    done = reload(lost)
    assert done.status == JobStatus.DONE, done.error
    assert done.n_rankings == PROMPTS * 2
    assert AgreementRun.objects.filter(project=ranked).count() == 1
    print(f"\nlost agreement run: done {took:.1f} s after run now sent it again")
