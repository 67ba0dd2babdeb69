"""Writes for rankings: submitting a ranking and queueing agreement runs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling import services as labeling_services
from labeling.errors import Conflict, InvalidInput
from labeling.models import AssignmentStatus
from rankings import metrics, selectors
from rankings.models import AgreementRun, Ranking, RaterScore, RunStatus
from rankings.validation import (
    RankingProblem,
    clean_ranking_groups,
    clean_ratings,
    clean_seconds,
)

MAX_RATIONALE_CHARS = 5000


def ranking_submit(
    *,
    assignment_id: int,
    rater: AbstractBaseUser,
    ranking: Any,
    ratings: Any = None,
    rationale: str = "",
    seconds: Any = None,
) -> tuple[Ranking, bool]:
    """Store the ranking for a leased assignment; returns (ranking, created).

    Submitting the same ranking again returns the stored one (a retried request never
    counts twice); a different ranking for a finished assignment is a conflict.
    """
    with transaction.atomic():
        assignment = labeling_services.assignment_lock_for_finish(
            assignment_id=assignment_id, rater=rater
        )
        shown_ids = [int(response_id) for response_id in assignment.shown_order]
        try:
            groups = clean_ranking_groups(
                ranking, shown_ids=shown_ids, allow_ties=assignment.project.allow_ties
            )
            cleaned_ratings = clean_ratings(ratings, shown_ids=shown_ids)
            cleaned_seconds = clean_seconds(seconds)
        except RankingProblem as problem:
            raise InvalidInput(f"{problem.field}: {problem.message}", field=problem.field) from None
        rationale = (rationale or "").strip()
        if len(rationale) > MAX_RATIONALE_CHARS:
            raise InvalidInput(
                f"rationale: must be at most {MAX_RATIONALE_CHARS} characters", field="rationale"
            )
        if assignment.status == AssignmentStatus.SUBMITTED:
            existing = Ranking.objects.get(assignment=assignment)
            if existing.groups == groups:
                return existing, False
            raise Conflict("this task was already submitted with another ranking", code="submitted")
        labeling_services.assignment_claim_slot(assignment=assignment)
        stored = Ranking.objects.create(
            assignment=assignment,
            project_id=assignment.project_id,
            prompt_id=assignment.prompt_id,
            rater=rater,
            groups=groups,
            ratings=cleaned_ratings,
            rationale=rationale,
            seconds=cleaned_seconds,
            is_repeat=assignment.is_repeat,
        )
        labeling_services.assignment_mark_submitted(assignment=assignment)
    return stored, True


# Agreement runs ---------------------------------------------------------------------------


def agreement_run_request(*, project, trigger: str) -> AgreementRun:
    """Queue an agreement run; the worker starts it once this transaction commits."""
    from rankings import tasks

    with transaction.atomic():
        run = AgreementRun.objects.create(project=project, trigger=trigger)
        tasks.agreement_run_compute_task.delay_on_commit(run.pk)
    return run


def agreement_run_claim(*, run_id: int) -> bool:
    """Move a queued run to running; only one worker wins, so retries are harmless."""
    claimed = AgreementRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    return claimed == 1


def agreement_run_compute(*, run_id: int) -> dict:
    if not agreement_run_claim(run_id=run_id):
        run = AgreementRun.objects.get(pk=run_id)
        return {"run_id": run_id, "status": run.status, "skipped": True}
    run = AgreementRun.objects.select_related("project").get(pk=run_id)
    try:
        last_id = selectors.latest_ranking_id(project=run.project)
        table, rater_user_ids = selectors.ranking_table(project=run.project, up_to_id=last_id)
        summary = metrics.project_agreement(table)
        rater_rows = metrics.rater_leave_one_out_agreement(table)
        counts = np.bincount(table.rater_index, minlength=len(rater_user_ids))
    except Exception as error:
        AgreementRun.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED, error=repr(error)[:2000], finished_at=timezone.now()
        )
        raise
    with transaction.atomic():
        run.status, run.finished_at, run.last_ranking_id = RunStatus.DONE, timezone.now(), last_id
        run.metrics = summary
        run.n_prompts = int(summary.get("n_prompts") or 0)
        run.n_rankings = int(summary.get("n_rankings") or 0)
        run.save()
        RaterScore.objects.bulk_create(
            [
                RaterScore(
                    run=run,
                    rater_id=rater_user_ids[row.rater_index],
                    rankings=int(counts[row.rater_index]),
                    agreement=_finite_or_none(row.agreement),
                    agreement_low=_finite_or_none(row.low),
                    agreement_high=_finite_or_none(row.high),
                    compared_pairs=int(row.n_pairs),
                )
                for row in rater_rows
            ]
        )
    return {"run_id": run.pk, "status": run.status, "n_rankings": run.n_rankings}


def _finite_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def agreement_run_is_stale(*, project) -> bool:
    """True when rankings arrived after the last finished or pending run saw them."""
    latest = selectors.latest_ranking_id(project=project)
    if latest == 0:
        return False
    pending = AgreementRun.objects.filter(
        project=project, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
    ).exists()
    if pending:
        return False
    last_seen = (
        AgreementRun.objects.filter(project=project, status=RunStatus.DONE)
        .order_by("-id")
        .values_list("last_ranking_id", flat=True)
        .first()
    )
    return last_seen is None or last_seen < latest
