"""Generation with a real Celery worker consuming from Redis (database 8 by default), the
endpoint's concurrency limit held by the Redis semaphore across the worker's threads."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun

from config.celery import app as celery_app
from core.jobs import JobStatus
from labeling.models import Response
from llm.concurrency import endpoint_slot
from llm.models import GenerationJob
from tests.llm.helpers import import_bare_prompts, make_endpoint
from tests.rankings.runs.test_celery_worker import _forget_broker_state, running_under_ci

DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/8"
TIMEOUT_SECONDS = 60.0


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("LLM_TEST_REDIS_URL") or DEFAULT_TEST_REDIS
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except (redis.RedisError, OSError) as error:
        if running_under_ci():
            pytest.fail(f"CI=true but Redis at {url} is not reachable: {error}")
        pytest.skip(f"Redis at {url} is not reachable ({error})")
    return url


def test_the_redis_semaphore_holds_the_limit_across_threads(redis_url, settings):
    settings.LLM_SEMAPHORE_URL = redis_url
    endpoint_id = int(uuid.uuid4().int % 10**9)
    lock = threading.Lock()
    inside, most = [0], [0]

    def hold() -> None:
        with endpoint_slot(endpoint_id=endpoint_id, limit=3, hold_seconds=30):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 3


def test_a_lost_holder_frees_its_slot_after_the_hold_limit(redis_url, settings):
    settings.LLM_SEMAPHORE_URL = redis_url
    endpoint_id = int(uuid.uuid4().int % 10**9)
    client = redis.Redis.from_url(redis_url)
    # A worker killed while holding the only slot, a second ago.
    client.zadd(f"ranklab:llm:semaphore:{endpoint_id}", {"lost": time.time() - 1})
    started = time.monotonic()
    with endpoint_slot(endpoint_id=endpoint_id, limit=1, hold_seconds=1.5):
        waited = time.monotonic() - started
    assert 0.2 < waited < 3


@pytest.fixture
def llm_worker(redis_url, transactional_db, settings) -> Iterator[object]:
    conf = celery_app.conf
    saved = {
        "broker_url": conf.broker_url,
        "task_always_eager": conf.task_always_eager,
        "task_default_queue": conf.task_default_queue,
    }
    settings.LLM_SEMAPHORE_URL = redis_url
    conf.broker_url = redis_url
    conf.task_always_eager = False
    conf.task_default_queue = f"ranklab-llm-test-{uuid.uuid4().hex[:12]}"
    _forget_broker_state()
    try:
        with start_worker(
            celery_app,
            pool="threads",
            concurrency=3,
            perform_ping_check=False,
            shutdown_timeout=30,
        ) as worker:
            yield worker
    finally:
        celery_app.control.purge()
        conf.update(saved)
        _forget_broker_state()


@pytest.mark.celery_worker
@pytest.mark.postgresql("a threaded worker writes from several connections at once")
def test_a_worker_generates_in_chunks_within_the_concurrency_limit(
    llm_worker, api_for, lead, project, rater, fake_llm, settings
):
    settings.LLM_CHUNK_PROMPTS = 2
    prompts = import_bare_prompts(project, 10)
    a = make_endpoint(project, fake_llm.base_url, name="a", concurrency=2)
    b = make_endpoint(project, fake_llm.base_url, name="b", model="fake-b", concurrency=2)
    fake_llm.state.latency = 0.1
    fake_llm.state.faults.extend(["500", "500"])  # a retried call, then a success
    chunks: list[tuple[str, bool]] = []

    def record(sender=None, task=None, **kwargs) -> None:
        chunks.append((task.name, bool(task.request.is_eager)))

    task_postrun.connect(record, weak=False)
    try:
        response = api_for(lead).post(
            f"/api/projects/{project.pk}/generations/",
            {"endpoints": [a.pk, b.pk], "samples": 1, "prompts": "missing"},
            format="json",
        )
        assert response.status_code == 202
        job_id = response.json()["id"]
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while GenerationJob.objects.get(pk=job_id).is_live:
            assert time.monotonic() < deadline, "the worker never finished the job"
            time.sleep(0.2)
    finally:
        task_postrun.disconnect(record)
    report = api_for(lead).get(f"/api/generations/{job_id}/").json()
    assert report["status"] == JobStatus.DONE, report
    assert report["progress"] == {"planned": 20, "done": 20, "succeeded": 20, "failed": 0}
    assert Response.objects.filter(prompt__in=prompts).count() == 20
    # Each endpoint at its limit of 2, never above, although three chunks ran at the same
    # time with two threads per endpoint each.
    assert fake_llm.state.max_in_flight_by_model == {"fake-a": 2, "fake-b": 2}
    names = [name for name, eager in chunks if not eager]
    assert names.count("llm.tasks.generation_run") == 1
    assert names.count("llm.tasks.generation_chunk") == 5
    assert api_for(rater).get(f"/api/projects/{project.pk}/next-task/").status_code == 200
