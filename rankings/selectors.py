"""Reads for rankings: the bulk ranking table the metrics run on, and agreement run history."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from django.db import connection
from django.db.models import Exists, F, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Length

from core import db
from labeling.models import Assignment, Membership, Project, Prompt, Response
from rankings.metrics import FloatArray, IntArray, RankingContext, RankingTable
from rankings.models import AgreementRun, Ranking, RaterScore, RunStatus

HISTORY_LENGTH = 50
BATCH_SIZE = 20_000


def excluded_rater_ids(*, project: Project) -> list[int]:
    return list(
        Membership.objects.filter(project=project, excluded=True).values_list("user_id", flat=True)
    )


def rankings_for_agreement(*, project: Project, up_to_id: int | None = None) -> QuerySet[Ranking]:
    """Rankings that count toward agreement: no repeats, no excluded raters."""
    return _rankings_of_counted_raters(project=project, up_to_id=up_to_id).filter(is_repeat=False)


def _rankings_of_counted_raters(
    *, project: Project, up_to_id: int | None, excluded: list[int] | None = None
) -> QuerySet[Ranking]:
    if excluded is None:
        excluded = excluded_rater_ids(project=project)
    rankings = Ranking.objects.filter(project=project).exclude(rater_id__in=excluded)
    if up_to_id is not None:
        rankings = rankings.filter(id__lte=up_to_id)
    return rankings


@dataclass(frozen=True)
class AgreementData:
    """Everything an agreement run computes on, as dense arrays (see ``rankings.metrics``).

    ``table`` holds every ranking of the raters who count (excluded raters are left out
    entirely), repeats included, in ranking-id order; ``context.is_repeat`` says which rows
    are repeats. Slots are the responses' import positions.
    """

    table: RankingTable
    context: RankingContext
    rater_user_ids: list[int]
    prompt_ids: IntArray
    response_ids: IntArray  # (n_prompts, k_max) response id per slot, 0 where absent
    ranking_ids: IntArray

    def agreement_table(self) -> RankingTable:
        """The rankings that count toward agreement: repeats left out."""
        assert self.context.is_repeat is not None
        return self.table.take(~self.context.is_repeat)


def ranking_table(
    *, project: Project, up_to_id: int | None = None
) -> tuple[RankingTable, list[int]]:
    """The rankings that count toward agreement, plus the user id behind each rater index."""
    data = agreement_data(project=project, up_to_id=up_to_id)
    return data.agreement_table(), data.rater_user_ids


def agreement_data(
    *, project: Project, up_to_id: int | None = None, portable: bool = False
) -> AgreementData:
    """Load a project's rankings up to ``up_to_id`` with everything the metrics need, in bulk.

    On PostgreSQL the database writes rankings, shown orders and response lengths as a few
    large texts per id range, parsed here with numpy (``_number_tokens``): a million
    rankings never become a million Python objects. Elsewhere, or with ``portable`` (which
    the tests use to hold the two paths to each other), the ORM path reads the same.
    """
    excluded = excluded_rater_ids(project=project)
    if db.is_postgresql() and not portable:
        raw = _raw_rankings_postgresql(project=project, up_to_id=up_to_id, excluded=excluded)
    else:
        raw = _raw_rankings_orm(project=project, up_to_id=up_to_id, excluded=excluded)
    gold = dict(
        Prompt.objects.filter(project=project, is_gold=True).values_list("id", "gold_ranking")
    )
    return _assemble(raw, gold)


@dataclass
class _RawRankings:
    """Rankings as read, one row per ranking in any order, before dense indexing.

    ``group_ids[r]`` holds the ranking's response ids best first and ``group_levels[r]``
    their tie level (1 = best); ``shown_ids(rows)`` gives the response ids in shown order.
    Rows are padded with id -1 and level 0. Responses: every response of the project's
    prompts.
    """

    ranking_ids: IntArray
    prompt_ids: IntArray
    rater_ids: IntArray
    is_repeat: npt.NDArray[np.bool_]
    seconds: FloatArray
    group_ids: IntArray
    group_levels: npt.NDArray[np.int8]
    shown_ids: Callable[[IntArray], IntArray]  # the shown-order matrix of the given rows
    response_ids: IntArray
    response_prompts: IntArray
    response_positions: IntArray
    response_lengths: IntArray


def _assemble(raw: _RawRankings, gold: dict[int, Any]) -> AgreementData:
    order = np.argsort(raw.ranking_ids, kind="stable")
    prompt_ids, prompt_index = _dense_index(raw.prompt_ids[order])
    rater_ids, rater_index = _dense_index(raw.rater_ids[order])
    n_rankings, n_prompts = len(order), len(prompt_ids)

    # Responses of the ranked prompts, by (prompt index, slot).
    response_prompt = _IdLookup(prompt_ids)(raw.response_prompts)
    keep = response_prompt >= 0
    response_ids = raw.response_ids[keep]
    response_prompt = response_prompt[keep]
    response_slot = raw.response_positions[keep]
    k_max = int(response_slot.max()) + 1 if response_slot.size else 0
    ids_by_slot = np.zeros((n_prompts, k_max), dtype=np.int64)
    ids_by_slot[response_prompt, response_slot] = response_ids
    length = np.full((n_prompts, k_max), np.nan)
    length[response_prompt, response_slot] = raw.response_lengths[keep]
    response_of = _IdLookup(response_ids)

    def slots_of(ids: IntArray, prompts: IntArray) -> IntArray:
        """The slot of each response id in its row's prompt; -1 for padding or a stranger."""
        found = response_of(ids.ravel()).reshape(ids.shape)
        known = found >= 0
        found = np.where(known, found, 0)
        known &= response_prompt[found] == prompts[:, np.newaxis]
        return np.where(known, response_slot[found], -1)

    ranks = np.full((n_rankings, k_max), np.nan)
    shown_slots = np.full((n_rankings, k_max), -1, dtype=np.int8)
    # In blocks of rankings: the id lookups make several temporaries the size of the block.
    for start in range(0, n_rankings, ASSEMBLE_BLOCK):
        block = order[start : start + ASSEMBLE_BLOCK]
        prompts = prompt_index[start : start + ASSEMBLE_BLOCK]
        group_slots = slots_of(raw.group_ids[block], prompts)
        rows, columns = np.nonzero(group_slots >= 0)
        levels = raw.group_levels[block]
        ranks[start + rows, group_slots[rows, columns]] = levels[rows, columns]
        shown = slots_of(raw.shown_ids(block)[:, :k_max], prompts)
        shown_slots[start : start + len(block), : shown.shape[1]] = shown

    gold_ranks = np.full((n_prompts, k_max), np.nan)
    prompt_of = _IdLookup(prompt_ids)
    for prompt_id, groups in gold.items():
        prompt = int(prompt_of(np.array([prompt_id]))[0])
        if prompt < 0 or not groups:
            continue
        for level, group in enumerate(groups, start=1):
            found = response_of(np.array([int(item) for item in group], dtype=np.int64))
            found = found[found >= 0]
            found = found[response_prompt[found] == prompt]
            gold_ranks[prompt, response_slot[found]] = level

    table = RankingTable(
        prompt_index=prompt_index,
        rater_index=rater_index,
        ranks=ranks,
        n_prompts=n_prompts,
        n_raters=len(rater_ids),
    )
    context = RankingContext(
        is_repeat=raw.is_repeat[order],
        shown_slots=shown_slots,
        seconds=raw.seconds[order],
        gold_ranks=gold_ranks,
        response_length=length,
    )
    return AgreementData(
        table=table,
        context=context,
        rater_user_ids=[int(user_id) for user_id in rater_ids],
        prompt_ids=prompt_ids,
        response_ids=ids_by_slot,
        ranking_ids=raw.ranking_ids[order],
    )


