"""The PostgreSQL reader: a project's rankings as a few large binary records and JSON texts
per id range, parsed with numpy, so a million rankings never become a million Python objects.

Each query covers one id range and returns at most two values: the fixed-width columns of
its rows as one bytea of big-endian binary records (``int8send`` ...), read with
``np.frombuffer`` without parsing, and the JSON columns as one text, a line per row in the
same order (both aggregates see the same rows one after the other), parsed with numpy.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from django.db import transaction
from django.db.models import Max, Min

from core import db
from labeling.models import Assignment, Project, Prompt
from rankings.models import Ranking
from rankings.runs.raw import IdLookup, PromptRange, RawRankings, stacked
from rankings.stats.tables import IntArray

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
# One part of a run: its prompts' rankings, by prompt id range (the prompt index).
_PART_RANKINGS_SQL = """
    SELECT string_agg(int8send(r.id) || int8send(r.prompt_id) || int8send(r.rater_id)
                      || int8send(r.assignment_id) || float8send(coalesce(r.seconds, 'NaN'))
                      || boolsend(r.is_repeat), ''::bytea),
           convert_to(string_agg(r.groups::text, E'\\n'), 'UTF8')
    FROM rankings_ranking r
    WHERE r.project_id = %s AND r.prompt_id > %s AND r.prompt_id <= %s AND r.id <= %s
      AND NOT (r.rater_id = ANY(%s::bigint[]))
"""
# Prompt ids per query of a part: about three rankings each.
PROMPT_ID_RANGE = 30_000
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
_PART_SHOWN_ORDERS_SQL = """
    SELECT string_agg(int8send(a.id), ''::bytea),
           convert_to(string_agg(a.shown_order::text, E'\\n'), 'UTF8')
    FROM labeling_assignment a
    WHERE a.project_id = %s AND a.prompt_id > %s AND a.prompt_id <= %s
"""
# Every column is in the unique (prompt, position) index, which carries id and
# text_length (labeling migration 0013): an index-only scan, never the texts.
_RESPONSES_SQL = """
    SELECT string_agg(int8send(r.id) || int8send(r.prompt_id) || int2send(r.position::int2)
                      || int4send(r.text_length), ''::bytea),
           NULL
    FROM labeling_response r
    WHERE r.prompt_id > %s AND r.prompt_id <= %s
