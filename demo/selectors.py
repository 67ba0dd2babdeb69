"""Reads for the demo's summary: what each demo project holds once the crowd is done."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q

from core.jobs import JobStatus as RunStatus
from demo.crowd import CROWD
from exports.models import ExportJob
from labeling.models import Project
from rankings.models import AgreementRun, Flag, FlagStatus, Ranking


@dataclass(frozen=True)
class ProjectReport:
    project_id: int
    name: str
    prompts: int
    gold_prompts: int
    open_prompts: int  # normal prompts still short of their overlap
    rankings: int
    crowd_rankings: int
    runs: int
    agreement: dict[str, Any]  # the latest finished run's metrics
    flagged: dict[str, list[str]] = field(default_factory=dict)  # username → open flag codes
    export: ExportJob | None = None


def project_report(*, project: Project) -> ProjectReport:
    prompts = project.prompts.aggregate(
        total=Count("id"),
        gold=Count("id", filter=Q(is_gold=True)),
        open=Count("id", filter=Q(is_gold=False, is_complete=False)),
    )
    crowd_names = [profile.username for profile in CROWD]
    rankings = Ranking.objects.filter(project=project).aggregate(
        total=Count("id"), crowd=Count("id", filter=Q(rater__username__in=crowd_names))
    )
    runs = AgreementRun.objects.filter(project=project, status=RunStatus.DONE)
    latest = runs.order_by("-id").first()
    flagged: dict[str, list[str]] = {}
    for username, code in (
        Flag.objects.filter(project=project, status=FlagStatus.OPEN)
        .order_by("rater__username", "code")
        .values_list("rater__username", "code")
    ):
        flagged.setdefault(username, []).append(code)
    return ProjectReport(
        project_id=project.pk,
        name=project.name,
        prompts=prompts["total"],
        gold_prompts=prompts["gold"],
        open_prompts=prompts["open"],
        rankings=rankings["total"],
        crowd_rankings=rankings["crowd"],
        runs=runs.count(),
        agreement=dict(latest.metrics) if latest else {},
        flagged=flagged,
        export=ExportJob.objects.filter(project=project).order_by("-id").first(),
    )
