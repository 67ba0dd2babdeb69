"""The PostgreSQL reader: a project's rankings as a few large binary records per id range,
read with numpy, so a million rankings never become a million Python objects.

Each query covers one id range and returns at most two values, both bytea: the fixed-width
columns of its rows as big-endian binary records (``int8send`` ...), and its rows' lists
(tie groups, shown orders) one after the other, each row's from the generated binary column
PostgreSQL keeps beside the JSON (``ranklab_tie_groups_record``, ``ranklab_ids_record``:
rankings and labeling migrations 0014), its length in the row's record. Both aggregates see
the same rows in the same order; ``np.frombuffer`` reads them without parsing.
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
from django.db import connections, transaction
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
                      || boolsend(r.is_repeat)
                      || int2send(coalesce(octet_length(r.groups_record) / 10, 0)::int2),
                      ''::bytea),
           string_agg(r.groups_record, ''::bytea)
    FROM rankings_ranking r
    WHERE r.project_id = %s AND r.id > %s AND r.id <= %s
      AND NOT (r.rater_id = ANY(%s::bigint[]))
"""
# One part of a run: its prompts' rankings, by prompt id range (the prompt index).
_PART_RANKINGS_SQL = """
    SELECT string_agg(int8send(r.id) || int8send(r.prompt_id) || int8send(r.rater_id)
                      || int8send(r.assignment_id) || float8send(coalesce(r.seconds, 'NaN'))
                      || boolsend(r.is_repeat)
                      || int2send(coalesce(octet_length(r.groups_record) / 10, 0)::int2),
                      ''::bytea),
           string_agg(r.groups_record, ''::bytea)
    FROM rankings_ranking r
    WHERE r.project_id = %s AND r.prompt_id > %s AND r.prompt_id <= %s AND r.id <= %s
      AND NOT (r.rater_id = ANY(%s::bigint[]))
"""
# Prompt ids per query of a part: about three rankings each.
PROMPT_ID_RANGE = 30_000
_RANKING_RECORD = np.dtype(
    [("id", ">i8"), ("prompt", ">i8"), ("rater", ">i8"), ("assignment", ">i8"),
     ("seconds", ">f8"), ("repeat", "u1"), ("entries", ">i2")]
)  # fmt: skip
# One response of a ranking's groups, best first: its id and its group's level (1 = best).
_GROUP_ENTRY = np.dtype([("id", ">i8"), ("level", ">i2")])
_SHOWN_ORDERS_SQL = """
    SELECT string_agg(int8send(a.id)
                      || int2send(coalesce(octet_length(a.shown_record) / 8, 0)::int2),
                      ''::bytea),
           string_agg(a.shown_record, ''::bytea)
    FROM labeling_assignment a
    WHERE a.project_id = %s AND a.id > %s AND a.id <= %s
"""
_PART_SHOWN_ORDERS_SQL = """
    SELECT string_agg(int8send(a.id)
                      || int2send(coalesce(octet_length(a.shown_record) / 8, 0)::int2),
                      ''::bytea),
           string_agg(a.shown_record, ''::bytea)
    FROM labeling_assignment a
    WHERE a.project_id = %s AND a.prompt_id > %s AND a.prompt_id <= %s
"""
# Every column is in the unique (prompt, position) index, which carries id and
# text_length (labeling migration 0013): an index-only scan, never the texts.
_SHOWN_RECORD = np.dtype([("id", ">i8"), ("entries", ">i2")])
_SHOWN_ENTRY = np.dtype(">i8")
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


_STREAMS = ("rankings", "shown", "responses")


class Readers:
    """The threads ``read_rankings`` reads its query streams on, one per stream, each with
    its own connection, kept from one read to the next until ``close``: a run reads 80 and
    more parts, and a connection opened and closed per stream and part cost ~9 ms of the
    machine's CPU each (the server's new process and its catalog caches included)."""

    def __init__(self) -> None:
        self.threads = {
            name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"agreement-read-{name}")
            for name in _STREAMS
        }

    def read(self, fetches: dict[str, Callable[[], Parts]]) -> dict[str, Parts]:
        """Each stream's fetch on its thread, in a transaction on its connection, in a copy
        of the caller's context (reads follow the caller's routing)."""
        futures = {
            name: self.threads[name].submit(contextvars.copy_context().run, _in_transaction, fetch)
            for name, fetch in fetches.items()
        }
        return {name: future.result() for name, future in futures.items()}

    def close(self) -> None:
        """Close each thread's connections (whichever database its reads were routed to),
        then the threads."""
        for thread in self.threads.values():
            thread.submit(connections.close_all).result()
            thread.shutdown()


