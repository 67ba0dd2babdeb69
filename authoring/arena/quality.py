"""Arena vote hygiene after each agreement run: raters whose votes are statistical outliers
against the leaderboard are flagged (`ARENA_OUTLIER`), with the evidence, in the project's
flags table beside the ranking flags, so leads dismiss them or pause the rater as usual."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from authoring.arena import outliers
from authoring.arena.models import Choice, Turn
from authoring.arena.options import arena_options
from labeling.models import Project, TaskKind
from rankings.leaderboard.selectors import project_leaderboard
from rankings.models import Flag, FlagCode, FlagStatus

OUTCOME = {Choice.A: outliers.FIRST_WINS, Choice.B: outliers.SECOND_WINS}
REOPEN_AFTER_VOTES_FACTOR = 2
"""A dismissed flag opens again only once the rater has cast this many times the votes."""


def arena_run_extension(project: Project) -> dict[str, Any] | None:
    if project.task_kind != TaskKind.ARENA:
        return None
    return arena_outliers_flag(project=project)


def arena_outliers_flag(*, project: Project) -> dict[str, Any]:
    """Judge every rater's counted votes; open, update or clear their ARENA_OUTLIER flag."""
    options = arena_options(project.task_options)
    rows = list(
        Turn.objects.filter(battle__project=project, counted=True).values_list(
            "battle__rater_id", "battle__model_a", "battle__model_b", "choice"
        )
    )
    summary: dict[str, Any] = {"votes": len(rows), "raters": 0, "outliers": 0}
    if not rows:
        return summary
    board = project_leaderboard(project=project)
    strength = {model.name: model.strength for model in board.models if model.strength is not None}
    tie_log = math.log(board.tie_propensity) if board.tie_propensity else -math.inf
    usable = [row for row in rows if row[1] in strength and row[2] in strength]
    rater_ids = sorted({row[0] for row in usable})
    position = {rater_id: index for index, rater_id in enumerate(rater_ids)}
    fits = outliers.voter_fits(
        np.array([position[row[0]] for row in usable], dtype=np.int64),
        np.array([strength[row[1]] - strength[row[2]] for row in usable], dtype=np.float64),
        np.array([OUTCOME.get(Choice(row[3]), outliers.TIE) for row in usable], dtype=np.int64),
        tie_log,
        len(rater_ids),
    )
    median = outliers.crowd_median(fits, min_votes=1)
    summary["raters"] = len(rater_ids)
    with transaction.atomic():
        for rater_id, fit in zip(rater_ids, fits, strict=True):
            holds = outliers.is_outlier(
                fit,
                median=median,
                min_votes=options.outlier_min_votes,
                z_threshold=options.outlier_z,
            )
            summary["outliers"] += int(holds)
            evidence = _evidence(fit, median=median, options_min=options.outlier_min_votes,
                                 z_threshold=options.outlier_z, holds=holds)  # fmt: skip
            _flag_store(project=project, rater_id=rater_id, evidence=evidence, holds=holds)
    return summary


def _evidence(
    fit: outliers.VoterFit,
    *,
    median: float | None,
    options_min: int,
    z_threshold: float,
    holds: bool,
) -> dict[str, Any]:
    return {
        "votes": fit.votes,
        "agreement": _rounded(fit.agreement),
        "expected_agreement": _rounded(fit.expected),
        "crowd_median_agreement": _rounded(median),
        "z": _rounded(fit.z),
        "min_votes": options_min,
        "z_threshold": z_threshold,
        "holds": holds,
        "summary": (
            f"{fit.votes} arena votes agree with the leaderboard's predictions "
            f"{_rounded(fit.agreement)} on average, where {_rounded(fit.expected)} was expected "
            f"(z = {_rounded(fit.z)}; the crowd's median is {_rounded(median)})"
        ),
    }


def _flag_store(*, project: Project, rater_id: int, evidence: dict[str, Any], holds: bool) -> None:
    now = timezone.now()
    code = FlagCode.ARENA_OUTLIER
    existing = Flag.objects.filter(
        project=project, rater_id=rater_id, code=code, status=FlagStatus.OPEN
    ).first()
    if existing is not None:
        existing.evidence, existing.updated_at = evidence, now
        existing.save(update_fields=["evidence", "updated_at"])
        return
    if not holds:
        return
    closed = (
        Flag.objects.filter(project=project, rater_id=rater_id, code=code)
        .exclude(status=FlagStatus.OPEN)
        .order_by("-id")
        .first()
    )
    if closed is not None and evidence["votes"] < REOPEN_AFTER_VOTES_FACTOR * int(
        closed.evidence.get("votes", 0)
    ):
        return
    Flag.objects.create(
        project=project,
        rater_id=rater_id,
        code=code,
        evidence=evidence,
        created_at=now,
        updated_at=now,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