def _dense_index(values: IntArray) -> tuple[IntArray, IntArray]:
    """The distinct values, sorted, and the index of each value among them."""
    distinct = _distinct(values)
    return distinct, _IdLookup(distinct)(values)


def _distinct(values: IntArray) -> IntArray:
    ordered = np.sort(values.astype(np.int64))
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


class _IdLookup:
    """Where each id stands in a list of distinct ids (-1 if absent).

    A direct table when the ids are dense enough (imports take consecutive ids), else a
    binary search.
    """

    def __init__(self, ids: IntArray) -> None:
        self.low = int(ids.min()) if ids.size else 0
        span = int(ids.max()) - self.low + 1 if ids.size else 0
        self.table: IntArray | None = None
        if span <= 4 * ids.size + 1024:
            self.table = np.full(span, -1, dtype=np.int64)
            self.table[ids - self.low] = np.arange(ids.size)
        else:
            self.order = np.argsort(ids)
            self.sorted = ids[self.order]

    def __call__(self, values: IntArray) -> IntArray:
        if self.table is not None:
            offset = values - self.low
            inside = (offset >= 0) & (offset < len(self.table))
            return np.where(inside, self.table[np.where(inside, offset, 0)], -1)
        if self.sorted.size == 0:
            return np.full(len(values), -1, dtype=np.int64)
        index = np.minimum(np.searchsorted(self.sorted, values), self.sorted.size - 1)
        return np.where(self.sorted[index] == values, self.order[index], -1)


