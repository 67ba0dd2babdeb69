"""Which prompts and rankings an export reads, built from the parameter registry."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from exports.params import PARAMS
from labeling.models import Project, Prompt
from rankings.models import Ranking


@dataclass(frozen=True)
class ExportFilters:
    """The conditions on prompts and rankings the export parameters ask for (pair-level
    filters are applied to built pairs, see `exports.params.pair_filters`)."""

    prompts: tuple[Q, ...] = ()
    rankings: tuple[Q, ...] = ()
    min_raters: int = 1
    """Only prompts with at least this many rankings after the other filters."""
    skip_prompt_ids: Container[int] = frozenset()
    """Prompts an earlier export covered (incremental exports)."""


def export_filters(
    *, project: Project, params: dict[str, Any], skip_prompt_ids: Container[int] = frozenset()
) -> ExportFilters:
    """The filters of cleaned export parameters: each parameter's declared condition."""
    prompts = (param.prompts(params[param.name]) for param in PARAMS if param.prompts)
    rankings = (param.rankings(params[param.name], project) for param in PARAMS if param.rankings)
    return ExportFilters(
        prompts=tuple(condition for condition in prompts if condition is not None),
        rankings=tuple(condition for condition in rankings if condition is not None),
        min_raters=max(int(params["min_raters"]), 1),
        skip_prompt_ids=skip_prompt_ids,
    )


def prompts_read(*, project: Project, filters: ExportFilters) -> QuerySet[Prompt]:
    prompts = Prompt.objects.filter(project=project)
    for condition in filters.prompts:
        prompts = prompts.filter(condition)
    return prompts


def rankings_read(*, project: Project, filters: ExportFilters) -> QuerySet[Ranking]:
    # Repeats measure self-consistency and are never exported.
    rankings = Ranking.objects.filter(project=project, is_repeat=False)
    for condition in filters.rankings:
        rankings = rankings.filter(condition)
    return rankings
