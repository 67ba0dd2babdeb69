"""PostgreSQL terminates every connection (`pg_terminate_backend`), as a restart or a
failover would: the next requests of the production web server (gunicorn) and the next task
of the worker get a fresh connection (CONN_HEALTH_CHECKS), no 500.

Django's test client switches off the per-request connection check, so the requests go to
a real server process."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import psycopg
import pytest
from django.db import connection

from core.jobs import JobStatus, job_enqueue
from labeling.accounts.services import api_token_create
from rankings.models import AgreementRun
from rankings.runs import services as run_services
from tests.faults.data import rank_all
from tests.faults.helpers import DIRECT, wait_until

pytestmark = [
    pytest.mark.postgresql("pg_terminate_backend is PostgreSQL's"),
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def ranked(project, rater, rater2):
    rank_all(project, [rater, rater2])
    return project


def terminate_every_connection() -> int:
    """Terminate every connection to the test database (this process's too); how many."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [db["NAME"]],
        ).fetchall()
    connection.close()  # the test's own, terminated too
    return len(rows)


def get(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
    try:
        with DIRECT.open(request, timeout=20) as response:
            return response.status, response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", "")


def test_requests_after_the_database_dropped_its_connections_are_answered(web, lead, ranked):
    token = api_token_create(user=lead, name="faults").secret
    urls = [f"{web}/api/projects/{ranked.pk}/", f"{web}/api/projects/{ranked.pk}/agreement/"]
    for _ in range(4):  # both gunicorn workers hold a connection
        assert [get(url, token)[0] for url in urls] == [200, 200]

    terminated = terminate_every_connection()

    assert terminated >= 1
    started = time.monotonic()
    answers = [get(url, token)[0] for _ in range(6) for url in urls]
    assert answers == [200] * 12
    print(
        f"\n{terminated} connections terminated; 12 requests after: all 200 "
        f"({time.monotonic() - started:.2f} s)"
    )


def test_a_worker_whose_connection_was_terminated_runs_the_next_job(broker, start_worker, ranked):
    start_worker()
    first = run_services.agreement_run_request(project=ranked, trigger="manual")
    wait_until(
        lambda: AgreementRun.objects.get(pk=first.pk).status == JobStatus.DONE,
        seconds=30,
        what="first run",
    )

    assert terminate_every_connection() >= 1  # the worker's too

    second = AgreementRun.objects.create(project=ranked, trigger="manual")
    job_enqueue(AgreementRun, job_id=second.pk, task_name=run_services.COMPUTE_TASK)
    wait_until(
        lambda: AgreementRun.objects.get(pk=second.pk).status in (JobStatus.DONE, "failed"),
        seconds=30,
        what="run after the connections were terminated",
    )
    done = AgreementRun.objects.get(pk=second.pk)
    assert done.status == JobStatus.DONE, done.error
