"""Prompts: all-or-nothing imports (COPY on PostgreSQL, bulk_create elsewhere), gold
rankings given with them included (a lead marks gold later through ``gold``).

An import is validated batch by batch in a reader thread (no database there) while the
previous batch is written, all inside one transaction. Nothing looks up external ids
before writing: the unique constraint refuses a repeat, and only then is the refused
record found and named. The prompt browser's search index is filled after the commit by a
job (labeling.services.search_index), not by the import.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import db
from core.errors import InvalidInput
from core.memory import cycles_collected_rarely
from labeling.importing import (
    PromptRecord,
    RecordError,
    external_id_lines,
    parse_import_body,
    read_json_lines,
    starts_as_json_list,
    validated_batches,
)
from labeling.models import (
    AuditAction,
    Project,
    Prompt,
    Response,
)
from labeling.services.audit import audit_record
from labeling.services.search_index import prompt_search_job_queue

IMPORT_BATCH_SIZE = 2000
FIRST_BATCH_SIZE = 250
"""The API's first batch: the database waits for it alone, then writes while the rest is
validated (a full first batch kept it idle for a tenth of a 10k-prompt request)."""
EXTERNAL_ID_LOOKUP_CHUNK = 1000


@dataclass(frozen=True)
class ImportProgress:
    """Where a file import stands after a batch was written."""

    prompts: int
    bytes_read: int
    total_bytes: int


@dataclass(frozen=True)
class ImportSummary:
    prompts: int
    responses: int
    first_id: int
    writers: int = 1  # processes that wrote it (labeling.services.staged_import)


# Import ---------------------------------------------------------------------------------------


def prompts_import(*, project: Project, raw: bytes | str, by: User | None = None) -> list[int]:
    """Validate and write the payload in one transaction: all or nothing."""
    created: list[int] = []
    with cycles_collected_rarely():
        batches = validated_batches(
            parse_import_body(raw),
            size=IMPORT_BATCH_SIZE,
            seen={},
            first_size=min(FIRST_BATCH_SIZE, IMPORT_BATCH_SIZE),
        )
        with validated_ahead(batches) as ahead:
            _import_batches(
                project=project,
                by=by,
                batches=ahead,
                earlier=_none_earlier,
                on_batch=lambda batch, ids: created.extend(ids),
            )
    return created


def prompts_import_file(
    *,
    project: Project,
    path: Path,
    by: User | None = None,
    batch_size: int = IMPORT_BATCH_SIZE,
    on_progress: Callable[[ImportProgress], None] | None = None,
) -> ImportSummary:
    """Import a JSON Lines file of any size in one transaction: all or nothing.

    The file is read, validated and written one batch at a time, so memory stays flat in
    the file's size; a bad line in a late batch rolls back every batch before it (the
    error names the line). A JSON list file cannot be streamed and is read whole.
    """
    total_bytes = path.stat().st_size
    counts = {"prompts": 0, "responses": 0}
    read_up_to: dict[int, int] = {}  # a batch's last line -> bytes read once it was read
    with path.open("rb") as stream:
        items: Iterable[tuple[int, Any]]
        seen: dict[str, int] | None
        earlier: EarlierIds
        if starts_as_json_list(stream):
            items, seen, earlier = parse_import_body(stream.read()), {}, _none_earlier
        else:  # repeats across batches: the unique constraint, then a second read names them
            items, seen = read_json_lines(stream), None
            earlier = partial(_earlier_external_ids, path)

        def read_batches() -> Iterator[list[PromptRecord]]:
            for batch in validated_batches(items, size=batch_size, seen=seen):
                read_up_to[batch[-1].line] = stream.tell()
                yield batch

        def count(batch: list[PromptRecord], ids: list[int]) -> None:
            counts["prompts"] += len(ids)
            counts["responses"] += sum(len(record.responses) for record in batch)
            bytes_read = read_up_to.pop(batch[-1].line)
            if on_progress is not None:
                on_progress(ImportProgress(counts["prompts"], bytes_read, total_bytes))

        with cycles_collected_rarely(), validated_ahead(read_batches()) as batches:
            first_id = _import_batches(
                project=project, by=by, batches=batches, earlier=earlier, on_batch=count
            )
    return ImportSummary(counts["prompts"], counts["responses"], first_id)


@contextmanager
def validated_ahead(
    batches: Iterator[list[PromptRecord]], depth: int = 2
) -> Iterator[Iterator[list[PromptRecord]]]:
    """Read and validate the next batches in a thread while the database writes this one.

    On two cores the client's parsing and the server's COPY then overlap instead of taking
    turns (the thread runs while the writer waits on the socket). The thread touches no
    database; its errors (a bad line) are raised where the batch would have arrived.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not hand_over(("batch", batch)):
                    return
            hand_over(("end", None))
        except BaseException as error:  # handed to the writer, which raises it
            hand_over(("error", error))

    def consume() -> Iterator[list[PromptRecord]]:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    thread = threading.Thread(target=produce, name="ranklab-import-reader", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()


def prompts_create(*, project: Project, records: list[PromptRecord]) -> list[int]:
    """Insert prompts with their responses and gold rankings; returns the new prompt ids."""
    created: list[int] = []
    with transaction.atomic():
        _write_batches(
            project=project,
            batches=_chunks(records, IMPORT_BATCH_SIZE),
            earlier=_none_earlier,
            on_batch=lambda batch, ids: created.extend(ids),
        )
    return created


BatchDone = Callable[[list[PromptRecord], list[int]], None]
EarlierIds = Callable[[Sequence[PromptRecord]], Mapping[str, int]]


def _import_batches(
    *,
    project: Project,
    by: User | None,
    batches: Iterable[list[PromptRecord]],
    earlier: EarlierIds,
    on_batch: BatchDone,
) -> int:
    """Write every batch, then the audit event, in one transaction; the first new id."""
    with transaction.atomic():
        prompts, first_id = _write_batches(
            project=project, batches=batches, earlier=earlier, on_batch=on_batch
        )
        if first_id is None:
            raise InvalidInput("the import has no records", field="body")
        audit_import(project=project, by=by, created=prompts, first_id=first_id)
    return first_id


def _write_batches(
    *,
    project: Project,
    batches: Iterable[list[PromptRecord]],
    earlier: EarlierIds,
    on_batch: BatchDone,
) -> tuple[int, int | None]:
    prompts, first_id = 0, None
    for batch in batches:
        try:
            ids = _prompts_write(project=project, records=batch)
        except IntegrityError:
            _raise_external_id_conflict(project=project, records=batch, earlier=earlier(batch))
            raise
        prompts += len(ids)
        first_id = ids[0] if first_id is None else first_id
        on_batch(batch, ids)
    if prompts:
        # The search index is built after the commit, off the import's path; the prompts
        # are found the slow way until then (labeling.services.search_index).
        prompt_search_job_queue(project_id=project.pk)
    return prompts, first_id


def _chunks(records: list[PromptRecord], size: int) -> Iterator[list[PromptRecord]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


def _none_earlier(records: Sequence[PromptRecord]) -> Mapping[str, int]:
    """Batches validated with a shared `seen` have no repeats across them."""
    return {}


def _prompts_write(*, project: Project, records: list[PromptRecord]) -> list[int]:
    """One batch, in a savepoint so a refused batch leaves the transaction usable."""
    with transaction.atomic():
        if db.is_postgresql():
            return prompts_copy(project=project, records=records)
        return _prompts_bulk_create(project=project, records=records)


def audit_import(*, project: Project, by: User | None, created: int, first_id: int) -> None:
    audit_record(
        action=AuditAction.PROMPTS_IMPORT,
        actor=by,
        project=project,
        target=f"{created} prompts",
        changes={"created": created, "first_id": first_id},
    )


def _raise_external_id_conflict(
    *, project: Project, records: Sequence[PromptRecord], earlier: Mapping[str, int]
) -> None:
    """Name the first record the unique constraint refused: an id repeating an earlier
    line of the same import, or one the project already holds. Returns if neither."""
    wanted = [record for record in records if record.external_id]
    ids = [record.external_id for record in wanted]
    existing: set[str] = set()
    for start in range(0, len(ids), EXTERNAL_ID_LOOKUP_CHUNK):
        chunk = ids[start : start + EXTERNAL_ID_LOOKUP_CHUNK]
        existing.update(
            Prompt.objects.filter(project=project, external_id__in=chunk).values_list(
                "external_id", flat=True
            )
        )
    for record in wanted:
        if record.external_id in earlier:
            raise RecordError(
                record.line,
                "external_id",
                f"{record.external_id!r} repeats line {earlier[record.external_id]}",
            )
        if record.external_id in existing:
            raise RecordError(
                record.line, "external_id", f"{record.external_id!r} already exists in this project"
            )


def _earlier_external_ids(path: Path, records: Sequence[PromptRecord]) -> dict[str, int]:
    """The first line before this batch holding each of the batch's external ids."""
    wanted = {record.external_id for record in records if record.external_id}
    lines = external_id_lines(path, wanted, before=records[0].line)
    return {external_id: where[0] for external_id, where in lines.items()}


def _prompts_bulk_create(*, project: Project, records: list[PromptRecord]) -> list[int]:
    """The portable path: prompts, then their responses and gold rankings."""
    prompts = Prompt.objects.bulk_create(
        [
            Prompt(
                project=project,
                external_id=record.external_id,
                messages=record.messages,
                metadata=record.metadata,
                n_responses=len(record.responses),
            )
            for record in records
        ]
    )
    responses = Response.objects.bulk_create(
        [
            Response(
                prompt=prompt,
                position=position,
                external_id=item.external_id,
                text=item.text,
                model_name=item.model,
                metadata=item.metadata,
            )
            for prompt, record in zip(prompts, records, strict=True)
            for position, item in enumerate(record.responses)
        ]
    )
    _store_gold_rankings(prompts=prompts, records=records, responses=responses)
    return [prompt.pk for prompt in prompts]


def prompts_copy(
    *, project: Project, records: list[PromptRecord], prompt_ids: Sequence[int] | None = None
) -> list[int]:
    """PostgreSQL path: ids reserved from the sequences (the prompts' may be given, reserved
    earlier in file order), rows streamed with COPY as they are built, so the server writes
    the first rows while the client builds the rest."""
    n_responses = sum(len(record.responses) for record in records)
    if prompt_ids is None:
        prompt_ids, response_ids = db.reserve_id_lists(
            (Prompt, len(records)), (Response, n_responses)
        )
    else:
        response_ids = db.reserve_ids(Response, n_responses)
    db.copy_rows(
        Prompt,
        ["id", "project", "external_id", "messages", "metadata", "gold_ranking", "is_gold",
         "is_complete", "extra_raters", "extra_reason", "created_at", "n_responses"],
        _prompt_rows(project_id=project.pk, records=records, prompt_ids=prompt_ids,
                     response_ids=response_ids),
    )  # fmt: skip
    db.copy_rows(
        Response,
        ["id", "prompt", "position", "external_id", "text", "model_name", "metadata"],
        _response_rows(records=records, prompt_ids=prompt_ids, response_ids=response_ids),
    )
    return list(prompt_ids)


def _prompt_rows(
    *,
    project_id: int,
    records: list[PromptRecord],
    prompt_ids: Sequence[int],
    response_ids: Sequence[int],
) -> Iterator[tuple[Any, ...]]:
    """A prompt's COPY row; its gold ranking names the response ids reserved for it."""
    now = timezone.now()
    first_response = 0
    for prompt_id, record in zip(prompt_ids, records, strict=True):
        gold = None
        if record.gold_ranking is not None:
            gold = [[response_ids[first_response + position] for position in group]
                    for group in record.gold_ranking]  # fmt: skip
        first_response += len(record.responses)
        yield (prompt_id, project_id, record.external_id, record.messages, record.metadata,
               gold, gold is not None, False, 0, "", now, len(record.responses))  # fmt: skip


def _response_rows(
    *, records: list[PromptRecord], prompt_ids: Sequence[int], response_ids: Sequence[int]
) -> Iterator[tuple[Any, ...]]:
    ids = iter(response_ids)
    for prompt_id, record in zip(prompt_ids, records, strict=True):
        for position, item in enumerate(record.responses):
            yield (next(ids), prompt_id, position, item.external_id, item.text, item.model,
                   item.metadata)  # fmt: skip


def _store_gold_rankings(
    *, prompts: list[Prompt], records: list[PromptRecord], responses: list[Response]
) -> None:
    ids_by_prompt: dict[int, dict[int, int]] = {}
    for response in responses:
        ids_by_prompt.setdefault(response.prompt_id, {})[response.position] = response.pk
    gold_prompts = []
    for prompt, record in zip(prompts, records, strict=True):
        if record.gold_ranking is None:
            continue
        id_of = ids_by_prompt[prompt.pk]
        prompt.gold_ranking = [
            [id_of[position] for position in group] for group in record.gold_ranking
        ]
        prompt.is_gold = True
        gold_prompts.append(prompt)
    if gold_prompts:
        Prompt.objects.bulk_update(gold_prompts, ["gold_ranking", "is_gold"])
