"""The prompt browser's search index, kept off the import's path (PostgreSQL).

Triggers on the prompt table (labeling migration 0010) keep a `PromptSearchText` row per
prompt with its current text; the trigram index covers only the rows marked `indexed`, so
writing a prompt never waits on the index. A `PromptSearchJob` (the one job lifecycle)
marks a project's rows indexed after its import commits, a batch per transaction; until
then the search reads those rows the slow way (rankings/prompts/search.py), so every prompt
is found at every moment, by its current text.

Each import queues a job for its project once it commits; a job that failed, or a worker
that died, leaves rows unindexed, and the sweep (`prompt_search_catch_up`, on every beat)
queues a job for them, as it does for prompts written outside an import;
`manage.py index_prompt_search` indexes them in-process. SQLite searches its prompts
directly: its search table stays empty and no job is made. A job or command that indexed
many prompts also refreshes the prompt table's planner statistics, off the import's path
(an ANALYZE inside the import's transaction was up to a tenth of a 10k-prompt request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import JSONField, QuerySet
from django.utils import timezone

from core import db, jobs
from core.jobs import JobStatus
from labeling.models import Prompt, PromptSearchJob, PromptSearchText

logger = logging.getLogger(__name__)

SEARCH_INDEX_TASK = "labeling.tasks.prompt_search_index"
ANALYZE_AFTER_ROWS = 1000
"""A job that indexed this many prompts follows an import (or a bulk write) big enough to
move the planner's statistics: it refreshes them."""
PROMPT_PLANNER_FIELDS = tuple(
    field.name for field in Prompt._meta.concrete_fields if not isinstance(field, JSONField)
)
SEARCH_INDEX_BATCH = 2000
"""Rows indexed per transaction: big enough for the index's bulk path, short enough that a
prompt edit waiting on a row of the batch waits well under a second."""

# Rows no other job holds; an edit's trigger waits on a held row and, once this commits,
# rewrites it with the new text and takes it out of the index again.
_INDEX_BATCH = """
WITH batch AS (
    SELECT prompt_id FROM labeling_promptsearchtext
    WHERE project_id = %s AND NOT indexed
    ORDER BY prompt_id LIMIT %s FOR UPDATE SKIP LOCKED
)
UPDATE labeling_promptsearchtext AS search SET indexed = true
FROM batch WHERE search.prompt_id = batch.prompt_id
"""


def unindexed_rows() -> QuerySet[PromptSearchText]:
    return PromptSearchText.objects.filter(indexed=False).order_by()


def search_index_in_use() -> bool:
    """Whether prompts are indexed for search here (PostgreSQL), or searched directly."""
    return db.is_postgresql()


def prompt_search_job_queue(*, project_id: int) -> PromptSearchJob | None:
    """Queue a job indexing the project's unindexed prompts, sent once the current
    transaction commits (an import's: its prompts are then visible to the job)."""
    if not search_index_in_use():
        return None
    job = PromptSearchJob.objects.create(project_id=project_id)
    jobs.job_enqueue(PromptSearchJob, job_id=job.pk, task_name=SEARCH_INDEX_TASK)
    return job


def prompt_search_index_batch(*, project_id: int, size: int) -> int:
    """Put up to `size` of the project's unindexed rows into the index, in one transaction;
    how many. Idempotent: an indexed row is not taken again."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_INDEX_BATCH, [project_id, size])
        return int(cursor.rowcount)


def prompt_search_index_project(
    *,
    project_id: int,
    size: int | None = None,
    keep_going: Callable[[int], bool] | None = None,
) -> int:
    """Index the project's unindexed rows, `size` (`SEARCH_INDEX_BATCH`) at a time, until
    none is left (or `keep_going(indexed)` answers False); how many were indexed."""
    size = size or SEARCH_INDEX_BATCH
    indexed = 0
    while True:
        taken = prompt_search_index_batch(project_id=project_id, size=size)
        indexed += taken
        if taken < size or (keep_going is not None and not keep_going(indexed)):
            return indexed


def prompt_search_index_run(*, job_id: int) -> dict[str, Any]:
    """Run a claimed search job; a job this worker cannot claim is skipped. A failure is
    recorded on the job (what it indexed stays; the sweep queues a job for the rest)."""
    if not jobs.job_claim_or_check_back(
        PromptSearchJob, job_id=job_id, task_name=SEARCH_INDEX_TASK
    ):
        return {"job_id": job_id, "status": "skipped"}
    job = PromptSearchJob.objects.get(pk=job_id)
    attempt = job.attempts

    def still_mine(indexed: int) -> bool:
        return jobs.job_heartbeat(
            PromptSearchJob, job_id=job_id, attempt=attempt, prompts_indexed=indexed
        )

    try:
        with jobs.job_beating(PromptSearchJob, job_id=job_id, attempt=attempt):
            indexed = prompt_search_index_project(project_id=job.project_id, keep_going=still_mine)
            prompt_statistics_refresh(indexed)
    except Exception as error:
        logger.exception("prompt search job %s failed", job_id)
        reason = jobs.describe_error(error)
        jobs.job_fail(PromptSearchJob, job_id=job_id, reason=reason, attempt=attempt)
        return {"job_id": job_id, "status": JobStatus.FAILED, "error": reason}
    jobs.job_finish(PromptSearchJob, job_id=job_id, attempt=attempt, prompts_indexed=indexed)
    return {"job_id": job_id, "status": JobStatus.DONE, "prompts_indexed": indexed}


def prompt_statistics_refresh(new_prompts: int) -> None:
    """ANALYZE the prompt table after many new prompts, so the queue and the browser plan on
    today's table. Only the plain columns they filter on: sampling the JSON documents would
    cost for nothing they need."""
    if new_prompts >= ANALYZE_AFTER_ROWS and db.is_postgresql():
        db.analyze_columns(Prompt, PROMPT_PLANNER_FIELDS)


def catch_up_after() -> timedelta:
    """Rows unindexed this long with no live job for their project were left behind (a
    failed job, a dead worker, a writer that queued none): the sweep queues a job."""
    return timedelta(seconds=settings.JOB_QUEUED_SECONDS)


def prompt_search_catch_up(*, now: datetime | None = None) -> int:
    """Sweep entry: queue a search job for every project with rows unindexed longer than
    `catch_up_after` and no live job; how many jobs were queued."""
    if not search_index_in_use():
        return 0
    now = now or timezone.now()
    behind = set(
        unindexed_rows()
        .filter(changed_at__lt=now - catch_up_after())
        .values_list("project_id", flat=True)
        .distinct()
    )
    served = set(
        PromptSearchJob.objects.filter(jobs.live_job_filter(now=now), project_id__in=behind)
        .order_by()
        .values_list("project_id", flat=True)
    )
    queued = 0
    for project_id in sorted(behind - served):
        with transaction.atomic():
            prompt_search_job_queue(project_id=project_id)
        queued += 1
    return queued


def prompt_search_index_pending(*, project_id: int | None = None) -> int:
    """Index every unindexed row (of one project, or all) in-process: the management
    command's catch-up, with no worker needed; how many were indexed."""
    rows = unindexed_rows()
    if project_id is not None:
        rows = rows.filter(project_id=project_id)
    indexed = 0
    for each_project in sorted(set(rows.values_list("project_id", flat=True).distinct())):
        indexed += prompt_search_index_project(project_id=each_project)
    prompt_statistics_refresh(indexed)
    return indexed