def _padded(rows: list[list[int]], fill: int, dtype: Any) -> npt.NDArray[Any]:
    """Lists of different lengths as one matrix, padded with ``fill``."""
    width = max((len(row) for row in rows), default=0)
    matrix = np.full((len(rows), width), fill, dtype=dtype)
    for index, row in enumerate(rows):
        matrix[index, : len(row)] = row
    return matrix


def _stacked(parts: list[npt.NDArray[Any]], fill: int, dtype: Any) -> npt.NDArray[Any]:
    """Matrices of different widths stacked row-wise, padded with ``fill``."""
    width = max((part.shape[1] for part in parts), default=0)
    rows = sum(len(part) for part in parts)
    matrix = np.full((rows, width), fill, dtype=dtype)
    start = 0
    for part in parts:
        matrix[start : start + len(part), : part.shape[1]] = part
        start += len(part)
    return matrix


# Rankings per block when the arrays are assembled.
ASSEMBLE_BLOCK = 200_000


# The ORM path (SQLite, the embedded default) -------------------------------------------------


def _raw_rankings_orm(
    *, project: Project, up_to_id: int | None, excluded: list[int]
) -> _RawRankings:
    scalars: dict[str, array] = {
        name: array("q") for name in ("ranking_ids", "prompt_ids", "rater_ids", "is_repeat")
    }
    seconds = array("d")
    group_ids: list[list[int]] = []
    group_levels: list[list[int]] = []
    shown_ids: list[list[int]] = []
    rankings = (
        _rankings_of_counted_raters(project=project, up_to_id=up_to_id, excluded=excluded)
        .order_by("id")
        .values_list(
            "id", "prompt_id", "rater_id", "is_repeat", "seconds", "groups",
            "assignment__shown_order",
        )
        .iterator(chunk_size=BATCH_SIZE)
    )  # fmt: skip
    for ranking_id, prompt_id, rater_id, repeat, spent, groups, shown in rankings:
        scalars["ranking_ids"].append(ranking_id)
        scalars["prompt_ids"].append(prompt_id)
        scalars["rater_ids"].append(rater_id)
        scalars["is_repeat"].append(bool(repeat))
        seconds.append(float("nan") if spent is None else spent)
        group_ids.append([int(item) for group in groups for item in group])
        group_levels.append([level for level, group in enumerate(groups, 1) for _ in group])
        shown_ids.append([int(item) for item in shown or []])
    responses: dict[str, array] = {
        name: array("q")
        for name in ("response_ids", "response_prompts", "response_positions", "response_lengths")
    }
    rows = (
        Response.objects.filter(prompt__project=project)
        .annotate(length=Length("text"))
        .values_list("id", "prompt_id", "position", "length")
        .iterator(chunk_size=BATCH_SIZE)
    )
    for response_id, prompt_id, position, length in rows:
        responses["response_ids"].append(response_id)
        responses["response_prompts"].append(prompt_id)
        responses["response_positions"].append(position)
        responses["response_lengths"].append(length or 0)
    arrays = {name: np.frombuffer(values, dtype=np.int64) for name, values in scalars.items()}
    return _RawRankings(
        ranking_ids=arrays["ranking_ids"],
        prompt_ids=arrays["prompt_ids"],
        rater_ids=arrays["rater_ids"],
        is_repeat=arrays["is_repeat"].astype(bool),
        seconds=np.frombuffer(seconds, dtype=np.float64),
        group_ids=_padded(group_ids, -1, np.int64),
        group_levels=_padded(group_levels, 0, np.int8),
        shown_ids=_padded(shown_ids, -1, np.int64).__getitem__,
        **{name: np.frombuffer(values, dtype=np.int64) for name, values in responses.items()},
    )


