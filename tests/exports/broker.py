"""A broker that refuses connections, for tests of what happens when Redis is down."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from config.celery import app as celery_app
from tests.helpers import unused_port


def forget_broker_state() -> None:
    """Forget the app's pools and queue routing so the next send uses the broker configured
    now (as tests/rankings/test_celery_worker.py does)."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.amqp._rtable = None
    for cached in ("queues", "default_queue", "router"):
        celery_app.amqp.__dict__.pop(cached, None)


@contextmanager
def broker_refusing() -> Iterator[str]:
    """Tasks really go to a broker, at a port that refuses them; restored afterwards.

    Sending uses `broker_write_url`: unlike `broker_url`, which Celery reads from the
    CELERY_BROKER_URL environment variable first, it can be pointed elsewhere here.
    """
    conf = celery_app.conf
    saved = {
        "broker_write_url": conf.get("broker_write_url"),
        "task_always_eager": conf.task_always_eager,
        "broker_connection_timeout": conf.broker_connection_timeout,
    }
    url = f"redis://127.0.0.1:{unused_port()}/0"
    conf.broker_write_url = url
    conf.task_always_eager = False
    conf.broker_connection_timeout = 1
    forget_broker_state()
    try:
        yield url
    finally:
        conf.update(saved)
        forget_broker_state()
