"""/healthz answers without touching anything; /readyz names what is down, quickly, and never
reveals a URL or a password; ``python -m core.health`` probes /healthz with a Host Django
accepts."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from django.db import connection

from core import health
from tests.helpers import unused_port

TEST_BROKER = "redis://127.0.0.1:6379/13"
FAKE_PASSWORD = "fake-password-9c1e7b"
PROBE_DEADLINE_SECONDS = 5.0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture
def test_broker() -> str:
    try:
        redis.Redis.from_url(TEST_BROKER, socket_connect_timeout=2, socket_timeout=2).ping()
    except (redis.RedisError, OSError) as error:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true but Redis on 127.0.0.1:6379 is not reachable: {error}")
        pytest.skip(f"Redis on 127.0.0.1:6379 is not reachable ({error})")
    return TEST_BROKER


def assert_reveals_nothing(texts: list[str], *secrets: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


# No `db` fixture: pytest-django fails any database access in this test.
def test_healthz_answers_ok_without_database_or_login(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]


def test_healthz_refuses_writes(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_readyz_is_ok_when_database_and_broker_answer(client, settings, test_broker):
    settings.CELERY_BROKER_URL = test_broker

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_readyz_counts_in_process_tasks_as_ready(client, settings):
    settings.CELERY_BROKER_URL = ""

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "in-process"},
    }


@pytest.mark.django_db
def test_readyz_names_an_unreachable_broker_and_leaks_no_url(client, settings, caplog):
    port = unused_port()
    settings.CELERY_BROKER_URL = f"redis://:{FAKE_PASSWORD}@127.0.0.1:{port}/0"
    caplog.set_level(logging.DEBUG)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "broker": "unreachable"},
    }
    assert_reveals_nothing(
        [response.content.decode(), caplog.text], FAKE_PASSWORD, "redis://", str(port)
    )
    assert "broker unreachable" in caplog.text


@pytest.mark.django_db
def test_readyz_gives_up_on_a_broker_that_never_answers(client, settings, silent_port):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{silent_port}/0"

    started = time.monotonic()
    response = client.get("/readyz")

    assert time.monotonic() - started < PROBE_DEADLINE_SECONDS
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "unreachable"


def point_default_database_nowhere(monkeypatch, tmp_path, port: int) -> list[str]:
    """Make the default alias's settings unreachable (restored after the test); the test's
    own open connection is left alone. Returns the strings the response must not reveal."""
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        missing = str(tmp_path / "no-such-directory" / "ranklab.sqlite3")
        monkeypatch.setitem(settings_dict, "NAME", missing)
        return [missing]
    monkeypatch.setitem(settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(settings_dict, "PORT", str(port))
    monkeypatch.setitem(settings_dict, "PASSWORD", FAKE_PASSWORD)
    return [FAKE_PASSWORD, f":{port}", str(settings_dict["NAME"])]


@pytest.mark.django_db
def test_readyz_names_an_unreachable_database_and_leaks_nothing(
    client, settings, monkeypatch, tmp_path, caplog
):
    settings.CELERY_BROKER_URL = ""
    secrets = point_default_database_nowhere(monkeypatch, tmp_path, unused_port())
    caplog.set_level(logging.DEBUG)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "unreachable", "broker": "in-process"},
    }
    assert_reveals_nothing([response.content.decode(), caplog.text], *secrets)
    assert "database 'default' unreachable" in caplog.text


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a connect timeout is a network thing"
)
@pytest.mark.django_db
def test_readyz_gives_up_on_a_database_that_never_answers(
    client, settings, monkeypatch, tmp_path, silent_port
):
    settings.CELERY_BROKER_URL = ""
    point_default_database_nowhere(monkeypatch, tmp_path, silent_port)

    started = time.monotonic()
    response = client.get("/readyz")

    assert time.monotonic() - started < PROBE_DEADLINE_SECONDS
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unreachable"


class HealthzHandler(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_GET(self) -> None:
        self.hosts.append(self.headers["Host"])
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def healthz_server() -> Iterator[tuple[str, list[str]]]:
    hosts: list[str] = []
    handler = type("Handler", (HealthzHandler,), {"hosts": hosts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hosts
    server.shutdown()
    server.server_close()


def test_probe_passes_on_200_with_the_first_allowed_host(healthz_server, monkeypatch):
    base, hosts = healthz_server
    monkeypatch.setenv("ALLOWED_HOSTS", ".ranklab.example.com,localhost")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{unused_port()}")

    assert health.main([f"{base}/healthz"]) == 0
    assert hosts == ["ranklab.example.com"]


def test_probe_fails_on_an_error_status_or_a_closed_port(healthz_server):
    base, _ = healthz_server

    assert health.main([f"{base}/not-healthz"]) == 1
    assert health.main([f"http://127.0.0.1:{unused_port()}/healthz"]) == 1


@pytest.mark.parametrize(
    ("allowed_hosts", "expected"),
    [
        ("ranklab.example.com", "ranklab.example.com"),
        (" .example.org , localhost", "example.org"),
        ("*", "localhost"),
        ("", "localhost"),
    ],
)
def test_probe_host_is_one_django_accepts(client, settings, monkeypatch, allowed_hosts, expected):
    monkeypatch.setenv("ALLOWED_HOSTS", allowed_hosts)
    settings.ALLOWED_HOSTS = [h.strip() for h in allowed_hosts.split(",") if h.strip()] or [
        "localhost"
    ]

    assert health.probe_host() == expected
    assert client.get("/healthz", HTTP_HOST=health.probe_host()).status_code == 200