# The PostgreSQL path -----------------------------------------------------------------------------
#
# Each query covers one id range and returns at most two values: the fixed-width columns of
# its rows as one bytea of big-endian binary records (``int8send`` ...), read with
# ``np.frombuffer`` without parsing, and the JSON columns as one text, a line per row in the
# same order (both aggregates see the same rows one after the other), parsed with numpy.

# Ids per query: one range is a few MB of records and text.
ID_RANGE = 100_000

_RANKINGS_SQL = """
    SELECT string_agg(int8send(r.id) || int8send(r.prompt_id) || int8send(r.rater_id)
                      || int8send(r.assignment_id) || float8send(coalesce(r.seconds, 'NaN'))
                      || boolsend(r.is_repeat), ''::bytea),
           convert_to(string_agg(r.groups::text, E'\\n'), 'UTF8')
    FROM rankings_ranking r
    WHERE r.project_id = %s AND r.id > %s AND r.id <= %s
      AND NOT (r.rater_id = ANY(%s::bigint[]))
"""
_RANKING_RECORD = np.dtype(
    [("id", ">i8"), ("prompt", ">i8"), ("rater", ">i8"), ("assignment", ">i8"),
     ("seconds", ">f8"), ("repeat", "u1")]
)  # fmt: skip
_SHOWN_ORDERS_SQL = """
    SELECT string_agg(int8send(a.id), ''::bytea),
           convert_to(string_agg(a.shown_order::text, E'\\n'), 'UTF8')
    FROM labeling_assignment a
    WHERE a.project_id = %s AND a.id > %s AND a.id <= %s
"""
_RESPONSES_SQL = """
    SELECT string_agg(int8send(r.id) || int8send(r.prompt_id) || int2send(r.position::int2)
                      || int4send(char_length(r.text)), ''::bytea),
           NULL
    FROM labeling_response r
    WHERE r.prompt_id > %s AND r.prompt_id <= %s
"""
_RESPONSE_RECORD = np.dtype(
    [("id", ">i8"), ("prompt", ">i8"), ("position", ">i2"), ("length", ">i4")]
)

Parts = dict[str, npt.NDArray[Any]]


