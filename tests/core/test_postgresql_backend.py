"""`core.postgresql`: a connection with nothing waiting on its socket is usable without
Django's `SELECT 1`; one the server ended, or one with a notification waiting, gets it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connections
from django.db.backends.postgresql import base as django_base

from core.postgresql import base

pytestmark = [
    pytest.mark.postgresql("the backend is PostgreSQL's"),
    pytest.mark.django_db,
]


@pytest.fixture
def own() -> Iterator[Any]:
    """A connection of its own (the test's transaction stays out of it)."""
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


@pytest.fixture
def select_one_checks(monkeypatch) -> list[bool]:
    """Each answer of Django's own check (`SELECT 1`) while the test runs."""
    answers: list[bool] = []
    django_check = django_base.DatabaseWrapper.is_usable

    def counted(self: Any) -> bool:
        answers.append(django_check(self))
        return answers[-1]

    monkeypatch.setattr(django_base.DatabaseWrapper, "is_usable", counted)
    return answers


def admin() -> psycopg.Connection[Any]:
    settings = connections["default"].settings_dict
    return psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=True,
    )


def wait_for_data(wrapper: Any) -> None:
    deadline = time.monotonic() + 10
    while not base.socket_has_data(wrapper.connection.fileno()):
        assert time.monotonic() < deadline, "nothing arrived on the connection"
        time.sleep(0.01)


def test_the_default_database_is_served_by_the_backend(own):
    assert isinstance(own, base.DatabaseWrapper)


def test_an_idle_connection_is_usable_without_a_query(own, select_one_checks):
    with own.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)

    assert own.is_usable() is True
    assert select_one_checks == []


def test_a_connection_the_server_ended_is_not_usable(own, select_one_checks):
    pid = own.connection.info.backend_pid
    with admin() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_for_data(own)

    assert own.is_usable() is False
    assert select_one_checks == [False]


def test_a_waiting_notification_gets_the_full_check_and_the_connection_goes_on(
    own, select_one_checks
):
    own.connection.autocommit = True
    own.connection.execute("LISTEN ranklab_backend_test")
    with admin() as other:
        other.execute("NOTIFY ranklab_backend_test")
    wait_for_data(own)

    assert own.is_usable() is True
    assert select_one_checks == [True]
    with own.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_closed_connection_is_not_usable(own, select_one_checks):
    own.connection.close()

    assert own.is_usable() is False
    assert select_one_checks == []


def test_a_request_after_the_server_ended_the_connection_reconnects(own):
    own.health_check_enabled = True
    own.health_check_done = False
    pid = own.connection.info.backend_pid
    with admin() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_for_data(own)

    with own.cursor() as cursor:  # Django checks before the request's first query
        cursor.execute("SELECT pg_backend_pid()")
        (new_pid,) = cursor.fetchone()

    assert new_pid != pid
