"""The rater loop's statements, written out once.

Next-task and submit are the calls a crowd makes thousands of times an hour. Building and
compiling their querysets cost several times more CPU than PostgreSQL spends running them,
so the statements on that path are written here as SQL (the same on both databases, but
for PostgreSQL's row locks and its reading the responses with the scan) and their rows
become ordinary model instances (`core.rows.Columns`). The rules they encode are the
queue's: `OCCUPIED` is `leases.occupied_assignments` (a test holds the two equal), the scan
is `leases._lock_next_open_prompt`'s contract. Every statement is one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection

from core.rows import Columns, Statement, db_datetime, db_json
from labeling.models import Assignment, AssignmentStatus, Membership, Project, Prompt

LEASED = AssignmentStatus.LEASED.value
SUBMITTED = AssignmentStatus.SUBMITTED.value

OCCUPIED = (
    f"(a.status = '{SUBMITTED}' OR (a.status = '{LEASED}' "
    "AND (a.expires_at > %(now)s OR a.finished_at IS NOT NULL)))"
)
"""An assignment `a` holding an overlap slot at `now`: submitted, a live lease, or a task
reopened by an undo (see `leases.occupied_assignments`)."""

MEMBERSHIP = Columns(Membership, "m")
PROJECT = Columns(Project, "p")
PROMPT = Columns(Prompt, "q")
ASSIGNMENT = Columns(Assignment, "a")


# Next task -----------------------------------------------------------------------------------


@cache
def _membership_sql(vendor: str) -> str:
    return f"""
        SELECT {MEMBERSHIP.select(connection)}, {PROJECT.select(connection)},
            (SELECT a.id FROM labeling_assignment a
             WHERE a.project_id = m.project_id AND a.rater_id = m.user_id
               AND a.status = '{LEASED}' AND a.expires_at > %(now)s
             ORDER BY a.id LIMIT 1),
            EXISTS (SELECT 1 FROM labeling_assignment a
             WHERE a.project_id = m.project_id AND a.rater_id = m.user_id
               AND a.status = '{LEASED}' AND a.finished_at IS NOT NULL
               AND a.expires_at <= %(now)s)
        FROM labeling_membership m JOIN labeling_project p ON p.id = m.project_id
        WHERE m.project_id = %(project)s AND m.user_id = %(rater)s
        ORDER BY m.id LIMIT 1
    """


def membership_for_tasks(*, project_id: int, rater_id: int, now: datetime) -> Membership | None:
    """The rater's membership with its project, its live lease's id (`live_lease_id`, None
    when there is none) and whether a task they reopened has run out
    (`has_lapsed_reopened`)."""
    params = {"project": project_id, "rater": rater_id, "now": db_datetime(now, connection)}
    with connection.cursor() as cursor:
        cursor.execute(_membership_sql(connection.vendor), params)
        row = cursor.fetchone()
    if row is None:
        return None
    membership = MEMBERSHIP.build(row, 0, connection)
    project = PROJECT.build(row, len(MEMBERSHIP), connection)
    membership.project = project
    extra = len(MEMBERSHIP) + len(PROJECT)
    membership.live_lease_id = row[extra]  # type: ignore[attr-defined]
    membership.has_lapsed_reopened = bool(row[extra + 1])  # type: ignore[attr-defined]
    return membership


@cache
def _scan_sql(vendor: str, skipping: int, after: bool) -> str:
    theirs = "NOT a.is_repeat AND a.prompt_id = q.id AND a.rater_id + 0 = %(rater)s"
    responses = (
        """, (SELECT jsonb_agg(jsonb_build_object('id', r.id, 'position', r.position,
                'text', r.text) ORDER BY r.position)
             FROM labeling_response r WHERE r.prompt_id = q.id)"""
        if vendor == "postgresql"
        else ", NULL"
    )
    skip = ", ".join(f"%(skip{index})s" for index in range(skipping))
    not_skipped = f"AND q.id NOT IN ({skip})" if skipping else ""
    lock = "FOR NO KEY UPDATE OF q SKIP LOCKED" if vendor == "postgresql" else ""
    # Scalar subqueries, not EXISTS / NOT EXISTS: each candidate prompt is probed through
    # its own few assignments rather than joined with the rater's whole history, and the
    # rater is compared as `rater_id + 0`, which no index covers, so the probe goes through
    # the prompt's index whatever the planner's statistics say.
    sql = f"""
        SELECT {PROMPT.select(connection)},
            (SELECT a.id FROM labeling_assignment a
             WHERE {theirs} AND a.status = '{LEASED}' LIMIT 1)
            {responses}
        FROM labeling_prompt q
        WHERE q.project_id = %(project)s AND NOT q.is_complete AND NOT q.is_gold
          AND q.archived_at IS NULL AND q.n_responses >= %(min_responses)s
          {"AND q.id > %(after)s" if after else ""} {not_skipped}
          AND (SELECT a.id FROM labeling_assignment a
               WHERE {theirs} AND a.status <> '{LEASED}' LIMIT 1) IS NULL
          AND (SELECT count(*) FROM labeling_assignment a
               WHERE NOT a.is_repeat AND a.prompt_id = q.id AND {OCCUPIED})
              < %(overlap)s + q.extra_raters
        ORDER BY q.id LIMIT 1 {lock}
    """
    return sql


def lock_next_open_prompt(
    *,
    project: Project,
    rater_id: int,
    now: datetime,
    min_responses: int,
    skip: Sequence[int] = (),
    after: int = 0,
) -> Prompt | None:
    """Lock (SKIP LOCKED, PostgreSQL) the first prompt above `after` the rater may take: open,
    not gold, not archived, with its responses, a free overlap slot, not done by the rater.
    The prompt carries `own_lease_id` (the rater's earlier lease on it, run out) and, on
    PostgreSQL, `response_rows` (its responses, read by the same statement)."""
    params: dict[str, Any] = {
        "project": project.pk,
        "rater": rater_id,
        "now": db_datetime(now, connection),
        "min_responses": min_responses,
        "overlap": project.overlap,
        "after": after,
    }
    skipped = list(skip)
    params.update({f"skip{index}": pk for index, pk in enumerate(skipped)})
    with connection.cursor() as cursor:
        cursor.execute(_scan_sql(connection.vendor, len(skipped), after > 0), params)
        row = cursor.fetchone()
    if row is None:
        return None
    prompt = PROMPT.build(row, 0, connection)
    prompt.own_lease_id = row[len(PROMPT)]  # type: ignore[attr-defined]
    rows = row[len(PROMPT) + 1]
    if rows is not None:
        prompt.response_rows = db_json(rows)  # type: ignore[attr-defined]
    return prompt


@cache
def _insert_lease_sql(vendor: str, advance: bool) -> str:
    names, values = ASSIGNMENT.insert_lists(connection)
    insert = f"""
        INSERT INTO labeling_assignment ({names})
        SELECT {values}
        WHERE (SELECT count(*) FROM labeling_assignment a
               WHERE NOT a.is_repeat AND a.prompt_id = %(prompt_id)s
                 AND a.rater_id <> %(rater_id)s AND {OCCUPIED}) < %(cap)s
        RETURNING id, prompt_id
    """
    if not advance:
        return insert
    return f"""
        WITH lease AS ({insert}),
        frontier AS (
            UPDATE labeling_membership SET queue_frontier = lease.prompt_id FROM lease
            WHERE project_id = %(project_id)s AND user_id = %(rater_id)s
              AND queue_frontier < lease.prompt_id)
        SELECT id FROM lease
    """


def insert_lease_if_slot_free(*, lease: Assignment, cap: int, advance: bool) -> Assignment | None:
    """Insert the lease in one statement that first counts the prompt's slots taken by
    other raters, and with `advance` moves the rater's frontier up to the prompt
    (PostgreSQL). It starts after the prompt's row lock was taken, so its snapshot sees
    every lease committed before; it inserts nothing when `cap` slots are taken."""
    params: dict[str, Any] = ASSIGNMENT.insert_params(lease, connection)
    params.update(now=db_datetime(lease.leased_at, connection), cap=cap)
    with connection.cursor() as cursor:
        cursor.execute(_insert_lease_sql(connection.vendor, advance), params)
        row = cursor.fetchone()
    if row is None:
        return None
    lease.pk = row[0]
    lease._state.adding, lease._state.db = False, connection.alias
    return lease


# Finishing -----------------------------------------------------------------------------------


@cache
def _finish_sql(vendor: str) -> str:
    lock = "FOR UPDATE OF a" if vendor == "postgresql" else ""
    return f"""
        SELECT {ASSIGNMENT.select(connection)}, {PROJECT.select(connection)},
            {PROMPT.select(connection)},
            (SELECT m.status FROM labeling_membership m
             WHERE m.project_id = a.project_id AND m.user_id = %(rater)s LIMIT 1)
        FROM labeling_assignment a JOIN labeling_project p ON p.id = a.project_id
            JOIN labeling_prompt q ON q.id = a.prompt_id
        WHERE a.id = %(assignment)s AND a.rater_id = %(rater)s
        {lock}
    """


def assignment_lock_row(*, assignment_id: int, rater_id: int) -> Assignment | None:
    """The rater's assignment, row-locked (PostgreSQL), with its project and prompt and the
    rater's membership status (`rater_status`, None when they are no longer a member)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _finish_sql(connection.vendor), {"assignment": assignment_id, "rater": rater_id}
        )
        row = cursor.fetchone()
    if row is None:
        return None
    assignment = ASSIGNMENT.build(row, 0, connection)
    assignment.project = PROJECT.build(row, len(ASSIGNMENT), connection)
    assignment.prompt = PROMPT.build(row, len(ASSIGNMENT) + len(PROJECT), connection)
    status_at = len(ASSIGNMENT) + len(PROJECT) + len(PROMPT)
    assignment.rater_status = row[status_at]  # type: ignore[attr-defined]
    return assignment


