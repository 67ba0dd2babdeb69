"""core.db's bulk-write helpers on PostgreSQL: ids reserved in one round trip, and COPY
column types known from the fields without asking the table."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import db
from labeling.models import Project, Prompt, Response

pytestmark = [pytest.mark.django_db, pytest.mark.postgresql("COPY and sequences")]


def described_type_oids(model, fields) -> list[int]:
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {model._meta.db_table} LIMIT 0")
        return [column.type_code for column in cursor.description]


def test_known_type_oids_are_the_tables_own_for_every_model():
    """Every concrete column of every model: the oid named by the field's type is the
    column's own, or it is not known by name and the table is asked (never a wrong one)."""
    checked = 0
    with connection.cursor() as cursor:
        raw_cursor = cursor.cursor
        for model in apps.get_models():
            if model._meta.proxy or not model._meta.managed:
                continue
            fields = [field for field in model._meta.concrete_fields if field.column]
            for field in fields:
                known = db._known_type_oids(raw_cursor, [field])
                if known is not None:
                    assert known == described_type_oids(model, [field]), (model, field.name)
                    checked += 1
    assert checked > 100


def test_an_array_column_is_asked_of_the_table():
    from django.contrib.postgres.fields import ArrayField
    from django.db.models import BigIntegerField

    with connection.cursor() as cursor:
        assert db._known_type_oids(cursor.cursor, [ArrayField(BigIntegerField())]) is None
        assert db._known_type_oids(cursor.cursor, [BigIntegerField()]) == [20]


def test_ids_for_two_tables_come_in_one_query_in_order(project):
    with CaptureQueriesContext(connection) as queries:
        prompt_ids, response_ids, none = db.reserve_id_lists(
            (Prompt, 3), (Response, 5), (Prompt, 0)
        )
    assert len(queries) == 1
    assert len(prompt_ids) == 3 and len(response_ids) == 5 and none == []
    assert prompt_ids == sorted(prompt_ids) and response_ids == sorted(response_ids)
    # The next ids of each sequence come after them: they were taken, not peeked at.
    assert db.reserve_ids(Prompt, 1)[0] > prompt_ids[-1]
    assert db.reserve_ids(Response, 1)[0] > response_ids[-1]
    assert db.reserve_id_lists((Prompt, 0)) == [[]]


def test_copied_rows_read_back_with_every_type(project: Project):
    [prompt_id] = db.reserve_ids(Prompt, 1)
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        db.copy_rows(
            Prompt,
            ["id", "project", "external_id", "messages", "metadata", "is_gold", "is_complete",
             "extra_raters", "extra_reason", "n_responses", "created_at"],
            [(prompt_id, project.pk, "ext-1", [{"role": "user", "content": "Hi ☃"}],
              {"k": [1, 2]}, False, False, 2, "why", 0, now)],
        )  # fmt: skip
    # Only the COPY itself: no query asking the table for its column types.
    assert not any("LIMIT 0" in query["sql"] for query in queries)
    prompt = Prompt.objects.get(pk=prompt_id)
    assert prompt.messages == [{"role": "user", "content": "Hi ☃"}]
    assert prompt.metadata == {"k": [1, 2]}
    assert (prompt.external_id, prompt.extra_raters, prompt.extra_reason) == ("ext-1", 2, "why")
    assert prompt.created_at == now
