"""Reads for the `red-team` export: a project's labelled attempts in id batches, with their
turns and labels, as the pure row module's dataclasses."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from authoring.redteam.models import Attempt
from exports.formats.red_team import AttemptData, LabelData, TurnData
from exports.pairs import pseudonymous_rater_key
from labeling.models import AssignmentStatus, Membership, Project

BATCH = 500


def red_team_attempts(*, project: Project, include_excluded: bool = False) -> Iterator[AttemptData]:
    """Submitted attempts in id order (flat memory); attempts and labels of excluded members
    are left out unless asked for."""
    for batch in red_team_attempt_batches(project=project, include_excluded=include_excluded):
        yield from batch


def red_team_attempt_count(*, project: Project, include_excluded: bool = False) -> int:
    excluded = set() if include_excluded else _excluded_raters(project)
    return _submitted_attempts(project).exclude(rater_id__in=excluded).count()


def red_team_attempt_batches(
    *, project: Project, include_excluded: bool = False, batch_size: int = BATCH
) -> Iterator[list[AttemptData]]:
    """The submitted attempts in id order, one keyset batch at a time."""
    excluded = set() if include_excluded else _excluded_raters(project)
    last_id = 0
    while True:
        batch = list(
            _submitted_attempts(project)
            .filter(pk__gt=last_id)
            .exclude(rater_id__in=excluded)
            .select_related("endpoint")
            .prefetch_related("turns", "labels")
            .order_by("id")[:batch_size]
        )
        if not batch:
            return
        yield [
            _attempt_data(attempt, salt=project.rater_key_salt, excluded=excluded)
            for attempt in batch
        ]
        last_id = batch[-1].pk


def _submitted_attempts(project: Project) -> QuerySet[Attempt]:
    return Attempt.objects.filter(project=project, assignment__status=AssignmentStatus.SUBMITTED)


def _excluded_raters(project: Project) -> set[int]:
    return set(
        Membership.objects.filter(project=project, excluded=True).values_list("user_id", flat=True)
    )


def _attempt_data(attempt: Attempt, *, salt: str, excluded: set[int]) -> AttemptData:
    turns = sorted(attempt.turns.all(), key=lambda turn: turn.index)
    labels = sorted(attempt.labels.all(), key=lambda label: label.pk)
    return AttemptData(
        attempt_id=attempt.pk,
        prompt_id=attempt.prompt_id,
        brief_category=attempt.category,
        brief_goal=attempt.goal,
        free_choice=attempt.free_choice,
        rater_key=pseudonymous_rater_key(salt, attempt.rater_id),
        model=attempt.endpoint.model
        if attempt.endpoint
        else (turns[0].model_name if turns else ""),
        turns=tuple(
            TurnData(
                user=turn.user_text,
                assistant=turn.assistant_text,
                model=turn.model_name,
                flagged=turn.flagged,
                flag_note=turn.flag_note,
                failure=turn.failure,
            )
            for turn in turns
        ),
        labels=tuple(
            LabelData(
                rater_key=pseudonymous_rater_key(salt, label.labeler_id),
                role=label.role,
                succeeded=label.succeeded,
                category=label.category,
                severity=label.severity,
                note=label.note,
            )
            for label in labels
            if label.labeler_id not in excluded
        ),
    )
