"""Vendor-aware database helpers: PostgreSQL COPY with ids reserved up front (bulk_create
elsewhere), the vendor check every fast path branches on, planner statistics."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from django.db import connection, models

JSON_FIELDS = (models.JSONField,)


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """Take `count` ids from the model's sequence so rows can be linked before insert."""
    if count == 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def _concrete_field(model: type[models.Model], name: str) -> models.Field:
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or not field.column:
        raise ValueError(f"{model.__name__}.{name} is not a concrete column")
    return field


def copy_rows(
    model: type[models.Model], field_names: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY rows into the model's table; JSON fields are serialised here."""
    fields = [_concrete_field(model, name) for name in field_names]
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    json_positions = [index for index, field in enumerate(fields) if isinstance(field, JSON_FIELDS)]
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        raw_cursor = cursor.cursor  # the psycopg cursor behind Django's wrapper
        with raw_cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                values = list(row)
                for position in json_positions:
                    if values[position] is not None:
                        values[position] = orjson.dumps(values[position]).decode()
                copy.write_row(values)


def analyze(*models_to_analyze: type[models.Model]) -> None:
    """Refresh PostgreSQL planner statistics for the models' tables."""
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models_to_analyze)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")
