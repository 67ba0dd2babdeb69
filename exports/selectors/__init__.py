"""Reads for exports: prompts with their responses and counted rankings, in keyset batches;
the counts behind a row estimate; the export jobs a user or a project sees."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import Any

from django.db.models import BooleanField, Count, ExpressionWrapper, Max, Q, QuerySet

from core import db
from exports.models import ExportJob
from exports.selectors.filters import ExportFilters, export_filters, prompts_read, rankings_read
from exports.selectors.judged import (
    JudgeData,
    SourcedPrompt,
    judge_rater_key,
    judged_prompt_batches,
    judged_prompt_count,
    sourced_batches,
)
from exports.selectors.prefetch import prefetched
from exports.selectors.reading import (
    PromptRankings,
    batch_documents,
    decoded_batches,
    json_rows,
    keyset_batches,
    plain_rows,
)
from labeling.models import Project
from rankings.models import Ranking

__all__ = [
    "PROMPT_BATCH_SIZE",
    "ExportFilters",
    "ExportSize",
    "JudgeData",
    "PromptRankings",
    "SourcedPrompt",
    "export_filters",
    "export_jobs_for_user",
    "export_jobs_of_project",
    "export_size",
    "judge_rater_key",
    "judged_prompt_count",
    "newest_ranking_id",
    "prefetched",
    "prompt_batches",
    "sourced_prompt_batches",
]

PROMPT_BATCH_SIZE = 1000


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
    document. Incremental exports, which skip prompts, and every export on other databases
    (or with `portable`, which the tests use to hold the two paths to each other) read three
    queries per batch and skip the rankings and responses of the prompts an earlier export
    covered. With `prefetch` the next batch is read on a background thread while the caller
    works on this one (only outside a transaction: the thread's connection would not see
    the transaction's rows).
    """
    batch_size = batch_size or PROMPT_BATCH_SIZE
    fast = db.is_postgresql() and not portable
    skip = filters.skip_prompt_ids
    if fast and isinstance(skip, Sized) and len(skip) == 0:
        documents = batch_documents(project=project, filters=filters, batch_size=batch_size)
        if prefetch:
            documents = prefetched(documents)
        yield from decoded_batches(documents, project=project, filters=filters)
        return
    batches = keyset_batches(
        project=project,
        filters=filters,
        batch_size=batch_size,
        read_rows=json_rows if fast else plain_rows,
    )
    yield from prefetched(batches) if prefetch else batches


def sourced_prompt_batches(
    *,
    project: Project,
    filters: ExportFilters,
    source: str = "human",
    judge_endpoint: int | None = None,
    batch_size: int | None = None,
    prefetch: bool = False,
    portable: bool = False,
) -> Iterator[list[SourcedPrompt]]:
    """`prompt_batches` with each prompt's AI judge verdict beside its human rankings.

    `source` human reads the rankings only (exactly `prompt_batches`, no verdict); ai reads
    the prompts `judge_endpoint` judged (no rankings); both merges the two by prompt id, a
    prompt being in either or both. Either way prompts come in id order.
    """
    batch_size = batch_size or PROMPT_BATCH_SIZE
    human = None
    if source != "ai":
        human = prompt_batches(
            project=project,
            filters=filters,
            batch_size=batch_size,
            prefetch=prefetch,
            portable=portable,
        )
    if source == "human":
        assert human is not None
        try:
            for batch in human:
                yield [(prompt, rankings, None) for prompt, rankings in batch]
        finally:
            getattr(human, "close", lambda: None)()
        return
    if judge_endpoint is None:
        raise ValueError(f"source {source!r} needs a judge endpoint")
    judged = judged_prompt_batches(
        project=project, filters=filters, endpoint_id=judge_endpoint, batch_size=batch_size
    )
    batches = sourced_batches(human=human, judged=judged, batch_size=batch_size)
    try:
        yield from batches
    finally:
        batches.close()


@dataclass(frozen=True)
class ExportSize:
    rankings: int
    prompts: int
    responses_per_prompt: float


def export_size(*, project: Project, filters: ExportFilters) -> ExportSize:
    """Counts behind the row estimate, in two aggregate queries."""
    prompts = prompts_read(project=project, filters=filters)
    counted = (
        rankings_read(project=project, filters=filters)
        .filter(prompt__in=prompts)
        .aggregate(rankings=Count("id"), prompts=Count("prompt_id", distinct=True))
    )
    shape = prompts.aggregate(prompts=Count("id", distinct=True), responses=Count("responses"))
    per_prompt = shape["responses"] / shape["prompts"] if shape["prompts"] else 0.0
    return ExportSize(counted["rankings"], counted["prompts"], per_prompt)


def newest_ranking_id(*, project: Project) -> int:
    newest: int | None = Ranking.objects.filter(project=project).aggregate(newest=Max("id"))[
        "newest"
    ]
    return newest or 0


def export_jobs_for_user(*, user: Any) -> QuerySet[ExportJob]:
    """Jobs of projects where the user is lead or engineer (staff see all)."""
    jobs = _light(ExportJob.objects.select_related("project", "created_by"))
    if user.is_staff:
        return jobs
    return jobs.filter(
        project__memberships__user=user, project__memberships__role__in=["lead", "engineer"]
    )


def export_jobs_of_project(*, project: Project, limit: int = 50) -> list[ExportJob]:
    return list(
        _light(ExportJob.objects.filter(project=project))
        .select_related("created_by")
        .order_by("-created_at", "-id")[:limit]
    )


def _light(jobs: QuerySet[ExportJob]) -> QuerySet[ExportJob]:
    """Jobs without their big fields; `has_card` says whether the card is there."""
    return jobs.defer("exported_prompt_ids", "card").annotate(
        has_card=ExpressionWrapper(~Q(card=""), output_field=BooleanField())
    )
