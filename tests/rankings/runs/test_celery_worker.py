"""A real Celery worker, consuming from Redis, computes agreement runs queued on commit.

The worker runs in a thread of this process (``celery.contrib.testing.worker``) against the
broker in CELERY_BROKER_URL, or Redis database 15 on localhost. Without a reachable Redis the
tests skip locally; under CI (``CI=true``) they fail instead, so the job cannot go green
without ever having run a worker.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from kombu.utils.url import maybe_sanitize_url

from config.celery import app as celery_app
from core.jobs import JobStatus
from labeling import services as labeling_services
from rankings.models import AgreementRun, RaterScore
from rankings.runs import tasks
from rankings.stats.project import project_agreement
from tests.helpers import sample_records
from tests.rankings.agreement_helpers import rank_in_turns, reference_table

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

DEFAULT_TEST_BROKER = "redis://127.0.0.1:6379/15"
RUN_TIMEOUT_SECONDS = 30.0


def running_under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture
def broker_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL") or DEFAULT_TEST_BROKER
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except (redis.RedisError, OSError) as error:
        where = maybe_sanitize_url(url)
        if running_under_ci():
            pytest.fail(f"CI=true but the Redis broker at {where} is not reachable: {error}")
        pytest.skip(f"Redis broker at {where} is not reachable ({error}); start Redis to run it")
    return url


@pytest.fixture
def redis_worker(broker_url: str, transactional_db, settings) -> Iterator[object]:
    """An embedded worker on a queue of this run's own; tasks really go through Redis.

    The queue name is new for every run, so another worker listening on the same Redis
    database (a developer's, another test run's) can never take the test's tasks, and
    leftovers of an interrupted run are never consumed.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    conf = celery_app.conf
    saved = {
        "broker_url": conf.broker_url,
        "task_always_eager": conf.task_always_eager,
        "task_default_queue": conf.task_default_queue,
    }
    assert conf.task_default_queue == settings.CELERY_TASK_DEFAULT_QUEUE == "ranklab"
    conf.broker_url = broker_url
    conf.task_always_eager = False
    conf.task_default_queue = f"ranklab-test-{uuid.uuid4().hex[:12]}"
    _forget_broker_state()
    try:
        with start_worker(
            celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30
        ) as worker:
            yield worker
    finally:
        celery_app.control.purge()  # this run's queue only
        conf.update(saved)
        _forget_broker_state()


def _forget_broker_state() -> None:
    """Forget the app's pools and queue routing, so the next send uses the broker and the
    default queue configured now.

    Pools are not closed: kombu keeps them in a registry keyed by broker URL and hands them
    out again.
    """
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.amqp._rtable = None
    for cached in ("queues", "default_queue", "router"):
        celery_app.amqp.__dict__.pop(cached, None)


def test_the_worker_consumes_a_queue_of_its_own(redis_worker):
    queue = celery_app.conf.task_default_queue
    assert queue.startswith("ranklab-test-")
    consumed = {q.name for q in redis_worker.consumer.task_consumer.queues}
    assert consumed == {queue}


def wait_for_finished_run(run_id: int) -> AgreementRun:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        run = AgreementRun.objects.get(pk=run_id)
        if run.status in (JobStatus.DONE, JobStatus.FAILED):
            return run
        time.sleep(0.2)
    raise AssertionError(
        f"agreement run {run_id} still {run.status!r} after {RUN_TIMEOUT_SECONDS:.0f} s; "
        "is the worker consuming the queue the task was sent to?"
    )


@pytest.fixture
def ranked(project, make_user, add_member):
    crowd = [add_member(make_user(f"crowd{index}")) for index in range(3)]
    labeling_services.project_update(project=project, overlap=3)
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(5, responses=4))
    )
    return rank_in_turns(project, crowd, seed=5)


@pytest.fixture
def tasks_run(redis_worker) -> Iterator[list[tuple[str, bool, bool]]]:
    """(task name, eager?, in the test's own thread?) of every task finished during the test."""
    finished: list[tuple[str, bool, bool]] = []
    test_thread = threading.get_ident()

    def record(sender=None, task=None, **kwargs) -> None:
        in_test_thread = threading.get_ident() == test_thread
        finished.append((task.name, bool(task.request.is_eager), in_test_thread))

    task_postrun.connect(record, weak=False)
    yield finished
    task_postrun.disconnect(record)


def test_worker_computes_a_run_requested_through_the_api(
    redis_worker, tasks_run, api_for, lead, project, ranked
):
    response = api_for(lead).post(f"/api/projects/{project.pk}/agreement/")

    assert response.status_code == 202
    assert response.json()["status"] in {"queued", "running", "done"}
    run = wait_for_finished_run(response.json()["run_id"])
    assert run.status == JobStatus.DONE, run.error
    table, _ = reference_table(ranked)
    expected = project_agreement(table)
    assert run.metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert run.metrics[key] == (value if value is None else pytest.approx(value)), key
    assert run.n_rankings == len(ranked) == 15
    assert RaterScore.objects.filter(run=run).count() == 3
    latest = api_for(lead).get(f"/api/projects/{project.pk}/agreement/").json()["latest"]
    assert latest["id"] == run.pk
    assert latest["kappa"] == pytest.approx(expected["kappa"])
    # Computed by the worker thread from a Redis message, not in-process by this request
    # (the import behind `ranked` also sent the prompt search index's job).
    agreement_tasks = [task for task in tasks_run if task[0].startswith("rankings.")]
    assert agreement_tasks == [("rankings.tasks.agreement_run_compute", False, False)]


def test_scheduled_task_queues_a_run_the_worker_then_computes(redis_worker, project, ranked):
    tasks.agreement_run_all_projects.delay()

    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while not AgreementRun.objects.filter(project=project).exists():
        assert time.monotonic() < deadline, "the beat task never queued a run"
        time.sleep(0.2)
    run = wait_for_finished_run(AgreementRun.objects.get(project=project).pk)
    assert run.status == JobStatus.DONE and run.trigger == "schedule"
    assert run.n_rankings == len(ranked)
