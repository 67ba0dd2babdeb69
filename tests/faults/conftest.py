"""Fault tests with the real services: a Redis of the test's own (redis-server on a port of
6390-6399 and a folder of its own, no persistence, so a restart loses its messages), real
Celery worker processes (`tests.faults.worker`) on a queue of the test's own, and the test
database on PostgreSQL, which a worker process can share. The shared Redis and PostgreSQL
servers are never stopped: only the processes started here are killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.db import connection

from config.celery import app as celery_app
from tests.exports.broker import forget_broker_state
from tests.faults.helpers import JOB_SETTINGS, ranklab_serve, wait_until

ROOT = Path(__file__).resolve().parents[2]
REDIS_PORTS = range(6390, 6400)
START_SECONDS = 60.0
"""Straight to the local servers, whatever proxy the environment names."""

# Small lifecycle timings, for the test process and its workers alike.


class OwnRedis:
    """A redis-server of the test's own; `restart()` loses every message (no persistence)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = self._free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _free_port() -> int:
        for port in REDIS_PORTS:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        pytest.skip("no free port in 6390-6399 for the test's own Redis")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--dir", str(self.folder), "--save", "", "--appendonly", "no"),
                *("--logfile", str(self.folder / "redis.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_until(lambda: self._answers(client), seconds=START_SECONDS, what="own Redis up")

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # as a crash would: nothing saved
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def queued_messages(self, queue: str) -> int:
        return int(redis.Redis(port=self.port).llen(queue))


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_settings(settings, tmp_path: Path) -> Path:
    """The lifecycle's timings made small, and exports stored where the workers store them."""
    for name, value in JOB_SETTINGS.items():
        setattr(settings, name, value)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    exports = tmp_path / "exports"
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(exports)},
        },
    }
    return exports


@pytest.fixture
def queue() -> str:
    return f"ranklab-faults-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def broker(own_redis: OwnRedis, queue: str, fault_settings: Path) -> Iterator[OwnRedis]:
    """This process sends tasks to the own Redis, on the test's queue."""
    conf = celery_app.conf
    saved = {
        "broker_url": conf.broker_url,
        "broker_write_url": conf.get("broker_write_url"),
        "task_always_eager": conf.task_always_eager,
        "task_default_queue": conf.task_default_queue,
        "broker_connection_timeout": conf.broker_connection_timeout,
    }
    conf.broker_url = own_redis.url
    conf.broker_write_url = own_redis.url
    conf.task_always_eager = False
    conf.task_default_queue = queue
    conf.broker_connection_timeout = 1
    forget_broker_state()
    try:
        yield own_redis
    finally:
        conf.update(saved)
        forget_broker_state()


def database_url() -> str:
    """The test database (test_…), which the workers share with the test."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return (
        f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
        f"{db['NAME']}"
    )


def service_env(*, queue: str, broker_url: str, exports: Path) -> dict[str, str]:
    """The environment of a worker or web process of the test: its database, its Redis and
    queue, its export folder, the small lifecycle timings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST_", "CELERY_", "JOB_", "FAULT_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DATABASE_URL=database_url(),
        CELERY_BROKER_URL=broker_url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        EXPORT_ROOT=str(exports),
        AGREEMENT_BEAT_SECONDS="3600",
        **{name: str(value) for name, value in JOB_SETTINGS.items()},
    )
    return env


class Worker:
    """A `tests.faults.worker` process: a Celery worker, prefork pool of one child."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def children(self) -> list[int]:
        """The pool's child processes (they run the tasks)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.pid:
                found.append(int(entry.name))
        return found

    def kill_child(self) -> int:
        """kill -9 the child running the task, as the OOM killer would; its pid."""
        (child,) = self.children()
        os.kill(child, signal.SIGKILL)
        return child

    def kill(self) -> None:
        """kill -9 the whole worker (main process and child)."""
        children = self.children()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_worker(
    queue: str, own_redis: OwnRedis, fault_settings: Path, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """Start workers on the test's queue; `slow` is the FAULT_* environment (worker.py),
    `args` more worker options, `env_extra` more settings. All are killed at the end."""
    started: list[Worker] = []

    def start(*args: str, env_extra: dict[str, str] | None = None, **slow: str) -> Worker:
        env = service_env(queue=queue, broker_url=own_redis.url, exports=fault_settings)
        env.update(
            RANKLAB_DATA_DIR=str(tmp_path / "data"),
            **{f"FAULT_{name.upper()}": value for name, value in slow.items()},
            **(env_extra or {}),
        )
        log = tmp_path / f"worker-{len(started)}.log"
        command = [sys.executable, "-m", "tests.faults.worker", "--pool", "prefork"]
        command += ["--concurrency", "1", "--loglevel", "INFO", "-Q", queue]
        command += ["-n", f"faults-{uuid.uuid4().hex[:8]}@%h", "--without-gossip"]
        command += ["--without-mingle", *args]
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        worker = Worker(process, log)
        started.append(worker)
        wait_until(
            lambda: " ready." in worker.text() or process.poll() is not None,
            seconds=START_SECONDS,
            what="worker ready",
        )
        assert process.poll() is None, worker.text()
        wait_until(lambda: worker.children(), seconds=10, what="pool child up")
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


@pytest.fixture
def web_env() -> dict[str, str]:
    """More environment for the web server (override in a test module)."""
    return {}


@pytest.fixture
def web(
    queue: str, own_redis: OwnRedis, fault_settings: Path, tmp_path: Path, web_env: dict[str, str]
) -> Iterator[str]:
    """The production web server (`ranklab serve`: gunicorn, two workers) on the test
    database; its base URL."""
    env = service_env(queue=queue, broker_url=own_redis.url, exports=fault_settings)
    env.update(WEB_CONCURRENCY="2", RANKLAB_DATA_DIR=str(tmp_path / "web-data"), **web_env)
    with ranklab_serve(env, tmp_path / "web.log", seconds=3 * START_SECONDS) as (_, url):
        yield url
