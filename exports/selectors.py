"""Reads for exports: prompts with their responses and counted rankings, in keyset batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container, Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.db.models import Count, Max, Q, QuerySet, TextField
from django.db.models.functions import Cast

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


def prompt_batches(
    *, project: Project, filters: ExportFilters, batch_size: int = PROMPT_BATCH_SIZE
) -> Iterator[list[PromptRankings]]:
    """Walk the project's prompts by primary key; each batch costs three queries.

    Memory is bounded by the batch: a batch holds `batch_size` prompts with their responses
    and rankings, whatever the size of the project. Prompts left with fewer than
    `min_raters` rankings after the filters are skipped.
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
        )
        ranked_ids = [
            prompt_id for prompt_id in prompt_ids if len(by_prompt.get(prompt_id, ())) >= min_raters
        ]
        responses = (
            _responses_by_prompt(
                Response.objects.filter(_prompt_ids_lookup("prompt_id", ranked_ids, all_ids))
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
    responses_of_batch: QuerySet[Response],
) -> dict[int, dict[int, ResponseData]]:
    responses: dict[int, dict[int, ResponseData]] = defaultdict(dict)
    for response_id, prompt_id, external_id, text, model_name in responses_of_batch.order_by(
        "prompt_id", "position"
    ).values_list("id", "prompt_id", "external_id", "text", "model_name"):
        responses[prompt_id][response_id] = ResponseData(response_id, external_id, text, model_name)
    return responses


def _rankings_by_prompt(
    rankings: QuerySet[Ranking], *, salt: str, keys: dict[int, str]
) -> dict[int, list[RankingData]]:
    by_prompt: dict[int, list[RankingData]] = defaultdict(list)
    for ranking_id, prompt_id, rater_id, groups, strength in (
        rankings.annotate(groups_json=_json_text("groups"))
        .order_by("id")
        .values_list("id", "prompt_id", "rater_id", "groups_json", "strength")
    ):
        key = keys.get(rater_id)
        if key is None:
            key = keys[rater_id] = pseudonymous_rater_key(salt, rater_id)
        by_prompt[prompt_id].append(
            RankingData(ranking_id, prompt_id, key, orjson.loads(groups), strength)
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
