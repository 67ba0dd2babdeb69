"""What PostgreSQL's share of an import is spent on: the backend's CPU for one batch of
N prompts x 4 responses written as the import writes them (COPY), with the schema as it is
and with one part of it taken away at a time.

Each measurement runs in a transaction that is rolled back: the variant's DDL (drop a
foreign key, disable the search-text triggers, put back an index), then the import's COPY
of prompts and responses, then `SET CONSTRAINTS ALL IMMEDIATE`, which fires the foreign-key checks
the commit would otherwise run (Django's foreign keys are DEFERRABLE INITIALLY DEFERRED).
The backend's CPU is read from /proc around the write, so the figure is PostgreSQL's own
work, whatever else the machine does (the client's own CPU is printed beside it); the
table is vacuumed between measurements and the variants are interleaved, so drift in the
machine's speed falls on all of them alike.

Then a file of --file-prompts prompts is imported in-process (as `manage.py import_prompts`
imports it, without the process's start) and its two phases are timed: writing the batches
(validated in the reader thread meanwhile) and the commit, where PostgreSQL runs the
deferred foreign-key checks while the client waits; the backend's CPU of each phase is
printed beside its wall time, which says how much of the import one backend bounds.

Three variants put back the write as it was earlier, as baselines beside today's: the rows
COPYed as text (the server splits and parses every value), the ids reserved with the
sequence looked up once per id, and the two indexes the import no longer writes (the
prompt's own project index and the responses' second (prompt, position) index).

A variant is an experiment, not a proposal: the foreign keys are the schema's integrity,
and the bench only shows what each costs.

    .venv/bin/python bench/import_write_cost.py [--prompts 10000] [--repeat 9]
        [--file-prompts 100000] [--keep-database]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import calibration, django_setup, machine, recreate_database
from import_prompts import drop_database, process_cpu, records

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

    from labeling.importing import PromptRecord
    from labeling.models import Project

ALL_TRIGGERS_OFF = "all triggers off (foreign keys and search text)"


def variants(cursor: CursorWrapper) -> dict[str, list[str]]:
    """Variant name -> the DDL that takes its part away (inside the measured transaction)."""

    def one(sql: str, *params: str) -> str:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError(f"not found in the schema: {sql} {params}")
        return str(row[0])

    def foreign_key(table: str, column: str) -> str:
        return one(
            "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a"
            " ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " WHERE c.conrelid = %s::regclass AND c.contype = 'f' AND a.attname = %s",
            table,
            column,
        )

    def index(table: str, definition_ends: str) -> str:
        return one(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            table,
            f"%{definition_ends}",
        )

    cursor.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'labeling_prompt'::regclass"
        " AND NOT tgisinternal ORDER BY tgname"
    )
    search_triggers = [row[0] for row in cursor.fetchall()]
    return {
        "as is": [],
        AS_TEXT: [],
        IDS_PER_ID: [],
        ALL_TRIGGERS_OFF: ["SET LOCAL session_replication_role = replica"],
        "no response -> prompt foreign key": [
            f"ALTER TABLE labeling_response DROP CONSTRAINT "
            f"{foreign_key('labeling_response', 'prompt_id')}"
        ],
        "no prompt -> project foreign key": [
            f"ALTER TABLE labeling_prompt DROP CONSTRAINT "
            f"{foreign_key('labeling_prompt', 'project_id')}"
        ],
        "no search-text triggers": [
            f"ALTER TABLE labeling_prompt DISABLE TRIGGER {name}" for name in search_triggers
        ],
        INDEXES_BEFORE: [
            "CREATE INDEX prompt_project_before ON labeling_prompt (project_id)",
            "CREATE INDEX response_lengths_before ON labeling_response"
            " (prompt_id, position, id, text_length)",
        ],
    }


# The write as it was before 2026-12-07, measured beside today's: text COPY, and ids
# reserved with the sequence looked up once per id.
AS_TEXT = "COPY as text (before 2026-12-07)"
IDS_PER_ID = "ids: sequence looked up per id (before 2026-12-07)"
INDEXES_BEFORE = "indexes as before: prompt (project), response lengths"


def copy_rows_as_text(model: Any, field_names: Any, rows: Any) -> None:
    """core.db.copy_rows as it was: every value formatted as text for the server to parse."""
    import orjson
    from django.db import connection, models

    fields = [model._meta.get_field(name) for name in field_names]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    json_positions = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
    table = connection.ops.quote_name(model._meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            values = list(row)
            for position in json_positions:
                if values[position] is not None:
                    values[position] = orjson.dumps(values[position]).decode()
            copy.write_row(values)


def reserve_ids_per_id(model: Any, count: int) -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def reserve_id_lists_per_id(*wanted: tuple[Any, int]) -> list[list[int]]:
    return [reserve_ids_per_id(model, count) for model, count in wanted]


def as_before(name: str) -> Any:
    """The patch putting back the earlier write for a baseline variant (or nothing)."""
    from contextlib import nullcontext
    from unittest import mock

    from core import db

    if name == AS_TEXT:
        return mock.patch.object(db, "copy_rows", copy_rows_as_text)
    if name == IDS_PER_ID:
        return mock.patch.object(db, "reserve_id_lists", reserve_id_lists_per_id)
    return nullcontext()


def backend_cpu(cursor: CursorWrapper) -> float:
    cursor.execute("SELECT pg_backend_pid()")
    return process_cpu(cursor.fetchone()[0])


def measure(
    project: Project, batch: list[PromptRecord], ddl: list[str], name: str = "as is"
) -> tuple[float, float] | None:
    """Backend and client CPU seconds of one batch's write under the variant (rolled back)."""
    from django.db import DatabaseError, connection, transaction

    from labeling.services.prompts import prompts_copy

    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                for statement in ddl:
                    cursor.execute(statement)
                before, client_before = backend_cpu(cursor), time.process_time()
                with as_before(name):
                    prompts_copy(project=project, records=batch)
                client = time.process_time() - client_before
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                used = backend_cpu(cursor) - before
            transaction.set_rollback(True)
    except DatabaseError as error:  # e.g. not a superuser: replica role refused
        print(f"  skipped: {error}".splitlines()[0])
        return None
    with connection.cursor() as cursor:
        cursor.execute("VACUUM labeling_prompt, labeling_response, labeling_promptsearchtext")
    return used, client


