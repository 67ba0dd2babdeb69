"""The two ways an export reads its prompts, responses and rankings in keyset batches.

On PostgreSQL a full export reads each batch in one query answered as one JSON document
(`batch_documents`, decoded by `decoded_batches`); incremental exports, and every export on
other databases, read three queries a batch (`keyset_batches`) with rows read by
`json_rows` (PostgreSQL) or `plain_rows` (anywhere). Tests hold the paths to each other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import orjson
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from core.db import read_connection
from exports.pairs import PromptData, RankingData, ResponseData, pseudonymous_rater_key
from exports.selectors.filters import ExportFilters, prompts_read, rankings_read
from labeling.models import Project, Prompt, Response
from rankings.models import Ranking

PromptRankings = tuple[PromptData, list[RankingData]]


class RowReader(Protocol):
    """Reads `columns` of the rows, ordered by `order`, as sequences of Python values."""

    def __call__(
        self, rows: QuerySet[Any], columns: tuple[str, ...], *, order: tuple[str, ...]
    ) -> Sequence[Sequence[Any]]: ...


def decoded_batches(
    documents: Iterator[str], *, project: Project, filters: ExportFilters
) -> Iterator[list[PromptRankings]]:
    """The batches of `batch_documents`, decoded (in the caller's thread: decoding holds
    the GIL, so reading ahead only pays for the waiting on PostgreSQL)."""
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


def batch_documents(*, project: Project, filters: ExportFilters, batch_size: int) -> Iterator[str]:
    """Each batch as one JSON text: `[prompts, rankings, responses]`, rows as arrays."""
    query = _BatchQuery(
        prompts=prompts_read(project=project, filters=filters),
        rankings=rankings_read(project=project, filters=filters),
        batch_size=batch_size,
        min_raters=max(filters.min_raters, 1),
    )
    last_id = 0
    with read_connection(Prompt).cursor() as cursor:
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


def keyset_batches(
    *, project: Project, filters: ExportFilters, batch_size: int, read_rows: RowReader
) -> Iterator[list[PromptRankings]]:
    """Three queries per batch; only the prompts not in `skip_prompt_ids` are read in full.

    `read_rows` reads the rankings and responses: `json_rows` on PostgreSQL, `plain_rows`
    anywhere.
    """
    prompts = prompts_read(project=project, filters=filters)
    rankings = rankings_read(project=project, filters=filters)
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


def json_rows(
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
    connection = read_connection(rows.model)
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


def plain_rows(
    rows: QuerySet[Any], columns: tuple[str, ...], *, order: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """The rows `json_rows` gives, read with `values_list` on any database."""
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