def _raw_rankings_postgresql(
    *, project: Project, up_to_id: int | None, excluded: list[int]
) -> _RawRankings:
    """Rankings, shown orders and responses, read side by side when that is safe.

    Three query streams that do not depend on each other. Outside a transaction each runs
    on its own connection in a thread (the database works on them in parallel, and numpy
    parses one while another waits); inside one (tests, callers holding a transaction)
    other connections could not see its rows, so they run one after the other.
    """
    fetches: dict[str, Callable[[], Parts]] = {
        "rankings": partial(_fetch_rankings, project.pk, up_to_id, excluded),
        "shown": partial(_fetch_shown_orders, project.pk),
        "responses": partial(_fetch_responses, project.pk),
    }
    if connection.in_atomic_block:
        parts = {name: fetch() for name, fetch in fetches.items()}
    else:
        with ThreadPoolExecutor(max_workers=len(fetches)) as pool:
            futures = {
                name: pool.submit(_on_own_connection, fetch) for name, fetch in fetches.items()
            }
            parts = {name: future.result() for name, future in futures.items()}
    rankings, shown = parts["rankings"], parts["shown"]
    # Shown orders of the rankings' assignments, matched back by assignment id.
    assignment = _IdLookup(shown["assignment_ids"])(rankings.pop("assignment_ids"))
    shown_matrix = shown["shown_ids"]

    def shown_ids(rows: IntArray) -> IntArray:
        found = assignment[rows]
        if shown_matrix.size == 0:
            return np.full((len(rows), 0), -1, dtype=np.int64)
        return np.where((found >= 0)[:, np.newaxis], shown_matrix[np.maximum(found, 0)], -1)

    return _RawRankings(**rankings, shown_ids=shown_ids, **parts["responses"])


def _on_own_connection(fetch: Callable[[], Parts]) -> Parts:
    try:
        return fetch()
    finally:
        connection.close()  # this thread's own connection


def _fetch_rankings(project_id: int, up_to_id: int | None, excluded: list[int]) -> Parts:
    limit = up_to_id if up_to_id is not None else np.iinfo(np.int64).max
    bounds = Ranking.objects.filter(project_id=project_id, id__lte=limit).aggregate(
        low=Min("id"), high=Max("id")
    )
    records_parts, ids_parts, levels_parts = [], [], []
    ranges = _ranges(bounds["low"], bounds["high"])
    for records, numbers in _query_ranges(
        _RANKINGS_SQL, ranges, _RANKING_RECORD, [project_id], [excluded]
    ):
        records_parts.append(records)
        ids_parts.append(numbers.matrix(numbers.values, -1, np.int64))
        levels_parts.append(numbers.matrix(numbers.group_in_line + 1, 0, np.int8))
    records = np.concatenate([np.zeros(0, dtype=_RANKING_RECORD), *records_parts])
    return {
        "ranking_ids": records["id"].astype(np.int64),
        "prompt_ids": records["prompt"].astype(np.int64),
        "rater_ids": records["rater"].astype(np.int64),
        "assignment_ids": records["assignment"].astype(np.int64),
        "seconds": records["seconds"].astype(np.float64),
        "is_repeat": records["repeat"].astype(bool),
        "group_ids": _stacked(ids_parts, -1, np.int64),
        "group_levels": _stacked(levels_parts, 0, np.int8),
    }


def _fetch_shown_orders(project_id: int) -> Parts:
    """Every assignment of the project: its id and its response ids in shown order."""
    bounds = Assignment.objects.filter(project_id=project_id).aggregate(
        low=Min("id"), high=Max("id")
    )
    ids_parts, shown_parts = [], []
    ranges = _ranges(bounds["low"], bounds["high"])
    for records, numbers in _query_ranges(
        _SHOWN_ORDERS_SQL, ranges, np.dtype(">i8"), [project_id], []
    ):
        ids_parts.append(records.astype(np.int64))
        shown_parts.append(numbers.matrix(numbers.values, -1, np.int64))
    return {
        "assignment_ids": _concat(ids_parts),
        "shown_ids": _stacked(shown_parts, -1, np.int64),
    }


