"""A file import written by several processes at once and published in one transaction.

One transaction is one PostgreSQL backend, and one backend bounds an import: it is busy
most of the time parsing the COPY rows, checking each response's prompt and keeping the
indexes (docs/benchmarks.md). So the command-line import of a JSON Lines file writes with
several. The file is cut into ranges of whole lines, one per writer process; each writer
validates its range and COPYs it batch by batch into a hidden *stage* of the project (a
`Project` with `staged_for` set, listed nowhere), committing each batch, with prompt ids
the parent reserved in file order, so the queue serves the prompts in the file's order.
When every writer is done, one transaction moves the prompts and their search text from
the stage to the project: raters, exports and the browser see the whole import or none of
it. Any failure drops the stage; a stage left by a killed process is dropped a day later
by the next staged import.

Errors name a line as the one-transaction import does: a bad record, an external id
repeating another line, or one the project already holds. When a writer fails, the
writers of later ranges stop and the earlier ones finish, so the first failing line of
the file is the one named.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from types import FrameType
from typing import Any

from django.contrib.auth.models import User
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import Min
from django.utils import timezone

from core import db
from core.errors import InvalidInput, RanklabError
from core.memory import cycles_collected_rarely
from labeling.importing import (
    FileRange,
    LineError,
    RecordError,
    external_id_lines,
    file_ranges,
    read_json_lines,
    starts_as_json_list,
    validated_batches,
)
from labeling.models import Project, Prompt, PromptSearchText
from labeling.services.prompts import (
    IMPORT_BATCH_SIZE,
    ImportProgress,
    ImportSummary,
    audit_import,
    prompts_copy,
    prompts_import_file,
)
from labeling.services.search_index import prompt_search_job_queue

logger = logging.getLogger(__name__)

MAX_WRITERS = 4
STAGE_FORGOTTEN_AFTER = timedelta(days=1)
IDS_RESERVED_AT_ONCE = 100_000
CONFLICTS_LOOKED_UP = 1000
POLL_SECONDS = 0.2
STOP_SECONDS = 30.0


@dataclass(frozen=True)
class Writing:
    """What every writer of one import shares (inherited by the fork, not pickled)."""

    stage_id: int
    path: Path
    prompt_ids: array[int]  # one per line of the file, ascending in file order
    batch_size: int
    parent: int  # the command's process id


@dataclass
class WriterEnd:
    """A writer's failure (a writer that finished has none)."""

    line: int | None = None  # the line it names; None when the writer itself failed
    message: str = ""
    field: str | None = None


def default_writers() -> int:
    """One writer per CPU, at most `MAX_WRITERS`; one per two CPUs when PostgreSQL runs on
    this machine too, where each writer's backend needs a core as much as the writer does
    (2 cores, PostgreSQL beside the command, 100k prompts: 1 writer 17.7 / 17.8 s, 2 writers
    18.8 / 18.5 s)."""
    cpus = os.cpu_count() or 1
    if db.on_this_machine():
        cpus //= 2
    return max(1, min(cpus, MAX_WRITERS))


