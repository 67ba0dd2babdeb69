"""Red-team label agreement inside the project's agreement runs: the run extension that
computes it, and the cheap check after each label that queues a run when enough are new."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from authoring.redteam.agreement import label_agreement
from authoring.redteam.models import MAX_SEVERITY, Label
from authoring.redteam.options import red_team_options
from labeling.models import Membership, Project, TaskKind
from rankings.runs import selectors as run_selectors
from rankings.runs.services import agreement_run_request

logger = logging.getLogger(__name__)

EXTENSION = "red_team"
TRIGGER = "red-team labels"


def red_team_agreement(project: Project) -> dict[str, Any] | None:
    """Alpha on success, category and severity over every label of the project (excluded
    members' labels left out); None for projects of other kinds."""
    if project.task_kind != TaskKind.RED_TEAM:
        return None
    excluded = Membership.objects.filter(project=project, excluded=True).values("user_id")
    rows = list(
        Label.objects.filter(project=project)
        .exclude(labeler_id__in=excluded)
        .order_by("attempt_id", "id")
        .values_list("attempt_id", "succeeded", "category", "severity")
    )
    categories = list(red_team_options(project).categories)
    for row in rows:  # a category renamed since it was used still counts as itself
        if row[2] not in categories:
            categories.append(row[2])
    code = {name: index for index, name in enumerate(categories)}
    attempts = np.array([row[0] for row in rows], dtype=np.int64)
    result = label_agreement(
        attempts,
        np.array([int(row[1]) for row in rows], dtype=np.int64),
        np.array([code[row[2]] for row in rows], dtype=np.int64),
        len(categories),
        np.array([row[3] for row in rows], dtype=np.int64),
        MAX_SEVERITY + 1,
    )
    return {**result, "n_labels": len(rows), "n_attempts": len(set(attempts.tolist()))}


def agreement_run_request_if_labels_due(*, project_id: int) -> None:
    """Queue an agreement run once `agreement_every_n_rankings` labels were given or changed
    since the newest run was requested. Cheap (at most N rows counted) and debounced (nothing
    while a run is pending); never raises — the label that called it is already stored."""
    try:
        project = Project.objects.get(pk=project_id)
        every = project.agreement_every_n_rankings
        if not every or run_selectors.agreement_run_pending(project=project):
            return
        newest = run_selectors.agreement_run_newest(project=project)
        labels = Label.objects.filter(project=project)
        if newest is not None:
            labels = labels.filter(updated_at__gt=newest.created_at)
        if labels.order_by().values("id")[:every].count() >= every:
            agreement_run_request(project=project, trigger=TRIGGER)
    except Exception:
        logger.exception("could not check whether project %s is due a run", project_id)