def _fetch_responses(project_id: int) -> Parts:
    """Id, prompt, position and length in characters of every response of the project."""
    bounds = Prompt.objects.filter(project_id=project_id).aggregate(low=Min("id"), high=Max("id"))
    parts = []
    # By prompt id range only (an index range scan); responses of other projects' prompts
    # in the range are dropped when the arrays are assembled.
    ranges = _ranges(bounds["low"], bounds["high"])
    for records, _ in _query_ranges(_RESPONSES_SQL, ranges, _RESPONSE_RECORD, [], []):
        parts.append(records)
    records = np.concatenate([np.zeros(0, dtype=_RESPONSE_RECORD), *parts])
    return {
        "response_ids": records["id"].astype(np.int64),
        "response_prompts": records["prompt"].astype(np.int64),
        "response_positions": records["position"].astype(np.int64),
        "response_lengths": records["length"].astype(np.int64),
    }


def _concat(parts: list[npt.NDArray[Any]]) -> IntArray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _ranges(low: int | None, high: int | None) -> list[tuple[int, int]]:
    """Half-open id ranges (start, stop] of ``ID_RANGE`` covering low..high."""
    if low is None or high is None:
        return []
    return [(start, min(start + ID_RANGE, high)) for start in range(low - 1, high, ID_RANGE)]


def _query_ranges(
    sql: str,
    ranges: list[tuple[int, int]],
    record: np.dtype[Any],
    before: list[Any],
    after: list[Any],
) -> Iterator[tuple[npt.NDArray[Any], _JsonNumbers]]:
    """Run ``sql`` (parameters: ``before``, the range's start and stop, ``after``) per range;
    yield its binary records and the numbers of its JSON text.

    A plain psycopg cursor on Django's connection (same transaction) so the results can come
    back in binary: the bytea arrives as raw bytes, with no hex to decode.
    """
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        for start, stop in ranges:
            cursor.execute(sql, [*before, start, stop, *after], binary=True)
            row = cursor.fetchone()
            if row is None or row[0] is None:
                continue
            records = np.frombuffer(row[0], dtype=record)
            numbers = _json_numbers(row[1] if row[1] is not None else b"")
            if row[1] is not None and numbers.n_lines != len(records):
                raise RuntimeError("records and JSON lines of a range do not match")
            yield records, numbers


@dataclass(frozen=True)
class _JsonNumbers:
    """Every number of newline-separated JSON arrays, with where it stands.

    ``line`` is the row; ``index_in_line`` counts the numbers before it on its line;
    ``group_in_line`` counts the inner arrays closed before it on its line, which for tie
    groups ``[[12], [11, 13]]`` is the group's index (0 = best).
    """

    values: IntArray
    line: IntArray
    index_in_line: IntArray
    group_in_line: IntArray
    n_lines: int

    def matrix(self, values: npt.NDArray[Any], fill: int, dtype: Any) -> npt.NDArray[Any]:
        """``(n_lines, most numbers on a line)``: per line, ``values`` of its numbers in order."""
        width = int(self.index_in_line.max()) + 1 if self.values.size else 0
        matrix = np.full((self.n_lines, width), fill, dtype=dtype)
        matrix[self.line, self.index_in_line] = values
        return matrix


