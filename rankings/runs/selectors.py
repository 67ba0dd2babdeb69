"""Reads about agreement runs: history, the latest finished run, live runs, what is due."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from core.jobs import JobStatus, live_job_filter
from labeling.models import Project
from rankings.models import AgreementRun, Ranking

HISTORY_LENGTH = 50


def latest_ranking_id(*, project: Project) -> int:
    last = Ranking.objects.filter(project=project).order_by("-id").values_list("id", flat=True)
    return last.first() or 0


def agreement_history(*, project: Project) -> list[AgreementRun]:
    """Finished runs, newest first, at most ``HISTORY_LENGTH``."""
    return list(
        AgreementRun.objects.filter(project=project, status=JobStatus.DONE).order_by("-id")[
            :HISTORY_LENGTH
        ]
    )


def latest_agreement_run(*, project: Project) -> AgreementRun | None:
    """The newest finished run (what the pages and the API show), in one short read."""
    return (
        AgreementRun.objects.filter(project=project, status=JobStatus.DONE).order_by("-id").first()
    )


def last_seen_ranking_id(*, project: Project) -> int:
    """The highest ranking id the newest finished run saw (0 before any run)."""
    seen = (
        AgreementRun.objects.filter(project=project, status=JobStatus.DONE)
        .order_by("-id")
        .values_list("last_ranking_id", flat=True)
        .first()
    )
    return seen or 0


def agreement_run_newest(*, project: Project) -> AgreementRun | None:
    """The most recently requested run, whatever its status (pending, failed or done)."""
    return AgreementRun.objects.filter(project=project).order_by("-id").first()


def live_run_filter(*, now: datetime | None = None) -> Q:
    """Runs a worker may still finish: queued or running, and not given up by the job
    sweep (a run whose message was lost is sent again, so it is still live)."""
    return live_job_filter(now=now)


def agreement_run_waiting(*, project: Project) -> AgreementRun | None:
    """The newest run still waiting in the queue that a worker may yet pick up."""
    return (
        AgreementRun.objects.filter(live_job_filter(), project=project, status=JobStatus.QUEUED)
        .order_by("-id")
        .first()
    )


def agreement_run_pending(*, project: Project) -> AgreementRun | None:
    """The newest run still queued or running that a worker may yet finish."""
    return AgreementRun.objects.filter(live_run_filter(), project=project).order_by("-id").first()


def projects_with_unseen_rankings() -> QuerySet[Project]:
    """Projects whose newest ranking is newer than every finished run has seen.

    Projects with a live run (see ``live_run_filter``) are left out: that run will see the
    new rankings.
    """
    newest_ranking = Ranking.objects.filter(project=OuterRef("pk")).order_by("-id").values("id")
    last_seen = (
        AgreementRun.objects.filter(project=OuterRef("pk"), status=JobStatus.DONE)
        .values("project")
        .annotate(seen=Max("last_ranking_id"))
        .values("seen")
    )
    pending = AgreementRun.objects.filter(live_run_filter(), project=OuterRef("pk"))
    return (
        Project.objects.annotate(
            newest_ranking_id=Subquery(newest_ranking[:1]),
            last_seen_ranking_id=Coalesce(Subquery(last_seen), 0),
        )
        .filter(newest_ranking_id__gt=F("last_seen_ranking_id"))
        .exclude(Exists(pending))
        .order_by("id")
    )
