"""Reads for rankings: the bulk ranking table the metrics run on, and run history."""

from __future__ import annotations

import numpy as np
from django.db.models import QuerySet

from labeling.models import Membership, Project, Response
from rankings.metrics import RankingTable
from rankings.models import AgreementRun, Ranking

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
    """All counted rankings as dense arrays, plus the user id behind each rater index."""
    slot_of: dict[int, int] = dict(
        Response.objects.filter(prompt__project=project).values_list("id", "position")
    )
    k_max = max(slot_of.values(), default=0) + 1
    prompt_ids: list[int] = []
    rater_ids: list[int] = []
    rows: list[np.ndarray] = []
    rankings = rankings_for_agreement(project=project, up_to_id=up_to_id).order_by("id")
    for prompt_id, rater_id, groups in rankings.values_list(
        "prompt_id", "rater_id", "groups"
    ).iterator(chunk_size=BATCH_SIZE):
        row = np.full(k_max, np.nan)
        for level, group in enumerate(groups, start=1):
            for response_id in group:
                row[slot_of[response_id]] = level
        prompt_ids.append(prompt_id)
        rater_ids.append(rater_id)
        rows.append(row)
    prompt_index = np.unique(np.asarray(prompt_ids, dtype=np.int64), return_inverse=True)[1]
    rater_users, rater_index = np.unique(np.asarray(rater_ids, dtype=np.int64), return_inverse=True)
    ranks = np.vstack(rows) if rows else np.empty((0, k_max))
    table = RankingTable(
        prompt_index=prompt_index.astype(np.int64),
        rater_index=rater_index.astype(np.int64),
        ranks=ranks,
    )
    return table, [int(user_id) for user_id in rater_users]


def agreement_history(*, project: Project) -> list[AgreementRun]:
    return list(
        AgreementRun.objects.filter(project=project, status="done").order_by("-id")[:HISTORY_LENGTH]
    )


def latest_ranking_id(*, project: Project) -> int:
    last = Ranking.objects.filter(project=project).order_by("-id").values_list("id", flat=True)
    return last.first() or 0