def prompts_import_file_parallel(
    *,
    project: Project,
    path: Path,
    writers: int,
    by: User | None = None,
    batch_size: int = IMPORT_BATCH_SIZE,
    on_progress: Callable[[ImportProgress], None] | None = None,
) -> ImportSummary:
    """Import a file with `writers` processes where that can help (PostgreSQL, a JSON Lines
    file of more than one batch, no transaction open around the call), else in one
    transaction (`prompts_import_file`). All or nothing either way."""
    ranges = file_ranges(path, writers) if _stage_possible(path, writers) else []
    if len(ranges) < 2 or sum(part.lines for part in ranges) <= batch_size:
        return prompts_import_file(
            project=project, path=path, by=by, batch_size=batch_size, on_progress=on_progress
        )
    stages_forgotten_drop()
    stage = _stage_create(project)
    try:
        with _terminate_as_interrupt():
            prompt_ids = _reserved_prompt_ids(sum(part.lines for part in ranges))
            writing = Writing(stage.pk, path, prompt_ids, batch_size, os.getpid())
            responses = _written_in_parallel(writing, ranges, on_progress)
            prompts, first_id = _publish(project=project, stage=stage, path=path, by=by)
    except BaseException:
        _stage_drop(stage.pk)
        raise
    return ImportSummary(prompts, responses, first_id, writers=len(ranges))


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """A SIGTERM (a supervisor stopping the command) ends a staged import as Ctrl-C does:
    the writers stopped, the stage dropped. The staged path runs in the main thread only."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stage_possible(path: Path, writers: int) -> bool:
    """Writers are forked: not from inside a transaction (it could not hold their work) nor
    from a process running other threads (a lock one of them holds would never be freed in
    the child)."""
    if writers < 2 or not db.is_postgresql() or connection.in_atomic_block:
        return False
    if other_threads_running():
        return False
    with path.open("rb") as stream:
        return not starts_as_json_list(stream)


def other_threads_running() -> bool:
    return threading.active_count() > 1


def _reserved_prompt_ids(count: int) -> array[int]:
    """`count` prompt ids in ascending order (8 bytes each), reserved a chunk at a time."""
    ids = array("q")
    while len(ids) < count:
        ids.extend(db.reserve_ids(Prompt, min(IDS_RESERVED_AT_ONCE, count - len(ids))))
    return ids


# The writers ----------------------------------------------------------------------------------


def _written_in_parallel(
    writing: Writing,
    ranges: Sequence[FileRange],
    on_progress: Callable[[ImportProgress], None] | None,
) -> int:
    """Run one writer process per range; the responses written. Raises the error of the
    first failing line of the file (or a writer's crash) once every writer has stopped."""
    connections.close_all()  # forked writers must not share this process's connection
    context = multiprocessing.get_context("fork")
    events: Queue[tuple[Any, ...]] = context.Queue()
    stops = [context.Event() for _ in ranges]
    writers = [
        context.Process(
            target=_writer,
            args=(writing, part, events, stops[part.index]),
            name=f"ranklab-import-writer-{part.index}",
            daemon=True,
        )
        for part in ranges
    ]
    for writer in writers:
        writer.start()
    try:
        total_bytes = writing.path.stat().st_size
        return _followed(writers, ranges, events, stops, total_bytes, on_progress)
    finally:
        _writers_stopped(writers, stops, events)


def _followed(
    writers: Sequence[BaseProcess],
    ranges: Sequence[FileRange],
    events: Queue[tuple[Any, ...]],
    stops: Sequence[Event],
    total_bytes: int,
    on_progress: Callable[[ImportProgress], None] | None,
) -> int:
    """Read the writers' events until each has ended: progress, and on an error the stop
    of every writer after the failing line (of every writer, when a writer itself failed)."""
    ends: dict[int, WriterEnd | None] = {}
    read = [0] * len(ranges)
    prompts = responses = 0
    while len(ends) < len(writers):
        try:
            event = events.get(timeout=POLL_SECONDS)
        except queue.Empty:
            for writer, part in zip(writers, ranges, strict=True):
                if part.index not in ends and writer.exitcode not in (None, 0):
                    ends[part.index] = WriterEnd(None, f"an import writer stopped ({writer.name}, "
                                                 f"exit code {writer.exitcode})")  # fmt: skip
                    _stop_after(None, ranges, stops)
            continue
        kind, index, *values = event
        if kind == "batch":
            prompts, responses, read[index] = prompts + values[0], responses + values[1], values[2]
            if on_progress is not None:
                on_progress(ImportProgress(prompts, sum(read), total_bytes))
        elif kind == "done":
            ends[index] = None
        else:
            failed = ends[index] = WriterEnd(*values)
            _stop_after(failed.line, ranges, stops)
    failures = [end for end in ends.values() if end is not None]
    if failures:
        raise _first_of(failures)
    return responses


def _stop_after(line: int | None, ranges: Sequence[FileRange], stops: Sequence[Event]) -> None:
    """Stop the writers of ranges after `line`, which cannot hold an earlier error; all of
    them when no line failed (a writer itself did)."""
    for part in ranges:
        if line is None or part.first_line > line:
            stops[part.index].set()


def _first_of(failures: Iterable[WriterEnd]) -> RanklabError:
    """The failure of the earliest line; a writer's crash when no line failed."""
    failure = min(failures, key=lambda end: (end.line is None, end.line or 0))
    if failure.line is None:
        return RanklabError(failure.message)
    return LineError(failure.line, failure.message, failure.field or "body")


def _writers_stopped(
    writers: Sequence[BaseProcess], stops: Sequence[Event], events: Queue[tuple[Any, ...]]
) -> None:
    """Every writer ended: asked to stop after its batch (it commits whole batches into the
    stage only), killed if it has not within STOP_SECONDS. Their last events are read
    meanwhile, so none waits on a full pipe to exit."""
    for stop in stops:
        stop.set()
    deadline = time.monotonic() + STOP_SECONDS
    while any(writer.is_alive() for writer in writers) and time.monotonic() < deadline:
        try:
            events.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
    for writer in writers:
        if writer.is_alive():
            writer.kill()
        writer.join()


def _writer(writing: Writing, part: FileRange, events: Queue[tuple[Any, ...]], stop: Event) -> None:
    """A writer process: validate its range and COPY it into the stage batch by batch,
    each batch committed; each batch and the end (or the error) reported on `events`."""
    try:
        with cycles_collected_rarely():
            _range_written(writing, part, events, stop)
        events.put(("done", part.index))
    except LineError as error:
        events.put(("error", part.index, error.line, error.message, error.field))
    except BaseException as error:  # reported, not raised: the parent names the failure
        events.put(("error", part.index, None, f"an import writer failed: {error!r}", None))
    finally:
        connections.close_all()


def _range_written(
    writing: Writing, part: FileRange, events: Queue[tuple[Any, ...]], stop: Event
) -> None:
    stage = Project.objects.get(pk=writing.stage_id)
    path, prompt_ids = writing.path, writing.prompt_ids
    written = 0
    with path.open("rb") as stream:
        stream.seek(part.start)
        lines = read_json_lines(stream, first_line=part.first_line, end=part.end)
        for batch in validated_batches(lines, size=writing.batch_size):
            if stop.is_set() or os.getppid() != writing.parent:
                break  # asked to stop, or the command is gone (killed): write no more
            first = part.first_line - 1 + written  # one id reserved per line
            try:
                with transaction.atomic():
                    prompts_copy(
                        project=stage,
                        records=batch,
                        prompt_ids=prompt_ids[first : first + len(batch)],
                    )
            except IntegrityError as error:
                raise (_repeat_named(path, batch) or error) from None
            written += len(batch)
            responses = sum(len(record.responses) for record in batch)
            events.put(("batch", part.index, len(batch), responses, stream.tell() - part.start))


# Naming a refused external id -----------------------------------------------------------------


def _repeat_named(path: Path, batch: Sequence[Any]) -> RecordError | None:
    """The stage refused a batch: one of its external ids is on another line of the file
    (the stage holds nothing else). The repeat of the earliest line is named."""
    lines = external_id_lines(path, {record.external_id for record in batch if record.external_id})
    repeats = [(where[1], where[0], name) for name, where in lines.items() if len(where) > 1]
    if not repeats:
        return None
    line, first, name = min(repeats)
    return RecordError(line, "external_id", f"{name!r} repeats line {first}")


def _existing_named(*, project: Project, stage: Project, path: Path) -> RecordError | None:
    """The publish was refused: the earliest line whose external id the project holds."""
    taken = set(
        Prompt.objects.filter(project=stage)
        .exclude(external_id="")
        .filter(external_id__in=Prompt.objects.filter(project=project).values("external_id"))
        .values_list("external_id", flat=True)[:CONFLICTS_LOOKED_UP]
    )
    if not taken:
        return None
    line, name = min((where[0], name) for name, where in external_id_lines(path, taken).items())
    return RecordError(line, "external_id", f"{name!r} already exists in this project")


# The stage ------------------------------------------------------------------------------------


def _stage_create(project: Project) -> Project:
    return Project.objects.create(
        name=f"import into project {project.pk} (stage)",
        created_by_id=project.created_by_id,
        staged_for=project,
        agreement_every_n_rankings=0,
    )


def _publish(*, project: Project, stage: Project, path: Path, by: User | None) -> tuple[int, int]:
    """Move the stage's prompts (and their search text) to the project in one transaction;
    how many, and the first id. Nothing looks external ids up first: the unique constraint
    refuses a repeat, and only then is its line found and named."""
    try:
        with transaction.atomic():
            first_id = Prompt.objects.filter(project=stage).aggregate(first=Min("id"))["first"]
            if first_id is None:
                raise InvalidInput("the import has no records", field="body")
            moved = Prompt.objects.filter(project=stage).update(project=project)
            PromptSearchText.objects.filter(project_id=stage.pk).update(project_id=project.pk)
            Project.objects.filter(pk=stage.pk).delete()
            prompt_search_job_queue(project_id=project.pk)
            audit_import(project=project, by=by, created=moved, first_id=first_id)
    except IntegrityError:
        named = _existing_named(project=project, stage=stage, path=path)
        if named is not None:
            raise named from None
        raise
    return moved, first_id


def _stage_drop(stage_id: int) -> None:
    """Delete a stage with its prompts and responses (nothing else refers to them)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM labeling_response WHERE prompt_id IN "
                "(SELECT id FROM labeling_prompt WHERE project_id = %s)",
                [stage_id],
            )
            cursor.execute("DELETE FROM labeling_prompt WHERE project_id = %s", [stage_id])
            Project.objects.filter(pk=stage_id, staged_for__isnull=False).delete()
    except DatabaseError:  # a writer's last batch still committing: dropped a day later
        logger.warning("import stage %s not dropped yet", stage_id, exc_info=True)


def stages_forgotten_drop(*, older_than: timedelta = STAGE_FORGOTTEN_AFTER) -> int:
    """Drop the stages of imports that ended without cleaning up (a killed process);
    how many."""
    forgotten = list(
        Project.objects.filter(
            staged_for__isnull=False, created_at__lt=timezone.now() - older_than
        ).values_list("pk", flat=True)
    )
    for stage_id in forgotten:
        _stage_drop(stage_id)
    return len(forgotten)
