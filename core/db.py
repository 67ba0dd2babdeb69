"""Vendor-aware database helpers: PostgreSQL COPY with ids reserved up front (bulk_create
elsewhere), the vendor check every fast path branches on, planner statistics, and the
blocks whose reads may go to a read replica (`replica_reads`, routed by config/routers.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import orjson
from django.db import connection, connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper

REPLICA = "replica"
"""The database alias of the read replica, when DATABASE_REPLICA_URL configures one."""

_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})


def on_this_machine() -> bool:
    """Whether the database server shares this machine's CPUs (SQLite, or PostgreSQL over
    a local socket or the loopback address)."""
    host = str(connection.settings_dict.get("HOST") or "")
    return connection.vendor == "sqlite" or host in LOCAL_HOSTS or host.startswith("/")


def reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """Take `count` ids from the model's sequence so rows can be linked before insert."""
    return reserve_id_lists((model, count))[0]


def reserve_id_lists(*wanted: tuple[type[models.Model], int]) -> list[list[int]]:
    """Ids for several models in one round trip: a list per (model, count), in order.

    An import's writer waits on each round trip while its reader thread holds the GIL, so
    one query instead of one per table shortens the wait before every batch."""
    if not any(count for _, count in wanted):
        return [[] for _ in wanted]
    # The sequence is looked up once (an init plan), not once per id: per id it was six
    # times the cost of the ids themselves (40k ids: 155 ms against 25 ms). Each list
    # comes back as one array value, not a row per id.
    arrays = ", ".join(
        "ARRAY(SELECT nextval((SELECT pg_get_serial_sequence(%s, 'id')::regclass))"
        " FROM generate_series(1, %s))"
        for _ in wanted
    )
    params: list[Any] = []
    for model, count in wanted:
        params += [model._meta.db_table, count]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {arrays}", params)
        row = cursor.fetchone()
    return [list(ids) for ids in row]


def _concrete_field(model: type[models.Model], name: str) -> models.Field:
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or not field.column:
        raise ValueError(f"{model.__name__}.{name} is not a concrete column")
    return field


def copy_rows(
    model: type[models.Model], field_names: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY rows into the model's table in PostgreSQL's binary format: the server reads each
    value by its length instead of splitting and parsing lines of text (a fifth less of its
    CPU on an import's COPY). JSON fields take the Python value, serialised by orjson."""
    from psycopg.types.json import set_json_dumps  # PostgreSQL only

    fields = [_concrete_field(model, name) for name in field_names]
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    # wrap_database_errors: a refused row raises Django's IntegrityError, as the ORM would.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw_cursor = cursor.cursor  # the psycopg cursor behind Django's wrapper
        set_json_dumps(orjson.dumps, context=raw_cursor)
        types = _known_type_oids(raw_cursor, fields)
        if types is None:  # a type psycopg does not know by name: ask the table
            raw_cursor.execute(f"SELECT {columns} FROM {table} LIMIT 0")
            types = [column.type_code for column in raw_cursor.description or ()]
        with raw_cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)


def _known_type_oids(raw_cursor: Any, fields: Sequence[models.Field]) -> list[int] | None:
    """The columns' type oids from the fields' types, which psycopg knows by name for
    PostgreSQL's own types (`varchar(200)` is `varchar`); None when one is not such a type
    (an array, a domain, an extension's type), so no round trip for the usual columns."""
    oids = []
    for field in fields:
        name = str(field.db_type(connection) or "")
        if "[" in name:
            return None
        info = raw_cursor.adapters.types.get(name.split("(", 1)[0].strip())
        if info is None:
            return None
        oids.append(info.oid)
    return oids


def analyze(*models_to_analyze: type[models.Model]) -> None:
    """Refresh PostgreSQL planner statistics for the models' tables."""
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models_to_analyze)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")


def analyze_columns(model: type[models.Model], field_names: Sequence[str]) -> None:
    """ANALYZE only these columns of the model's table (PostgreSQL then also skips the
    statistics of expression indexes, which can cost far more than the columns)."""
    columns = ", ".join(
        connection.ops.quote_name(str(_concrete_field(model, name).column)) for name in field_names
    )
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table} ({columns})")


@contextmanager
def replica_reads() -> Iterator[None]:
    """Reads in this block may go to the read replica (exports, agreement runs): they must
    tolerate data a few seconds old. Writes, and reads of job rows, stay on the primary.
    Without a replica configured this changes nothing."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


def replica_reads_active() -> bool:
    return _replica_reads.get()


def read_on_replica[T](items: Iterator[T]) -> Iterator[T]:
    """`items` with each step run inside `replica_reads()`: for generators consumed by a
    caller (a streamed response), where a block around the generator would leak the
    setting into the caller between steps."""
    try:
        while True:
            with replica_reads():
                try:
                    item = next(items)
                except StopIteration:
                    return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            with replica_reads():
                close()


def has_replica() -> bool:
    return REPLICA in connections.settings


def read_connection(model: type[models.Model]) -> BaseDatabaseWrapper:
    """The connection the router sends reads of `model` to: raw SQL follows it as the ORM
    does (the replica inside `replica_reads()`, else the primary)."""
    return connections[router.db_for_read(model)]
