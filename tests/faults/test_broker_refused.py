"""The broker refuses at enqueue (pointed at a closed port): the API answers a JSON 503 at
once, the job is failed with "could not queue", nothing is left queued; once the broker is
back (the test's own Redis and a real worker) the same requests succeed."""

from __future__ import annotations

import time

import pytest

from core.jobs import JobStatus
from exports.models import ExportJob
from rankings.models import AgreementRun
from tests.exports.broker import broker_refusing
from tests.faults.data import rank_all
from tests.faults.helpers import wait_until

pytestmark = [
    pytest.mark.postgresql("a worker process shares the test database"),
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def ranked(project, rater, rater2):
    rank_all(project, [rater, rater2])
    return project


def test_jobs_refused_by_the_broker_answer_503_and_succeed_once_it_is_back(
    broker, start_worker, ranked, api_for, lead
):
    client = api_for(lead)
    exports_url = f"/api/projects/{ranked.pk}/exports/"
    agreement_url = f"/api/projects/{ranked.pk}/agreement/"
    timings = []
    with broker_refusing():
        for url in (exports_url, agreement_url):
            started = time.monotonic()
            response = client.post(url, {}, format="json")
            timings.append(time.monotonic() - started)
            assert response.status_code == 503, response.content
            assert response["Content-Type"] == "application/json"
            assert response.json()["code"] == "not_queued"

    assert not ExportJob.objects.filter(status__in=["queued", "running"]).exists()
    assert not AgreementRun.objects.filter(status__in=["queued", "running"]).exists()
    for job in (*ExportJob.objects.all(), *AgreementRun.objects.all()):
        assert job.status == JobStatus.FAILED and job.error.startswith("could not queue the job")
    assert max(timings) < 10

    start_worker()
    export = client.post(exports_url, {}, format="json")
    run = client.post(agreement_url, {}, format="json")
    assert (export.status_code, run.status_code) == (202, 202)
    wait_until(
        lambda: (
            ExportJob.objects.get(pk=export.json()["id"]).status == JobStatus.DONE
            and AgreementRun.objects.get(pk=run.json()["run_id"]).status == JobStatus.DONE
        ),
        seconds=30,
        what="export and run done once the broker is back",
    )
    print(f"\nbroker refused: 503 after {max(timings):.2f} s at most")
