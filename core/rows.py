"""Model instances from hand-written SQL, converted exactly as the ORM converts them.

The rater loop's few statements are written out (building and compiling their querysets
cost more than running them); their rows still become ordinary model instances. `Columns`
names a model's concrete columns for a SELECT list and builds an instance from its slice of
a row, applying the same database converters the ORM's compiler applies (JSON decoded,
SQLite's booleans and datetimes parsed), so code downstream can't tell the difference. It
also writes an instance's INSERT with the values `Model.save` would send (defaults,
`pre_save`, each field's preparation), without the compiler and without signals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]


class Columns[M: models.Model]:
    """A model's concrete columns, in field order, for one table alias of a statement."""

    def __init__(self, model: type[M], alias: str) -> None:
        self.model = model
        self.alias = alias
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [field.attname for field in self.fields]
        self._converters: dict[str, list[tuple[int, list[Converter], Any]]] = {}
        self._insert_statements: dict[str, str] = {}
        # Every stored column but the key, once: the rater loop inserts on every call.
        self._inserted = [
            field
            for field in self.fields
            if not field.primary_key and not getattr(field, "generated", False)
        ]

    def __len__(self) -> int:
        return len(self.fields)

    def select(self, connection: BaseDatabaseWrapper) -> str:
        """`alias."col", …` for the SELECT list."""
        quote = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{quote(str(field.column))}" for field in self.fields)

    def insert_params(self, instance: M, connection: BaseDatabaseWrapper) -> dict[str, Any]:
        """Every stored column but the key, by attname, as `Model.save` would write it."""
        return {
            field.attname: field.get_db_prep_save(field.pre_save(instance, True), connection)
            for field in self._inserted
        }

    def insert(self, instance: M, connection: BaseDatabaseWrapper) -> M:
        """INSERT the instance as `Model.save` would (no signals) and give it its key."""
        with connection.cursor() as cursor:
            cursor.execute(self._insert_sql(connection), self.insert_params(instance, connection))
            instance.pk = cursor.fetchone()[0]
        instance._state.adding, instance._state.db = False, connection.alias
        return instance

    def insert_lists(self, connection: BaseDatabaseWrapper) -> tuple[str, str]:
        """An INSERT's column list and its `%(attname)s` placeholders, for `insert_params`."""
        fields = self._inserted
        columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
        return columns, ", ".join(f"%({field.attname})s" for field in fields)

    def _insert_sql(self, connection: BaseDatabaseWrapper) -> str:
        sql = self._insert_statements.get(connection.vendor)
        if sql is None:
            quote = connection.ops.quote_name
            columns, values = self.insert_lists(connection)
            key = quote(str(self.model._meta.pk.column))
            sql = (
                f"INSERT INTO {quote(self.model._meta.db_table)} ({columns}) "
                f"VALUES ({values}) RETURNING {key}"
            )
            self._insert_statements[connection.vendor] = sql
        return sql

    def build(self, row: Sequence[Any], start: int, connection: BaseDatabaseWrapper) -> M:
        """The instance from `row[start:start + len(self)]`, as if the ORM had read it."""
        values = list(row[start : start + len(self.fields)])
        for index, converters, expression in self._converters_for(connection):
            value = values[index]
            for converter in converters:
                value = converter(value, expression, connection)
            values[index] = value
        return self.model.from_db(connection.alias, self.attnames, values)

    def _converters_for(
        self, connection: BaseDatabaseWrapper
    ) -> list[tuple[int, list[Converter], Any]]:
        cached = self._converters.get(connection.vendor)
        if cached is None:
            cached = []
            for index, field in enumerate(self.fields):
                expression = field.get_col(self.alias)
                converters = connection.ops.get_db_converters(expression) + field.get_db_converters(
                    connection
                )
                if converters:
                    cached.append((index, converters, expression))
            self._converters[connection.vendor] = cached
        return cached


def db_datetime(value: datetime, connection: BaseDatabaseWrapper) -> Any:
    """A datetime as a statement's parameter, stored the way the ORM stores it (SQLite keeps
    naive UTC text; PostgreSQL takes the aware value)."""
    return connection.ops.adapt_datetimefield_value(value)


def db_json(value: Any) -> Any:
    """A JSON column read by hand: decoded text (PostgreSQL's jsonb arrives as text)."""
    if isinstance(value, str | bytes | bytearray):
        return json.loads(value)
    return value
