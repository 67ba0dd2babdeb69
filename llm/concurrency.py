"""Each endpoint's concurrency limit, held across chunks, jobs and workers.

A counting semaphore per endpoint: in Redis (`LLM_SEMAPHORE_URL`, by default the Celery
broker when it is Redis) so every worker process on every machine shares it; in process
(a `threading.BoundedSemaphore`) when tasks run in-process with no broker.

The Redis semaphore is a sorted set of holders scored by when they acquired, in one Lua
script: holders older than the hold limit (a worker killed mid-call) are dropped first, so a
lost holder never blocks the endpoint for longer than that.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings

KEY_PREFIX = "ranklab:llm:semaphore:"

_ACQUIRE = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_s - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_s, ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 60)
  return 1
end
return 0
"""

_local: dict[tuple[int, int], threading.BoundedSemaphore] = {}
_local_lock = threading.Lock()
_redis_clients: dict[str, Any] = {}


def semaphore_url() -> str:
    return str(getattr(settings, "LLM_SEMAPHORE_URL", "") or "")


@contextmanager
def endpoint_slot(*, endpoint_id: int, limit: int, hold_seconds: float) -> Iterator[None]:
    """Hold one of the endpoint's `limit` slots for the block (waiting for one)."""
    url = semaphore_url()
    if url:
        with _redis_slot(url, endpoint_id=endpoint_id, limit=limit, hold_seconds=hold_seconds):
            yield
        return
    with _local_semaphore(endpoint_id, limit):
        yield


def _local_semaphore(endpoint_id: int, limit: int) -> threading.BoundedSemaphore:
    with _local_lock:
        semaphore = _local.get((endpoint_id, limit))
        if semaphore is None:
            semaphore = _local[(endpoint_id, limit)] = threading.BoundedSemaphore(limit)
        return semaphore


def _redis(url: str) -> Any:
    import redis

    client = _redis_clients.get(url)
    if client is None:
        client = _redis_clients[url] = redis.Redis.from_url(url)
    return client


@contextmanager
def _redis_slot(url: str, *, endpoint_id: int, limit: int, hold_seconds: float) -> Iterator[None]:
    client = _redis(url)
    key = f"{KEY_PREFIX}{endpoint_id}"
    token = uuid.uuid4().hex
    acquire = client.register_script(_ACQUIRE)
    wait = 0.005
    while not acquire(keys=[key], args=[limit, hold_seconds, token]):
        time.sleep(wait * (0.5 + random.random()))
        wait = min(wait * 2, 0.1)
    try:
        yield
    finally:
        client.zrem(key, token)