"""
_RESPONSE_RECORD = np.dtype(
    [("id", ">i8"), ("prompt", ">i8"), ("position", ">i2"), ("length", ">i4")]
)

Parts = dict[str, npt.NDArray[Any]]


def read_rankings(
    *,
    project: Project,
    up_to_id: int | None,
    excluded: list[int],
    prompts: PromptRange | None = None,
) -> RawRankings:
    """Rankings, shown orders and responses, read side by side when that is safe; only
    those of the prompts in the range, given one (one part of a run).

    Three query streams that do not depend on each other. Outside a transaction each runs
    on its own connection in a thread (the database works on them in parallel, and numpy
    parses one while another waits); inside one (tests, callers holding a transaction)
    other connections could not see its rows, so they run one after the other. Every query
    goes where the router sends reads of rankings (the read replica inside
    ``core.db.replica_reads()``); the threads run in a copy of the caller's context, so
    they follow the same routing.
    """
    fetches: dict[str, Callable[[], Parts]] = {
        "rankings": partial(_fetch_rankings, project.pk, up_to_id, excluded, prompts),
        "shown": partial(_fetch_shown_orders, project.pk, prompts),
        "responses": partial(_fetch_responses, project.pk, prompts),
    }
    if db.read_connection(Ranking).in_atomic_block:
        parts = {name: fetch() for name, fetch in fetches.items()}
    else:
        with ThreadPoolExecutor(max_workers=len(fetches)) as pool:
            futures = {
                name: pool.submit(contextvars.copy_context().run, _on_own_connection, fetch)
                for name, fetch in fetches.items()
            }
            parts = {name: future.result() for name, future in futures.items()}
    rankings, shown = parts["rankings"], parts["shown"]
    # Shown orders of the rankings' assignments, matched back by assignment id.
    assignment = IdLookup(shown["assignment_ids"])(rankings.pop("assignment_ids"))
    shown_matrix = shown["shown_ids"]

    def shown_ids(rows: IntArray) -> IntArray:
        found = assignment[rows]
        if shown_matrix.size == 0:
            return np.full((len(rows), 0), -1, dtype=np.int64)
        return np.where((found >= 0)[:, np.newaxis], shown_matrix[np.maximum(found, 0)], -1)

    return RawRankings(**rankings, shown_ids=shown_ids, **parts["responses"])


def _on_own_connection(fetch: Callable[[], Parts]) -> Parts:
    connection = db.read_connection(Ranking)  # this thread's own, closed when it is done
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            # These scans are costed above the JIT threshold, but compiling them takes longer
            # than it saves (10-50% of each query's time on PostgreSQL 15). SET LOCAL: the
            # setting ends with the transaction, so a pooled server connection keeps none.
            cursor.execute("SET LOCAL jit = off")
            return fetch()
    finally:
        connection.close()


# The distinct raters of a project's rankings up to an id, one probe of the (project, rater,
# id) index per rater (a loose index scan): a run's scope, where DISTINCT over every ranking
# read 10M rows (4.7 s).
_RATERS_SQL = """
WITH RECURSIVE raters(rater_id) AS (
    SELECT min(rater_id) FROM rankings_ranking WHERE project_id = %(project)s AND id <= %(up_to)s
  UNION ALL
    SELECT (SELECT min(r.rater_id) FROM rankings_ranking r
            WHERE r.project_id = %(project)s AND r.id <= %(up_to)s
              AND r.rater_id > raters.rater_id)
    FROM raters WHERE raters.rater_id IS NOT NULL
)
SELECT rater_id FROM raters WHERE rater_id IS NOT NULL ORDER BY rater_id
"""


def counted_rater_ids(*, project_id: int, up_to_id: int, excluded: list[int]) -> list[int]:
    """The raters with a ranking of the project up to ``up_to_id``, sorted, less the
    excluded (where the router sends reads of rankings)."""
    with db.read_connection(Ranking).cursor() as cursor:
        cursor.execute(_RATERS_SQL, {"project": project_id, "up_to": up_to_id})
        left_out = set(excluded)
        return [rater for (rater,) in cursor.fetchall() if rater not in left_out]


def _fetch_rankings(
    project_id: int, up_to_id: int | None, excluded: list[int], prompts: PromptRange | None
) -> Parts:
    limit = up_to_id if up_to_id is not None else np.iinfo(np.int64).max
    if prompts is None:
        bounds = Ranking.objects.filter(project_id=project_id, id__lte=limit).aggregate(
            low=Min("id"), high=Max("id")
        )
        queries = _query_ranges(
            _RANKINGS_SQL,
            _ranges(bounds["low"], bounds["high"]),
            _RANKING_RECORD,
            [project_id],
            [excluded],
        )
    else:
        queries = _query_ranges(
            _PART_RANKINGS_SQL,
            _prompt_ranges(prompts),
            _RANKING_RECORD,
            [project_id],
            [limit, excluded],
        )
    records_parts, ids_parts, levels_parts = [], [], []
    for records, numbers in queries:
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
        "group_ids": stacked(ids_parts, -1, np.int64),
        "group_levels": stacked(levels_parts, 0, np.int8),
    }


def _fetch_shown_orders(project_id: int, prompts: PromptRange | None) -> Parts:
    """Every assignment of the project (of the range's prompts, given one): its id and its
    response ids in shown order."""
    if prompts is None:
        bounds = Assignment.objects.filter(project_id=project_id).aggregate(
            low=Min("id"), high=Max("id")
        )
        sql, ranges = _SHOWN_ORDERS_SQL, _ranges(bounds["low"], bounds["high"])
    else:
        sql, ranges = _PART_SHOWN_ORDERS_SQL, _prompt_ranges(prompts)
    ids_parts, shown_parts = [], []
    for records, numbers in _query_ranges(sql, ranges, np.dtype(">i8"), [project_id], []):
        ids_parts.append(records.astype(np.int64))
        shown_parts.append(numbers.matrix(numbers.values, -1, np.int64))
    return {
        "assignment_ids": _concat(ids_parts),
        "shown_ids": stacked(shown_parts, -1, np.int64),
    }


def _fetch_responses(project_id: int, prompts: PromptRange | None) -> Parts:
    """Id, prompt, position and length in characters of every response of the project (of
    the range's prompts, given one)."""
    prompts_of = Prompt.objects.filter(project_id=project_id)
    if prompts is not None:
        prompts_of = prompts_of.filter(id__gt=prompts[0], id__lte=prompts[1])
    bounds = prompts_of.aggregate(low=Min("id"), high=Max("id"))
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


def _prompt_ranges(prompts: PromptRange) -> list[tuple[int, int]]:
    """Half-open prompt id ranges of ``PROMPT_ID_RANGE`` covering a part's range."""
    low, high = prompts
    return [
        (start, min(start + PROMPT_ID_RANGE, high)) for start in range(low, high, PROMPT_ID_RANGE)
    ]


def _query_ranges(
    sql: str,
    ranges: list[tuple[int, int]],
    record: np.dtype[Any],
    before: list[Any],
    after: list[Any],
) -> Iterator[tuple[npt.NDArray[Any], _JsonNumbers]]:
    """Run ``sql`` (parameters: ``before``, the range's start and stop, ``after``) per range;
    yield its binary records and the numbers of its JSON text.

    A plain psycopg cursor on Django's connection for reading rankings (same transaction)
    so the results can come back in binary: the bytea arrives as raw bytes, with no hex to
    decode.
    """
    reading = db.read_connection(Ranking)
    reading.ensure_connection()
    with psycopg.Cursor(reading.connection) as cursor:
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
