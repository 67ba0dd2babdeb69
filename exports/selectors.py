"""Reads for exports: prompts with their responses and counted rankings, in keyset batches."""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from collections.abc import Container, Iterator, Sequence, Sized
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from django.db import connection, connections
from django.db.models import Count, Max, Q, QuerySet, TextField
from django.db.models.functions import Cast

from core import db
from exports.models import ExportJob
from exports.pairs import PromptData, RankingData, ResponseData, pseudonymous_rater_key
from labeling.models import Membership, Project, Prompt, Response
from rankings.models import Flag, FlagStatus, Ranking

PROMPT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class ExportFilters:
    """Which prompts and rankings an export reads (pair-level filters live in the service)."""

    include_gold: bool = False
    min_raters: int = 1
    exclude_flagged_raters: bool = False
    """Leave out raters with an open quality flag."""
    exclude_excluded_raters: bool = True
    """Leave out members a lead excluded from agreement and exports."""
    only_complete: bool = False
    """Only prompts that collected their full overlap."""
    created_after: datetime | None = None
    """Only rankings created at or after this time."""
    created_before: datetime | None = None
    """Only rankings created before this time."""
    until_ranking_id: int | None = None
    """Only rankings with an id up to this one: the export's snapshot of the data."""
    skip_prompt_ids: Container[int] = frozenset()
    """Prompts an earlier export covered (incremental exports)."""


PromptRankings = tuple[PromptData, list[RankingData]]


class RowReader(Protocol):
    """Reads `columns` of the rows, ordered by `order`, as sequences of Python values."""

    def __call__(
        self, rows: QuerySet[Any], columns: tuple[str, ...], *, order: tuple[str, ...]
    ) -> Sequence[Sequence[Any]]: ...


def prompt_batches(
    *,
    project: Project,
    filters: ExportFilters,
    batch_size: int | None = None,
    prefetch: bool = False,
    portable: bool = False,
) -> Iterator[list[PromptRankings]]:
    """Walk the project's prompts by primary key, one batch at a time.

    Memory is bounded by the batch: a batch holds `batch_size` prompts (default
    `PROMPT_BATCH_SIZE`) with their responses and rankings, whatever the size of the
    project. Prompts left with fewer than `min_raters` rankings after the filters are
    skipped.

    On PostgreSQL a full export reads each batch in one query answered as one JSON
    document (see `_BatchQuery`). Incremental exports, which skip prompts, and every export
    on other databases (or with `portable`, which the tests use to hold the two paths to
    each other) read three queries per batch and skip the rankings and responses of the
    prompts an earlier export covered. With `prefetch` the next batch is read on a
    background thread while the caller works on this one (only outside a transaction: the
    thread's connection would not see the transaction's rows).
    """
    batch_size = batch_size or PROMPT_BATCH_SIZE
    fast = db.is_postgresql() and not portable
    skip = filters.skip_prompt_ids
    if fast and isinstance(skip, Sized) and len(skip) == 0:
        yield from _json_batches(
            project=project, filters=filters, batch_size=batch_size, prefetch=prefetch
        )
        return
    batches = _keyset_batches(
        project=project,
        filters=filters,
        batch_size=batch_size,
        read_rows=_json_rows if fast else _plain_rows,
    )
    yield from prefetched(batches) if prefetch else batches


def _json_batches(
    *, project: Project, filters: ExportFilters, batch_size: int, prefetch: bool
) -> Iterator[list[PromptRankings]]:
    documents = _batch_documents(project=project, filters=filters, batch_size=batch_size)
    if prefetch:
        documents = prefetched(documents)
    keys: dict[int, str] = {}
    salt = project.rater_key_salt
    min_raters = max(filters.min_raters, 1)
    loads = orjson.loads
    new_tuple = tuple.__new__  # once per ranking and response: skip NamedTuple.__new__
    try:
        for document in documents:
            prompts, rankings, responses = loads(document)
            by_prompt: dict[int, list[RankingData]] = defaultdict(list)
            for ranking_id, prompt_id, rater_id, groups, strength in rankings or ():
                key = keys.get(rater_id)
                if key is None:
                    key = keys[rater_id] = pseudonymous_rater_key(salt, rater_id)
                by_prompt[prompt_id].append(
                    new_tuple(RankingData, (ranking_id, prompt_id, key, groups, strength))
                )
            by_response: dict[int, dict[int, ResponseData]] = defaultdict(dict)
            for response_id, prompt_id, external_id, text, model_name in responses or ():
                by_response[prompt_id][response_id] = new_tuple(
                    ResponseData, (response_id, external_id, text, model_name)
                )
            yield [
                (
                    PromptData(
                        prompt_id=prompt_id,
                        external_id=external_id,
                        messages=messages,
                        responses=by_response[prompt_id],
                    ),
                    by_prompt[prompt_id],
                )
                for prompt_id, external_id, messages in prompts
                if prompt_id in by_response and len(by_prompt.get(prompt_id, ())) >= min_raters
            ]
    finally:
        close = getattr(documents, "close", None)
        if close is not None:
            close()


