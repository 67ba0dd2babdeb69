"""Writing demonstrations: the rater's task (a write lease or a review) and the submit.

A write task is an ordinary lease of the queue (`labeling.services`): overlap, pause, skip,
expired-lease rules and identical resubmits behave as for rankings. In rank-then-rewrite
mode the ranking is stored by `rankings.rating.services.ranking_submit` (a real Ranking, so
agreement and ranking exports count it) in the same transaction as the demonstration.
Reviews of what was written are `reviews`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from authoring.demonstrations.edits import edit_distance, unified_diff
from authoring.demonstrations.models import Demonstration, DemonstrationReview, DemonstrationStatus
from authoring.demonstrations.options import DemonstrationOptions
from authoring.demonstrations.reviews import review_lease_new
from authoring.demonstrations.validation import clean_active_seconds, clean_text
from core.errors import Conflict, InvalidInput
from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Membership, Project, Response, TaskKind
from rankings.rating import services as rating_services
from rankings.rating.validation import RankingProblem, clean_ranking_groups

# The rater's task -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DemonstrationTask:
    """What a rater of a demonstration project works on now: a write lease or a review."""

    assignment: Assignment | None = None
    review: DemonstrationReview | None = None

    @property
    def is_review(self) -> bool:
        return self.review is not None


def task_for_rater(
    *, project: Project, rater: User, membership: Membership | None = None
) -> DemonstrationTask | None:
    """The rater's live task, else a review waiting for someone who did not write it, else
    a prompt to write for; None when nothing is left. Reviews come before new writing so
    the demonstrations written are reviewed as they come in."""
    labeling_services.require_active_rater(project=project, rater=rater, membership=membership)
    now = timezone.now()
    review = _live_review(project=project, rater=rater, now=now)
    if review is not None:
        return DemonstrationTask(review=review)
    if not _has_live_write_lease(project=project, rater=rater, now=now):
        review = review_lease_new(project=project, rater=rater)
        if review is not None:
            return DemonstrationTask(review=review)
    tasks = rating_services.task_for_rater(project=project, rater=rater, membership=membership)
    return None if tasks.current is None else DemonstrationTask(assignment=tasks.current)


def _live_review(*, project: Project, rater: User, now: datetime) -> DemonstrationReview | None:
    return (
        DemonstrationReview.objects.select_related("demonstration__prompt")
        .filter(project=project, reviewer=rater, status=AssignmentStatus.LEASED, expires_at__gt=now)
        .order_by("id")
        .first()
    )


def _has_live_write_lease(*, project: Project, rater: User, now: datetime) -> bool:
    return Assignment.objects.filter(
        project=project, rater=rater, status=AssignmentStatus.LEASED, expires_at__gt=now
    ).exists()


# Writing --------------------------------------------------------------------------------------


def demonstration_submit(
    *,
    assignment_id: int,
    rater: User,
    text: Any,
    ranking: Any = None,
    original_response: Any = None,
    seconds: Any = None,
    rationale: str = "",
    rng: random.Random | None = None,
) -> tuple[Demonstration, bool]:
    """Store the reply for a leased write task; returns (demonstration, created).

    Rank then rewrite: `ranking` (tie groups best→worst, validated as for rankings) is
    required, `original_response` (default: the first of the best group) must be one of the
    best group; `rationale` goes with the ranking (projects may require one). Submitting the
    same again returns the stored demonstration; something else for a finished task is a
    conflict. A rewrite reopened by an undo is replaced when it is submitted again.
    """
    text = clean_text(text)
    cleaned_seconds = clean_active_seconds(seconds)
    with transaction.atomic():
        assignment = labeling_services.assignment_lock_for_finish(
            assignment_id=assignment_id, rater=rater
        )
        project = assignment.project
        if project.task_kind != TaskKind.DEMONSTRATION:
            raise Conflict("this task is not a demonstration task", code="wrong_kind")
        options = DemonstrationOptions.of(project)
        _check_mode_fields(options, ranking=ranking, original_response=original_response)
        existing = Demonstration.objects.filter(assignment=assignment).first()
        if assignment.status == AssignmentStatus.SUBMITTED:
            if existing is not None and _same_submission(existing, assignment, text, ranking):
                return existing, False
            raise Conflict("this task was already submitted with another reply", code="submitted")
        if existing is not None and existing.status not in (
            DemonstrationStatus.UNREVIEWED,
            DemonstrationStatus.PENDING_REVIEW,
        ):
            raise Conflict("this demonstration was reviewed already", code="reviewed")
        fields: dict[str, Any] = {
            "mode": options.mode,
            "text": text,
            "final_text": text,
            "seconds": cleaned_seconds,
            "guidelines_version": project.guidelines_version,
            "status": _review_routing(options, rng),
        }
        if options.rank_then_rewrite:
            stored, _ = rating_services.ranking_submit(
                assignment_id=assignment.pk,
                rater=rater,
                ranking=ranking,
                seconds=seconds,
                rationale=rationale,
            )
            fields |= _rewrite_fields(stored.groups, original_response, text)
            fields["ranking"] = stored
        else:
            labeling_services.assignment_claim_slot(assignment=assignment)
            labeling_services.assignment_mark_submitted(assignment=assignment)
        if existing is not None:  # reopened by an undo: the demonstration is replaced
            for name, value in fields.items():
                setattr(existing, name, value)
            existing.created_at = timezone.now()
            existing.save()
            return existing, True
        demonstration = Demonstration.objects.create(
            assignment=assignment,
            project=project,
            prompt_id=assignment.prompt_id,
            writer=rater,
            **fields,
        )
    return demonstration, True


def _check_mode_fields(
    options: DemonstrationOptions, *, ranking: Any, original_response: Any
) -> None:
    if options.rank_then_rewrite:
        if ranking is None:
            raise InvalidInput("rank the responses before rewriting the best", field="ranking")
        return
    for name, value in (("ranking", ranking), ("original_response", original_response)):
        if value is not None:
            raise InvalidInput(
                "this project's demonstrations are written, not ranked and rewritten", field=name
            )


def _same_submission(
    existing: Demonstration, assignment: Assignment, text: str, ranking: Any
) -> bool:
    if existing.text != text:
        return False
    if existing.ranking_id is None:
        return ranking is None
    try:
        groups = clean_ranking_groups(
            ranking,
            shown_ids=[int(response_id) for response_id in assignment.shown_order],
            allow_ties=assignment.project.allow_ties,
        )
    except RankingProblem:
        return False
    stored = Demonstration.objects.select_related("ranking").get(pk=existing.pk).ranking
    return stored is not None and stored.groups == groups


def _review_routing(options: DemonstrationOptions, rng: random.Random | None) -> str:
    """Routed to review at the project's rate (1: always, 0: never)."""
    rate = options.review_rate
    routed = rate >= 1 or (rate > 0 and (rng or random.SystemRandom()).random() < rate)
    return DemonstrationStatus.PENDING_REVIEW if routed else DemonstrationStatus.UNREVIEWED


def _rewrite_fields(groups: list[list[int]], original_response: Any, text: str) -> dict[str, Any]:
    """The rewritten response (one of the best group) and how far the text moved from it."""
    best = groups[0]
    if original_response is None:
        original_id = best[0]
    elif (
        isinstance(original_response, int)
        and not isinstance(original_response, bool)
        and original_response in best
    ):
        original_id = original_response
    else:
        raise InvalidInput(
            "must be the id of a response you ranked best", field="original_response"
        )
    original = Response.objects.get(pk=original_id)
    return {
        "original_response": original,
        "original_text": original.text,
        "diff": unified_diff(
            original.text, text, before_name=f"response-{original.pk}", after_name="demonstration"
        ),
        "edit_distance": edit_distance(original.text, text),
    }
