"""Reads for exports: prompts with their responses and counted rankings, in keyset batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import QuerySet

from exports.models import ExportJob
from exports.pairs import PromptData, RankingData, ResponseData, pseudonymous_rater_key
from labeling.models import Membership, Project, Prompt, Response
from rankings.models import Ranking

PROMPT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class ExportFilters:
    include_gold: bool = False
    min_raters: int = 1


def prompt_batches(
    *, project: Project, filters: ExportFilters, batch_size: int = PROMPT_BATCH_SIZE
) -> Iterator[list[tuple[PromptData, list[RankingData]]]]:
    """Walk the project's prompts by primary key; each batch costs three queries."""
    excluded = list(
        Membership.objects.filter(project=project, excluded=True).values_list("user_id", flat=True)
    )
    prompts = Prompt.objects.filter(project=project)
    if not filters.include_gold:
        prompts = prompts.filter(is_gold=False)
    last_id = 0
    while True:
        rows = list(
            prompts.filter(id__gt=last_id)
            .order_by("id")
            .values_list("id", "external_id", "messages")[:batch_size]
        )
        if not rows:
            return
        last_id = rows[-1][0]
        prompt_ids = [row[0] for row in rows]
        responses = _responses_by_prompt(prompt_ids)
        rankings = _rankings_by_prompt(project=project, prompt_ids=prompt_ids, excluded=excluded)
        batch = []
        for prompt_id, external_id, messages in rows:
            prompt_rankings = rankings.get(prompt_id, [])
            if len(prompt_rankings) < max(filters.min_raters, 1):
                continue
            prompt = PromptData(
                prompt_id=prompt_id,
                external_id=external_id,
                messages=messages,
                responses=responses[prompt_id],
            )
            batch.append((prompt, prompt_rankings))
        yield batch


def _responses_by_prompt(prompt_ids: list[int]) -> dict[int, dict[int, ResponseData]]:
    responses: dict[int, dict[int, ResponseData]] = defaultdict(dict)
    for response_id, prompt_id, external_id, text, model_name in (
        Response.objects.filter(prompt_id__in=prompt_ids)
        .order_by("prompt_id", "position")
        .values_list("id", "prompt_id", "external_id", "text", "model_name")
    ):
        responses[prompt_id][response_id] = ResponseData(
            response_id=response_id, external_id=external_id, text=text, model=model_name
        )
    return responses


def _rankings_by_prompt(
    *, project: Project, prompt_ids: list[int], excluded: list[int]
) -> dict[int, list[RankingData]]:
    rankings: dict[int, list[RankingData]] = defaultdict(list)
    keys: dict[int, str] = {}
    for ranking_id, prompt_id, rater_id, groups in (
        Ranking.objects.filter(prompt_id__in=prompt_ids, is_repeat=False)
        .exclude(rater_id__in=excluded)
        .order_by("id")
        .values_list("id", "prompt_id", "rater_id", "groups")
    ):
        if rater_id not in keys:
            keys[rater_id] = pseudonymous_rater_key(project.rater_key_salt, rater_id)
        rankings[prompt_id].append(
            RankingData(
                ranking_id=ranking_id, prompt_id=prompt_id, rater_key=keys[rater_id], groups=groups
            )
        )
    return rankings


def export_jobs_for_user(*, user) -> QuerySet[ExportJob]:
    """Jobs of projects where the user is lead or engineer (staff see all)."""
    jobs = ExportJob.objects.select_related("project", "created_by")
    if user.is_staff:
        return jobs
    return jobs.filter(
        project__memberships__user=user, project__memberships__role__in=["lead", "engineer"]
    )