def assignment_submitted(*, assignment_id: int, finished_at: datetime) -> Statement:
    """The statement marking the assignment submitted at `finished_at`."""
    return Statement(
        "UPDATE labeling_assignment SET status = %(status)s, finished_at = %(finished_at)s "
        "WHERE id = %(assignment)s",
        {
            "status": SUBMITTED,
            "finished_at": db_datetime(finished_at, connection),
            "assignment": assignment_id,
        },
    )


_PROMPT_COMPLETE_SQL = f"""
    UPDATE labeling_prompt SET is_complete = %(true)s
    WHERE id = %(prompt)s AND NOT is_complete
      AND (SELECT count(*) FROM labeling_assignment a
           WHERE a.prompt_id = %(prompt)s AND NOT a.is_repeat
             AND (a.status = '{SUBMITTED}' OR a.id = %(assignment)s))
          >= %(overlap)s + extra_raters
"""


def prompt_complete_if_full(*, prompt_id: int, overlap: int, assignment_id: int) -> Statement:
    """The statement marking the prompt complete when its submitted rankings, counting the
    assignment being submitted, reach its overlap (the project's plus its extra raters),
    counted by the database when it runs: before or with `assignment_submitted`."""
    return Statement(
        _PROMPT_COMPLETE_SQL,
        {"prompt": prompt_id, "overlap": overlap, "assignment": assignment_id, "true": True},
    )
