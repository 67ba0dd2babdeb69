"""Reads for rankings: the bulk ranking table the metrics run on, and agreement run history."""

from __future__ import annotations

from array import array
from datetime import datetime

import numpy as np
from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from labeling.models import Membership, Project, Response
from rankings.metrics import RankingTable
from rankings.models import AgreementRun, Ranking, RaterScore, RunStatus

HISTORY_LENGTH = 50
BATCH_SIZE = 20_000


def excluded_rater_ids(*, project: Project) -> list[int]:
    return list(
        Membership.objects.filter(project=project, excluded=True).values_list("user_id", flat=True)
    )


def rankings_for_agreement(*, project: Project, up_to_id: int | None = None) -> QuerySet[Ranking]:
    """Rankings that count toward agreement: no repeats, no excluded raters."""
    rankings = Ranking.objects.filter(project=project, is_repeat=False).exclude(
        rater_id__in=excluded_rater_ids(project=project)
    )
    if up_to_id is not None:
        rankings = rankings.filter(id__lte=up_to_id)
    return rankings


def ranking_table(
    *, project: Project, up_to_id: int | None = None
) -> tuple[RankingTable, list[int]]:
    """All counted rankings as dense arrays, plus the user id behind each rater index.

    Prompt and rater indices are dense over the rankings read (``n_prompts`` / ``n_raters``
    are exactly the distinct prompts and raters); slots are the responses' import positions.
    Rows are scattered into the rank matrix once at the end rather than built per ranking,
    which keeps a million rankings to a few compact arrays.
    """
    slot_of: dict[int, int] = dict(
        Response.objects.filter(prompt__project=project).values_list("id", "position")
    )
    k_max = max(slot_of.values(), default=-1) + 1
    prompt_ids, rater_ids = array("q"), array("q")
    cell_rows, cell_slots, cell_levels = array("q"), array("q"), array("d")
    rankings = rankings_for_agreement(project=project, up_to_id=up_to_id).order_by("id")
    rows = rankings.values_list("prompt_id", "rater_id", "groups").iterator(chunk_size=BATCH_SIZE)
    for row, (prompt_id, rater_id, groups) in enumerate(rows):
        prompt_ids.append(prompt_id)
        rater_ids.append(rater_id)
        for level, group in enumerate(groups, start=1):
            for response_id in group:
                cell_rows.append(row)
                cell_slots.append(slot_of[int(response_id)])
                cell_levels.append(level)
    distinct_prompts, prompt_index = np.unique(_int64(prompt_ids), return_inverse=True)
    rater_users, rater_index = np.unique(_int64(rater_ids), return_inverse=True)
    ranks = np.full((len(prompt_ids), k_max), np.nan)
    ranks[_int64(cell_rows), _int64(cell_slots)] = np.frombuffer(cell_levels, dtype=np.float64)
    table = RankingTable(
        prompt_index=prompt_index.astype(np.int64).reshape(-1),
        rater_index=rater_index.astype(np.int64).reshape(-1),
        ranks=ranks,
        n_prompts=len(distinct_prompts),
        n_raters=len(rater_users),
    )
    return table, [int(user_id) for user_id in rater_users]


def _int64(values: array) -> np.ndarray:
    return np.frombuffer(values, dtype=np.int64)


def latest_ranking_id(*, project: Project) -> int:
    last = Ranking.objects.filter(project=project).order_by("-id").values_list("id", flat=True)
    return last.first() or 0


# Agreement runs ---------------------------------------------------------------------------


def agreement_history(*, project: Project) -> list[AgreementRun]:
    """Finished runs, newest first, at most ``HISTORY_LENGTH``."""
    return list(
        AgreementRun.objects.filter(project=project, status=RunStatus.DONE).order_by("-id")[
            :HISTORY_LENGTH
        ]
    )


def agreement_run_newest(*, project: Project) -> AgreementRun | None:
    """The most recently requested run, whatever its status (pending, failed or done)."""
    return AgreementRun.objects.filter(project=project).order_by("-id").first()


def live_run_filter(*, cutoff: datetime) -> Q:
    """Runs a worker may still finish: queued or started at or after the cutoff."""
    return Q(status=RunStatus.QUEUED, created_at__gte=cutoff) | Q(
        status=RunStatus.RUNNING, started_at__gte=cutoff
    )


def abandoned_run_filter(*, cutoff: datetime) -> Q:
    """Runs queued or started before the cutoff that never finished (a lost message or worker)."""
    return Q(status=RunStatus.QUEUED, created_at__lt=cutoff) | Q(
        status=RunStatus.RUNNING, started_at__lt=cutoff
    )


def agreement_run_pending(*, project: Project, cutoff: datetime) -> AgreementRun | None:
    """The newest run still queued or running that a worker may yet finish."""
    return (
        AgreementRun.objects.filter(live_run_filter(cutoff=cutoff), project=project)
        .order_by("-id")
        .first()
    )


def projects_with_unseen_rankings(*, cutoff: datetime) -> QuerySet[Project]:
    """Projects whose newest ranking is newer than every finished run has seen.

    Projects with a live run (see ``live_run_filter``) are left out: that run will see the
    new rankings.
    """
    newest_ranking = Ranking.objects.filter(project=OuterRef("pk")).order_by("-id").values("id")
    last_seen = (
        AgreementRun.objects.filter(project=OuterRef("pk"), status=RunStatus.DONE)
        .values("project")
        .annotate(seen=Max("last_ranking_id"))
        .values("seen")
    )
    pending = AgreementRun.objects.filter(live_run_filter(cutoff=cutoff), project=OuterRef("pk"))
    return (
        Project.objects.annotate(
            newest_ranking_id=Subquery(newest_ranking[:1]),
            last_seen_ranking_id=Coalesce(Subquery(last_seen), 0),
        )
        .filter(newest_ranking_id__gt=F("last_seen_ranking_id"))
        .exclude(Exists(pending))
        .order_by("id")
    )


def rater_scores(*, run: AgreementRun) -> list[RaterScore]:
    """A run's per-rater rows with their usernames, lowest agreement first (None last)."""
    return list(
        RaterScore.objects.filter(run=run)
        .select_related("rater")
        .order_by(F("agreement").asc(nulls_last=True), "rater__username")
    )