def _batch_documents(*, project: Project, filters: ExportFilters, batch_size: int) -> Iterator[str]:
    """Each batch as one JSON text: `[prompts, rankings, responses]`, rows as arrays."""
    left_out = left_out_rater_ids(project=project, filters=filters)
    query = _BatchQuery(
        prompts=_prompts(project=project, filters=filters),
        rankings=_rankings(project=project, filters=filters, left_out=left_out),
        batch_size=batch_size,
        min_raters=max(filters.min_raters, 1),
    )
    last_id = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(query.sql, query.params(last_id))
            row = cursor.fetchone()
            if row is None or row[0] is None:
                return
            last_id = row[0]
            yield row[1]


_AFTER_ID = -(2**62) + 7919
"""Stands for the keyset position while a query is compiled, to find its parameter."""


class _BatchQuery:
    """One SQL statement per batch: the next `batch_size` prompts after an id, with their
    rankings (ordered by id) and the responses of prompts with enough rankings (ordered by
    position), aggregated by PostgreSQL into one JSON text.

    The filters come from the ORM querysets, compiled once; decoding one text with orjson
    costs a fraction of the driver and ORM work per row and column, and JSON keeps text
    exactly and integers as written (ids, strengths, the ids inside ranking groups).
    """

    def __init__(
        self,
        *,
        prompts: QuerySet[Prompt],
        rankings: QuerySet[Ranking],
        batch_size: int,
        min_raters: int,
    ) -> None:
        prompt_sql, prompt_params = (
            prompts.filter(id__gt=_AFTER_ID)
            .order_by("id")
            .values_list("id", "external_id", "messages")[:batch_size]
            .query.sql_with_params()
        )
        ranking_sql, ranking_params = (
            rankings.order_by()
            .values_list("id", "prompt_id", "rater_id", "groups", "strength")
            .query.sql_with_params()
        )
        response_sql, response_params = (
            Response.objects.order_by()
            .values_list("id", "prompt_id", "external_id", "text", "model_name", "position")
            .query.sql_with_params()
        )
        self._params = [*prompt_params, *ranking_params, *response_params]
        self._after = list(prompt_params).index(_AFTER_ID)
        in_batch = (
            "BETWEEN (SELECT min(id) FROM _p) AND (SELECT max(id) FROM _p) "
            "AND {0}.prompt_id IN (SELECT id FROM _p)"
        )
        self.sql = f"""
            WITH _p AS MATERIALIZED ({prompt_sql}),
            _r AS MATERIALIZED (
                SELECT * FROM ({ranking_sql}) AS _r0
                WHERE _r0.prompt_id {in_batch.format("_r0")}
            )
            SELECT
                (SELECT max(id) FROM _p),
                json_build_array(
                    (SELECT json_agg(json_build_array(id, external_id, messages) ORDER BY id)
                     FROM _p),
                    (SELECT json_agg(
                        json_build_array(id, prompt_id, rater_id, groups, strength) ORDER BY id
                     ) FROM _r),
                    (SELECT json_agg(
                        json_build_array(id, prompt_id, external_id, text, model_name)
                        ORDER BY prompt_id, position
                     )
                     FROM ({response_sql}) AS _s
                     WHERE _s.prompt_id {in_batch.format("_s")}
                     AND _s.prompt_id IN (
                        SELECT prompt_id FROM _r
                        GROUP BY prompt_id HAVING count(*) >= {int(min_raters)}
                     ))
                )::text
        """

    def params(self, after_id: int) -> list[Any]:
        params = list(self._params)
        params[self._after] = after_id
        return params