def read_rankings(
    *,
    project: Project,
    up_to_id: int | None,
    excluded: list[int],
    prompts: PromptRange | None = None,
    readers: Readers | None = None,
) -> RawRankings:
    """Rankings, shown orders and responses, read side by side when that is safe; only
    those of the prompts in the range, given one (one part of a run).

    Three query streams that do not depend on each other. Outside a transaction each runs
    on its own connection in a thread (the database works on them in parallel, and numpy
    parses one while another waits); inside one (tests, callers holding a transaction)
    other connections could not see its rows, so they run one after the other. Every query
    goes where the router sends reads of rankings (the read replica inside
    ``core.db.replica_reads()``); the threads run in a copy of the caller's context, so
    they follow the same routing. ``readers`` keeps the threads and their connections for
    the next read (a run's parts); without it they are opened for this read and closed.
    """
    fetches: dict[str, Callable[[], Parts]] = {
        "rankings": partial(_fetch_rankings, project.pk, up_to_id, excluded, prompts),
        "shown": partial(_fetch_shown_orders, project.pk, prompts),
        "responses": partial(_fetch_responses, project.pk, prompts),
    }
    if db.read_connection(Ranking).in_atomic_block:
        parts = {name: fetch() for name, fetch in fetches.items()}
    elif readers is not None:
        parts = readers.read(fetches)
    else:
        readers = Readers()
        try:
            parts = readers.read(fetches)
        finally:
            readers.close()
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


def _in_transaction(fetch: Callable[[], Parts]) -> Parts:
    connection = db.read_connection(Ranking)  # this thread's own (``Readers``)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        # These scans are costed above the JIT threshold, but compiling them takes longer
        # than it saves (10-50% of each query's time on PostgreSQL 15). SET LOCAL: the
        # setting ends with the transaction, so a pooled server connection keeps none.
        cursor.execute("SET LOCAL jit = off")
        return fetch()


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
    for records, lists in queries:
        groups = _lists(records["entries"], lists, _GROUP_ENTRY)
        records_parts.append(records)
        ids_parts.append(groups.matrix(groups.entries["id"], -1, np.int64))
        levels_parts.append(groups.matrix(groups.entries["level"], 0, np.int8))
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
    for records, lists in _query_ranges(sql, ranges, _SHOWN_RECORD, [project_id], []):
        shown = _lists(records["entries"], lists, _SHOWN_ENTRY)
        ids_parts.append(records["id"].astype(np.int64))
        shown_parts.append(shown.matrix(shown.entries, -1, np.int64))
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
) -> Iterator[tuple[npt.NDArray[Any], bytes]]:
    """Run ``sql`` (parameters: ``before``, the range's start and stop, ``after``) per range;
    yield its binary records and its rows' lists as bytes (``_lists`` splits them).

    A plain psycopg cursor on Django's connection for reading rankings (same transaction)
    so the results come back in binary: a bytea arrives as raw bytes, with no hex to decode.
    """
    reading = db.read_connection(Ranking)
    reading.ensure_connection()
    with psycopg.Cursor(reading.connection) as cursor:
        for start, stop in ranges:
            cursor.execute(sql, [*before, start, stop, *after], binary=True)
            row = cursor.fetchone()
            if row is None or row[0] is None:
                continue
            yield np.frombuffer(row[0], dtype=record), row[1] or b""


@dataclass(frozen=True)
class _Lists:
    """Rows' lists of fixed-width entries, one row's after another: ``entries`` with, for
    each, its ``line`` (the row) and its ``index_in_line``."""

    entries: npt.NDArray[Any]
    line: IntArray
    index_in_line: IntArray
    n_lines: int

    def matrix(self, values: npt.NDArray[Any], fill: int, dtype: Any) -> npt.NDArray[Any]:
        """``(n_lines, longest list)``: per line, ``values`` of its entries in order."""
        width = int(self.index_in_line.max()) + 1 if self.entries.size else 0
        matrix = np.full((self.n_lines, width), fill, dtype=dtype)
        matrix[self.line, self.index_in_line] = values
        return matrix


def _lists(counts: npt.NDArray[Any], data: bytes, entry: np.dtype[Any]) -> _Lists:
    """Split ``data`` into rows of ``counts`` entries each (the ``entries`` field of each
    row's record)."""
    counts = counts.astype(np.int64)
    entries = np.frombuffer(data, dtype=entry)
    if int(counts.sum()) != len(entries):
        raise RuntimeError("the records' list lengths and the lists read do not match")
    line = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return _Lists(
        entries=entries,
        line=line,
        index_in_line=np.arange(len(entries)) - starts[line],
        n_lines=len(counts),
    )