def file_import_phases(project: Project, prompts: int) -> str:
    """Wall and backend CPU seconds of a file import's two phases: batches, then commit."""
    from unittest import mock

    from django.db import connection

    from labeling.services import prompts as prompt_services

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "prompts.jsonl"
        with path.open("wb") as stream:
            stream.writelines(records(prompts, prefix="file-"))
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]

        def now() -> tuple[float, float, float]:
            return time.perf_counter(), process_cpu(backend), time.process_time()

        last_batch: list[tuple[float, float, float]] = []
        started = now()
        # The search index's job is queued at the commit and runs elsewhere: not timed here.
        with mock.patch.object(prompt_services, "prompt_search_job_queue"):
            prompt_services.prompts_import_file(
                project=project, path=path, on_progress=lambda _: last_batch.append(now())
            )
        ended, batches = now(), last_batch[-1]
    wall, cpu = ended[0] - started[0], ended[1] - started[1]
    return (
        f"file import of {prompts:,} prompts in-process: {wall:.2f} s, backend CPU {cpu:.2f} s"
        f" ({100 * cpu / wall:.0f}% of the wall), client CPU {ended[2] - started[2]:.2f} s\n"
        f"  batches: {batches[0] - started[0]:.2f} s, backend CPU {batches[1] - started[1]:.2f} s\n"
        f"  commit (deferred foreign-key checks, statistics, audit): {ended[0] - batches[0]:.2f} s,"
        f" backend CPU {ended[1] - batches[1]:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--file-prompts", type=int, default=100_000, help="0 to skip")
    parser.add_argument("--keep-database", action="store_true")
    options = parser.parse_args()

    recreate_database()
    django_setup()
    from django.contrib.auth.models import User
    from django.db import connection

    from labeling import services
    from labeling.importing import parse_import_body, validate_records

    print(f"machine: {machine()}; {calibration()}")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}")
    lead = User.objects.create_user("bench-lead", password="x")
    project = services.project_create(creator=lead, name="write cost")
    # The project holds some prompts already, as a project being filled does.
    body = b"".join(records(options.prompts * 2, prefix="old-"))
    services.prompts_import(project=project, raw=body)
    batch = validate_records(parse_import_body(b"".join(records(options.prompts))))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cases = variants(cursor)

    samples: dict[str, list[float]] = {name: [] for name in cases}
    client: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(options.repeat):
        for name, ddl in cases.items():
            used = measure(project, batch, ddl, name)
            if used is not None:
                samples[name].append(used[0])
                client[name].append(used[1])
        print(f"round {round_ + 1}/{options.repeat} done, load {os.getloadavg()[0]:.2f}")

    base = statistics.median(samples["as is"])
    print(f"\nPostgreSQL backend CPU for {options.prompts:,} prompts x 4 responses (COPY, "
          f"foreign keys fired), median of {options.repeat}:")  # fmt: skip
    for name, values in samples.items():
        if not values:
            continue
        middle = statistics.median(values)
        print(
            f"  {name:52s} {middle:5.2f} s  ({min(values):.2f}-{max(values):.2f})"
            f"  {100 * (middle - base) / base:+5.0f}%"
            f"   client {statistics.median(client[name]):.2f} s"
        )
    if options.file_prompts:
        print(file_import_phases(project, options.file_prompts))
    if not options.keep_database:
        drop_database()


if __name__ == "__main__":
    main()