def _json_numbers(text: bytes) -> _JsonNumbers:
    """Parse every non-negative integer in the text at once, with numpy, keeping its place.

    Only one-byte-per-byte arrays span the whole text; the rest is per number or per line.
    """
    data = np.frombuffer(text, dtype=np.uint8)
    digit = ((data - np.uint8(ord("0"))) < 10).view(np.int8)  # wraps below "0"
    edges = np.diff(digit, prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    del digit, edges
    values = np.zeros(len(starts), dtype=np.int64)
    scale = 1
    for offset in range(int((ends - starts).max()) if starts.size else 0):
        position = ends - 1 - offset
        inside = position >= starts
        digits = data[np.where(inside, position, starts)].astype(np.int64) - ord("0")
        values += np.where(inside, digits, 0) * scale
        scale *= 10
    line_starts = np.concatenate([[0], np.flatnonzero(data == ord("\n")) + 1])
    n_lines = len(line_starts) if text else 0
    line_starts = line_starts[:n_lines]
    first_number = np.searchsorted(starts, line_starts)
    line = np.repeat(np.arange(n_lines), np.diff(np.append(first_number, len(starts))))
    # A number right after "]" (or '"]' for ids written as strings) opens a new group.
    after = np.minimum(ends, len(data) - 1)
    after = np.where(data[after] == ord('"'), np.minimum(after + 1, len(data) - 1), after)
    closes = data[after] == ord("]")
    new_group = np.zeros(len(starts), dtype=np.int64)
    new_group[1:] = closes[:-1]
    groups_before = np.cumsum(new_group)
    first_of_line = first_number[line]
    return _JsonNumbers(
        values=values,
        line=line,
        index_in_line=np.arange(len(starts)) - first_of_line,
        group_in_line=groups_before - groups_before[first_of_line],
        n_lines=n_lines,
    )


def latest_ranking_id(*, project: Project) -> int:
    last = Ranking.objects.filter(project=project).order_by("-id").values_list("id", flat=True)
    return last.first() or 0


# Agreement runs ---------------------------------------------------------------------------


def agreement_history(*, project: Project) -> list[AgreementRun]:
    """Finished runs, newest first, at most ``HISTORY_LENGTH``."""
    return list(
        AgreementRun.objects.filter(project=project, status=RunStatus.DONE).order_by("-id")[
            :HISTORY_LENGTH
        ]
    )


def agreement_run_newest(*, project: Project) -> AgreementRun | None:
    """The most recently requested run, whatever its status (pending, failed or done)."""
    return AgreementRun.objects.filter(project=project).order_by("-id").first()


def live_run_filter(*, cutoff: datetime) -> Q:
    """Runs a worker may still finish: queued or started at or after the cutoff."""
    return Q(status=RunStatus.QUEUED, created_at__gte=cutoff) | Q(
        status=RunStatus.RUNNING, started_at__gte=cutoff
    )


def abandoned_run_filter(*, cutoff: datetime) -> Q:
    """Runs queued or started before the cutoff that never finished (a lost message or worker)."""
    return Q(status=RunStatus.QUEUED, created_at__lt=cutoff) | Q(
        status=RunStatus.RUNNING, started_at__lt=cutoff
    )


def agreement_run_pending(*, project: Project, cutoff: datetime) -> AgreementRun | None:
    """The newest run still queued or running that a worker may yet finish."""
    return (
        AgreementRun.objects.filter(live_run_filter(cutoff=cutoff), project=project)
        .order_by("-id")
        .first()
    )


def projects_with_unseen_rankings(*, cutoff: datetime) -> QuerySet[Project]:
    """Projects whose newest ranking is newer than every finished run has seen.

    Projects with a live run (see ``live_run_filter``) are left out: that run will see the
    new rankings.
    """
    newest_ranking = Ranking.objects.filter(project=OuterRef("pk")).order_by("-id").values("id")
    last_seen = (
        AgreementRun.objects.filter(project=OuterRef("pk"), status=RunStatus.DONE)
        .values("project")
        .annotate(seen=Max("last_ranking_id"))
        .values("seen")
    )
    pending = AgreementRun.objects.filter(live_run_filter(cutoff=cutoff), project=OuterRef("pk"))
    return (
        Project.objects.annotate(
            newest_ranking_id=Subquery(newest_ranking[:1]),
            last_seen_ranking_id=Coalesce(Subquery(last_seen), 0),
        )
        .filter(newest_ranking_id__gt=F("last_seen_ranking_id"))
        .exclude(Exists(pending))
        .order_by("id")
    )


def rater_scores(*, run: AgreementRun) -> list[RaterScore]:
    """A run's per-rater rows with their usernames, lowest agreement first (None last)."""
    return list(
        RaterScore.objects.filter(run=run)
        .select_related("rater")
        .order_by(F("agreement").asc(nulls_last=True), "rater__username")
    )
