"""`core.postgresql`: a request's first read is the connection's check. A healthy
connection gets no `SELECT 1`; one the server ended is opened again and the read run again;
a first statement that is not a read gets Django's check before it; an error that is not a
lost connection is never retried."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import OperationalError, ProgrammingError, connections
from django.db.backends.postgresql import base as django_base

from core.postgresql import base

pytestmark = [
    pytest.mark.postgresql("the backend is PostgreSQL's"),
    pytest.mark.django_db,
]


@pytest.fixture
def own() -> Iterator[Any]:
    """A connection of its own (the test's transaction stays out of it), reused by a new
    request: its check is pending, as Django leaves it when a request starts."""
    wrapper: Any = connections.create_connection("default")
    wrapper.ensure_connection()
    wrapper.health_check_enabled = True
    wrapper.health_check_done = False
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


def terminate(wrapper: Any) -> int:
    """End the wrapper's server session, as a restart or failover would; its pid."""
    pid = wrapper.connection.info.backend_pid
    with admin() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    return int(pid)


def backend_pid(wrapper: Any) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def test_the_default_database_is_served_by_the_backend(own):
    assert isinstance(own, base.DatabaseWrapper)


def test_a_healthy_connection_answers_the_first_read_without_select_one(own, select_one_checks):
    pid = own.connection.info.backend_pid

    assert backend_pid(own) == pid
    assert select_one_checks == []
    assert own.health_check_done is True


def test_a_first_read_on_a_connection_the_server_ended_reconnects_and_answers(
    own, select_one_checks
):
    old = terminate(own)

    new = backend_pid(own)  # at once: the server may not have closed the socket yet

    assert new != old
    assert select_one_checks == []
    assert own.errors_occurred is False


def test_the_read_after_the_first_is_not_retried(own):
    backend_pid(own)  # the request's first read: the check is done
    terminate(own)

    with pytest.raises(OperationalError):
        backend_pid(own)


def test_a_first_write_gets_djangos_check_and_runs_once(own, select_one_checks):
    with own.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS backend_writes (n int)")
        cursor.execute("TRUNCATE backend_writes")
    own.health_check_done = False
    select_one_checks.clear()
    terminate(own)

    with own.cursor() as cursor:
        cursor.execute("INSERT INTO backend_writes VALUES (1)")
    with own.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM backend_writes")
        stored = cursor.fetchone()[0]
        cursor.execute("DROP TABLE backend_writes")

    assert select_one_checks == [False]
    assert stored == 1


def test_a_first_executemany_gets_djangos_check(own, select_one_checks):
    with own.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE many_writes (n int)")
    own.health_check_done = False
    select_one_checks.clear()

    with own.cursor() as cursor:
        cursor.executemany("INSERT INTO many_writes VALUES (%s)", [(1,), (2,)])
        cursor.execute("SELECT count(*) FROM many_writes")
        stored = cursor.fetchone()[0]

    assert select_one_checks == [True]
    assert stored == 2


def test_a_read_that_fails_on_a_healthy_connection_is_not_run_again(own, select_one_checks):
    pid = own.connection.info.backend_pid

    with pytest.raises(ProgrammingError), own.cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM labeling_project")

    assert own.connection.info.backend_pid == pid
    assert own.health_check_done is False
    assert select_one_checks == []


def test_a_statement_cancelled_by_its_timeout_is_not_a_lost_connection(own):
    with own.cursor() as cursor:
        cursor.execute("SET statement_timeout = 50")
    own.health_check_done = False
    pid = own.connection.info.backend_pid

    with pytest.raises(OperationalError), own.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(1)")

    assert own.connection.info.backend_pid == pid


def test_a_transaction_entered_first_gets_djangos_check(own, select_one_checks):
    old = terminate(own)

    own.set_autocommit(False)
    new = backend_pid(own)
    own.rollback()
    own.set_autocommit(True)

    assert select_one_checks == [False]
    assert new != old


def test_is_read_knows_a_select_from_a_write():
    assert base.is_read("  select 1")
    assert base.is_read("\n SELECT t.id FROM t")
    assert not base.is_read("WITH x AS (DELETE FROM t RETURNING 1) SELECT 1")
    assert not base.is_read("UPDATE t SET n = 1")
    assert not base.is_read(b"SELECT 1")