def _keyset_batches(
    *, project: Project, filters: ExportFilters, batch_size: int, read_rows: RowReader
) -> Iterator[list[PromptRankings]]:
    """Three queries per batch; only the prompts not in `skip_prompt_ids` are read in full.

    `read_rows` reads the rankings and responses: `_json_rows` on PostgreSQL,
    `_plain_rows` anywhere.
    """
    left_out = left_out_rater_ids(project=project, filters=filters)
    prompts = _prompts(project=project, filters=filters)
    rankings = _rankings(project=project, filters=filters, left_out=left_out)
    keys: dict[int, str] = {}
    min_raters = max(filters.min_raters, 1)
    last_id = 0
    while True:
        rows = [
            (prompt_id, external_id, orjson.loads(messages))
            for prompt_id, external_id, messages in prompts.filter(id__gt=last_id)
            .annotate(messages_json=_json_text("messages"))
            .order_by("id")
            .values_list("id", "external_id", "messages_json")[:batch_size]
        ]
        if not rows:
            return
        last_id = rows[-1][0]
        all_ids = [row[0] for row in rows]
        wanted = [row for row in rows if row[0] not in filters.skip_prompt_ids]
        if not wanted:
            yield []
            continue
        prompt_ids = [row[0] for row in wanted]
        by_prompt = _rankings_by_prompt(
            rankings.filter(_prompt_ids_lookup("prompt_id", prompt_ids, all_ids)),
            salt=project.rater_key_salt,
            keys=keys,
            read_rows=read_rows,
        )
        ranked_ids = [
            prompt_id for prompt_id in prompt_ids if len(by_prompt.get(prompt_id, ())) >= min_raters
        ]
        responses = (
            _responses_by_prompt(
                Response.objects.filter(_prompt_ids_lookup("prompt_id", ranked_ids, all_ids)),
                read_rows=read_rows,
            )
            if ranked_ids
            else {}
        )
        yield [
            (
                PromptData(
                    prompt_id=prompt_id,
                    external_id=external_id,
                    messages=messages,
                    responses=responses[prompt_id],
                ),
                by_prompt[prompt_id],
            )
            for prompt_id, external_id, messages in wanted
            if prompt_id in responses and prompt_id in by_prompt
        ]


def _prompt_ids_lookup(name: str, ids: list[int], batch_ids: list[int]) -> Q:
    """`name` in `ids`, as an id range when `ids` is the whole keyset batch and dense.

    The range spares the database driver a thousand-placeholder IN list per query. It can
    only add rows of prompts outside the batch (other projects' prompts, or prompts the
    filters left out), which callers ignore; density bounds that waste.
    """
    if ids == batch_ids and ids[-1] - ids[0] < 2 * len(ids):
        return Q(**{f"{name}__gte": ids[0], f"{name}__lte": ids[-1]})
    return Q(**{f"{name}__in": ids})


def left_out_rater_ids(*, project: Project, filters: ExportFilters) -> set[int]:
    """Raters whose rankings the filters leave out: excluded members, flagged raters."""
    left_out: set[int] = set()
    if filters.exclude_excluded_raters:
        left_out.update(
            Membership.objects.filter(project=project, excluded=True).values_list(
                "user_id", flat=True
            )
        )
    if filters.exclude_flagged_raters:
        left_out.update(
            Flag.objects.filter(project=project, status=FlagStatus.OPEN).values_list(
                "rater_id", flat=True
            )
        )
    return left_out


def _prompts(*, project: Project, filters: ExportFilters) -> QuerySet[Prompt]:
    prompts = Prompt.objects.filter(project=project)
    if not filters.include_gold:
        prompts = prompts.filter(is_gold=False)
    if filters.only_complete:
        prompts = prompts.filter(is_complete=True)
    return prompts


def _rankings(*, project: Project, filters: ExportFilters, left_out: set[int]) -> QuerySet[Ranking]:
    # Repeats measure self-consistency and are never exported.
    rankings = Ranking.objects.filter(project=project, is_repeat=False)
    if left_out:
        rankings = rankings.exclude(rater_id__in=sorted(left_out))
    if filters.created_after is not None:
        rankings = rankings.filter(created_at__gte=filters.created_after)
    if filters.created_before is not None:
        rankings = rankings.filter(created_at__lt=filters.created_before)
    if filters.until_ranking_id is not None:
        rankings = rankings.filter(id__lte=filters.until_ranking_id)
    return rankings


def _responses_by_prompt(
    responses_of_batch: QuerySet[Response], *, read_rows: RowReader
) -> dict[int, dict[int, ResponseData]]:
    responses: dict[int, dict[int, ResponseData]] = defaultdict(dict)
    rows = read_rows(
        responses_of_batch,
        ("id", "prompt_id", "external_id", "text", "model_name"),
        order=("prompt_id", "position"),
    )
    for response_id, prompt_id, external_id, text, model_name in rows:
        responses[prompt_id][response_id] = ResponseData(response_id, external_id, text, model_name)
    return responses


