"""Behind PgBouncer in transaction mode: with DISABLE_SERVER_SIDE_CURSORS, `.iterator()`
declares no server-side cursor (a cursor would be lost when the pooler hands the next FETCH
to another server connection); Django's connections prepare no statements either, unless
DATABASE_PREPARED_STATEMENTS asks for them (PgBouncer 1.21+, or no pooler)."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from django.conf import settings
from django.db import connection, connections

from config.settings import postgresql_options
from labeling.models import Prompt
from tests.helpers import import_prompts, sample_records

pytestmark = pytest.mark.postgresql("server-side cursors and prepared statements")


def open_cursors() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_cursors")
        return [row[0] for row in cursor.fetchall()]


def cursors_while_iterating() -> list[str]:
    rows = Prompt.objects.order_by("id").iterator(chunk_size=1)
    next(rows)
    try:
        return open_cursors()
    finally:
        assert isinstance(rows, Generator)
        rows.close()


@pytest.mark.django_db
def test_iterator_declares_a_server_side_cursor_by_default(project):
    import_prompts(project, sample_records(3))
    assert len(cursors_while_iterating()) == 1


@pytest.mark.django_db
def test_disable_server_side_cursors_iterates_without_one(project, monkeypatch):
    import_prompts(project, sample_records(3))
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    assert cursors_while_iterating() == []
    assert Prompt.objects.count() == len(list(Prompt.objects.iterator(chunk_size=1)))


def prepared_statements(cursor) -> int:
    cursor.execute("SELECT count(*) FROM pg_prepared_statements")
    return int(cursor.fetchone()[0])


@pytest.mark.skipif(settings.DATABASE_PREPARED_STATEMENTS, reason="prepared statements asked for")
@pytest.mark.django_db
def test_connections_prepare_no_statements(project):
    connection.ensure_connection()
    assert connection.connection.prepare_threshold is None
    import_prompts(project, sample_records(3))
    for _ in range(10):  # psycopg would prepare a query run 5 times with a threshold
        list(Prompt.objects.filter(project=project).values_list("id"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db
def test_the_prepared_statements_option_prepares_a_statement_run_twice(project):
    default = connections["default"]
    options = {**default.settings_dict.get("OPTIONS", {}), **postgresql_options(prepared=True)}
    prepared = type(default)({**default.settings_dict, "OPTIONS": options}, "default")
    try:
        with prepared.cursor() as cursor:
            assert prepared_statements(cursor) == 0
            counts = []
            for _ in range(3):
                cursor.execute(
                    "SELECT count(*) FROM labeling_project WHERE id = %s AND name <> %s",
                    [project.pk, ""],
                )
                counts.append(cursor.fetchone()[0])
            assert counts == [0, 0, 0]  # the project is in the test's open transaction
            assert prepared_statements(cursor) >= 1
    finally:
        prepared.close()
