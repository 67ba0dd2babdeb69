"""Model instances from hand-written SQL, converted exactly as the ORM converts them.

The rater loop's few statements are written out (building and compiling their querysets
cost more than running them); their rows still become ordinary model instances. `Columns`
names a model's concrete columns for a SELECT list and builds an instance from its slice of
a row, applying the same database converters the ORM's compiler applies (JSON decoded,
SQLite's booleans and datetimes parsed), so code downstream can't tell the difference. It
also writes an instance's INSERT with the values `Model.save` would send (defaults,
`pre_save`, each field's preparation), without the compiler and without signals.
`run_together` sends statements that change independent rows as one (PostgreSQL's
data-modifying WITH), so a submit's writes cost one round trip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

    def insert(
        self, instance: M, connection: BaseDatabaseWrapper, along: Sequence[Statement] = ()
    ) -> M:
        """INSERT the instance as `Model.save` would (no signals) and give it its key; the
        `along` statements run with it (`run_together`)."""
        insert = Statement(self._insert_sql(connection), self.insert_params(instance, connection))
        row = run_together([insert, *along], connection)
        assert row is not None  # an INSERT … VALUES … RETURNING answers its row
        instance.pk = row[0]
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


@dataclass(frozen=True)
class Statement:
    """One SQL statement and its parameters, named: `%(name)s`."""

    sql: str
    params: dict[str, Any]


def run_together(
    statements: Sequence[Statement], connection: BaseDatabaseWrapper
) -> tuple[Any, ...] | None:
    """Run the statements and answer the first one's first row (its RETURNING), or None.

    On PostgreSQL they go as one statement, one round trip: the others become WITH
    clauses of the first, which PostgreSQL runs to completion whether or not anything reads
    them. They all see the data as it was before any of them ran, so each must change rows
    the others neither change nor read (and the first has no WITH of its own). Elsewhere
    they run one after the other, in order.
    """
    if not statements:
        return None
    if connection.vendor == "postgresql" and len(statements) > 1:
        statements = [Statement(*_joined(statements))]
    row: tuple[Any, ...] | None = None
    with connection.cursor() as cursor:
        for index, statement in enumerate(statements):
            cursor.execute(statement.sql, statement.params)
            if index == 0 and cursor.description is not None:
                row = cursor.fetchone()
    return row


_PARAMETER = re.compile(r"%\((\w+)\)s")
_joined_sql: dict[tuple[str, ...], str] = {}


def _joined(statements: Sequence[Statement]) -> tuple[str, dict[str, Any]]:
    """The first statement with the others as its WITH clauses, every later statement's
    parameters renamed `s<i>_<name>` so that no two collide."""
    key = tuple(statement.sql for statement in statements)
    sql = _joined_sql.get(key)
    if sql is None:
        clauses = ", ".join(
            f"s{index} AS ({_PARAMETER.sub(rf'%(s{index}_\1)s', statement.sql)})"
            for index, statement in enumerate(statements[1:], start=1)
        )
        sql = f"WITH {clauses} {statements[0].sql}"
        if len(_joined_sql) < 100:  # the rater loop's few; anything else is built each time
            _joined_sql[key] = sql
    params = dict(statements[0].params)
    for index, statement in enumerate(statements[1:], start=1):
        params.update({f"s{index}_{name}": value for name, value in statement.params.items()})
    return sql, params


def db_datetime(value: datetime, connection: BaseDatabaseWrapper) -> Any:
    """A datetime as a statement's parameter, stored the way the ORM stores it (SQLite keeps
    naive UTC text; PostgreSQL takes the aware value)."""
    return connection.ops.adapt_datetimefield_value(value)


def db_json(value: Any) -> Any:
    """A JSON column read by hand: decoded text (PostgreSQL's jsonb arrives as text)."""
    if isinstance(value, str | bytes | bytearray):
        return json.loads(value)
    return value