def _json_rows(
    rows: QuerySet[Any], columns: tuple[str, ...], *, order: tuple[str, ...]
) -> list[list[Any]]:
    """`columns` of the rows, ordered by `order`, as one JSON array built by PostgreSQL.

    Decoding one text value with orjson costs a fraction of the driver and ORM work per
    row and column, and the database builds the array on its own core. JSON keeps text
    exactly and integers as written (ids, strengths, the ids inside ranking groups).
    Column names are the model's field names, which here are also the column names.
    """
    selected = tuple(dict.fromkeys(columns + order))
    sql, params = rows.order_by().values_list(*selected).query.sql_with_params()
    quote = connection.ops.quote_name
    values = ", ".join(f"_rows.{quote(name)}" for name in columns)
    ordering = ", ".join(f"_rows.{quote(name)}" for name in order)
    wrapped = (
        f"SELECT json_agg(json_build_array({values}) ORDER BY {ordering})::text "
        f"FROM ({sql}) AS _rows"
    )
    with connection.cursor() as cursor:
        cursor.execute(wrapped, params)
        row = cursor.fetchone()
    return orjson.loads(row[0]) if row and row[0] else []


def _plain_rows(
    rows: QuerySet[Any], columns: tuple[str, ...], *, order: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """The rows `_json_rows` gives, read with `values_list` on any database."""
    return list(rows.order_by(*order).values_list(*columns))


def _rankings_by_prompt(
    rankings: QuerySet[Ranking], *, salt: str, keys: dict[int, str], read_rows: RowReader
) -> dict[int, list[RankingData]]:
    by_prompt: dict[int, list[RankingData]] = defaultdict(list)
    rows = read_rows(rankings, ("id", "prompt_id", "rater_id", "groups", "strength"), order=("id",))
    new_ranking = tuple.__new__  # once per ranking: skip NamedTuple.__new__
    for ranking_id, prompt_id, rater_id, groups, strength in rows:
        key = keys.get(rater_id)
        if key is None:
            key = keys[rater_id] = pseudonymous_rater_key(salt, rater_id)
        by_prompt[prompt_id].append(
            new_ranking(RankingData, (ranking_id, prompt_id, key, groups, strength))
        )
    return by_prompt


def _json_text(field: str) -> Cast:
    """A JSON column as text, decoded by orjson: about twice as fast as the JSONField
    converter on the rows an export walks."""
    return Cast(field, output_field=TextField())


@dataclass(frozen=True)
class ExportSize:
    rankings: int
    prompts: int
    responses_per_prompt: float


def export_size(*, project: Project, filters: ExportFilters) -> ExportSize:
    """Counts behind the row estimate, in two aggregate queries."""
    left_out = left_out_rater_ids(project=project, filters=filters)
    prompts = _prompts(project=project, filters=filters)
    counted = (
        _rankings(project=project, filters=filters, left_out=left_out)
        .filter(prompt__in=prompts)
        .aggregate(rankings=Count("id"), prompts=Count("prompt_id", distinct=True))
    )
    shape = prompts.aggregate(prompts=Count("id", distinct=True), responses=Count("responses"))
    per_prompt = shape["responses"] / shape["prompts"] if shape["prompts"] else 0.0
    return ExportSize(counted["rankings"], counted["prompts"], per_prompt)


def newest_ranking_id(*, project: Project) -> int:
    return Ranking.objects.filter(project=project).aggregate(newest=Max("id"))["newest"] or 0


def export_jobs_for_user(*, user) -> QuerySet[ExportJob]:
    """Jobs of projects where the user is lead or engineer (staff see all)."""
    jobs = ExportJob.objects.select_related("project", "created_by").defer("exported_prompt_ids")
    if user.is_staff:
        return jobs
    return jobs.filter(
        project__memberships__user=user, project__memberships__role__in=["lead", "engineer"]
    )


def export_jobs_of_project(*, project: Project, limit: int = 50) -> list[ExportJob]:
    return list(
        ExportJob.objects.filter(project=project)
        .select_related("created_by")
        .defer("exported_prompt_ids")
        .order_by("-created_at", "-id")[:limit]
    )


_DONE = object()


def prefetched[T](batches: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    """`batches`, read one step ahead on a background thread while the caller works.

    The thread has its own database connection (Django connections are per thread) and
    closes it when done; psycopg releases the GIL while it waits for PostgreSQL, so reading
    the next batch overlaps building and encoding this one. At most `depth` batches wait,
    which keeps memory flat. Errors are raised in the caller; closing the generator early
    stops the thread.

    Only for reads outside a transaction: the other connection would not see its writes.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for batch in batches:
                if not put((batch, None)):
                    return
            put((_DONE, None))
        except BaseException as error:  # re-raised in the caller's thread
            put((_DONE, error))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            connections.close_all()

    thread = threading.Thread(target=run, name="export-reader", daemon=True)
    thread.start()
    try:
        while True:
            batch, error = slots.get()
            if error is not None:
                raise error
            if batch is _DONE:
                return
            yield batch
    finally:
        stop.set()
        thread.join()
