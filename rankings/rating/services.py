"""The rater flow, one for the page and the API: which task to serve, submit, undo.

`task_for_rater` is the one sequence both interfaces serve tasks by; the lease primitives it
calls (lease next, lease following, renew, restore reopened) belong to `labeling`, which
owns the queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from core.rows import Columns, run_together
from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Membership, Project
from rankings.models import Ranking
from rankings.rating.validation import (
    RankingProblem,
    clean_ranking_groups,
    clean_ratings,
    clean_rationale,
    clean_seconds,
    clean_strength,
)
from rankings.runs.services import agreement_run_request_if_due

RANKING = Columns(Ranking, "r")

logger = logging.getLogger(__name__)

# Serving tasks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaterTasks:
    """What a rater is served: the task to work on now and, for the page, the one after it.

    `showing_lost` says the task the client showed was no longer theirs (taken over after
    its lease ran out, or finished elsewhere), so `current` is another one.
    """

    current: Assignment | None
    following: Assignment | None = None
    showing_lost: bool = False


def task_for_rater(
    *,
    project: Project,
    rater: User,
    membership: Membership | None = None,
    showing_id: int | None = None,
    with_following: bool = False,
) -> RaterTasks:
    """The one sequence by which the page and the API serve a rater their next task.

    1. `showing_id`, the task the client already shows (the page's preloaded one), stays
       current while it is still leased to the rater; its lease is renewed once half of it
       is used, so a task never runs out between being preloaded and being worked on.
    2. Otherwise reopened tasks whose new lease ran out are restored (their earlier ranking
       stands), then the rater gets their live lease — a task reopened by an undo first,
       as the oldest — or a new one.
    3. With `with_following`, the task after the current one is leased too (the page
       preloads it).
    Raises NotAllowed when the rater is paused, NotFound when they are not a member.
    Pass `membership` when it is already loaded: it saves a query.
    """
    current: Assignment | None = None
    showing_lost = False
    if showing_id is not None:
        current = _showing_task(project=project, rater=rater, showing_id=showing_id)
        showing_lost = current is None
    if current is None:
        # A membership read by `rater_membership` already says whether there is any.
        if getattr(membership, "has_lapsed_reopened", True):
            labeling_services.assignments_restore_reopened(project=project, rater=rater)
        current = labeling_services.lease_next_assignment(
            project=project, rater=rater, membership=membership
        )
    following = None
    if with_following and current is not None:
        following = labeling_services.lease_following_assignment(
            project=project, rater=rater, current_id=current.pk, membership=membership
        )
    for task in (current, following):
        if task is not None:
            task.project = project  # the caller's project: no query to load it again
    return RaterTasks(current=current, following=following, showing_lost=showing_lost)


def lease_seconds_left(assignment: Assignment) -> int:
    return max(0, int((assignment.expires_at - timezone.now()).total_seconds()))


def _showing_task(*, project: Project, rater: User, showing_id: int) -> Assignment | None:
    """The rater's leased task the client shows, its lease renewed when half of it is used."""
    showing = Assignment.objects.filter(
        pk=showing_id, project=project, rater=rater, status=AssignmentStatus.LEASED
    ).first()
    if showing is None:
        return None
    if lease_seconds_left(showing) > project.lease_seconds / 2:
        return showing
    try:
        return labeling_services.assignment_renew(assignment_id=showing.pk, rater=rater)
    except (Conflict, NotFound):
        return None


# Submitting and undoing -----------------------------------------------------------------------


def ranking_submit(
    *,
    assignment_id: int,
    rater: User,
    ranking: Any,
    ratings: Any = None,
    rationale: str = "",
    seconds: Any = None,
    strength: Any = None,
) -> tuple[Ranking, bool]:
    """Store the ranking for a leased assignment; returns (ranking, created).

    Submitting the same ranking again returns the stored one (a retried request never
    counts twice); a different ranking for a finished assignment is a conflict.
    """
    with transaction.atomic():
        assignment = labeling_services.assignment_lock_for_finish(
            assignment_id=assignment_id, rater=rater
        )
        project = assignment.project
        shown_ids = [int(response_id) for response_id in assignment.shown_order]
        try:
            groups = clean_ranking_groups(
                ranking, shown_ids=shown_ids, allow_ties=project.allow_ties
            )
            cleaned_ratings = clean_ratings(ratings, shown_ids=shown_ids, rubric=project.rubric)
            cleaned_seconds = clean_seconds(seconds)
            cleaned_strength = clean_strength(strength, groups=groups)
            rationale = clean_rationale(rationale, required=project.require_rationale)
        except RankingProblem as problem:
            raise InvalidInput(f"{problem.field}: {problem.message}", field=problem.field) from None
        if assignment.status == AssignmentStatus.SUBMITTED:
            existing = Ranking.objects.get(assignment=assignment)
            if existing.groups == groups:
                return existing, False
            raise Conflict("this task was already submitted with another ranking", code="submitted")
        labeling_services.assignment_claim_slot(assignment=assignment)
        # A task reopened by an undo already has its ranking: replace it (see ranking_undo).
        stored = _ranking_store_submitted(
            assignment=assignment,
            rater=rater,
            groups=groups,
            ratings=cleaned_ratings,
            rationale=rationale,
            seconds=cleaned_seconds,
            strength=cleaned_strength,
        )
        transaction.on_commit(partial(agreement_run_request_counted, project=project))
    return stored, True


def agreement_run_request_counted(*, project: Project) -> None:
    """After a submit: count it, and look whether an agreement run is due only every
    `agreement_every_n_rankings`-th submit, so a submit costs a cache increment, not queries.

    The count lives in the cache (shared by every web process with CACHE_URL, else one per
    process: then each process looks after its own N submits). The look itself counts the
    rankings in the database, so a lost or restarted counter only delays a run, which the
    beat schedule would queue anyway.
    """
    every = project.agreement_every_n_rankings
    if not every:
        return
    key = f"ranklab:submits-since-check:{project.pk}"
    try:
        cache.add(key, 0, timeout=None)
        submits = cache.incr(key)
    except Exception:  # a cache outage must not fail a submit that has committed
        logger.exception("could not count a submit of project %s", project.pk)
        return
    if submits % every == 0:
        agreement_run_request_if_due(project=project)


# Undo and resubmit ---------------------------------------------------------------------------

UNDO_SECONDS = 30
# The page counts the window down from when it heard back; allow for that round trip.
UNDO_GRACE_SECONDS = 5


def ranking_undo(*, assignment_id: int, rater: User) -> Ranking:
    """Reopen the task the rater just submitted, for `UNDO_SECONDS` after submitting.

    The assignment is leased to them again and the prompt counts one ranking fewer; the
    stored ranking stays (nothing is deleted) and is replaced, its old version kept in
    `revisions`, when they submit again. If they never do, it stands as it was.
    """
    with transaction.atomic():
        assignment = labeling_services.assignment_lock_for_finish(
            assignment_id=assignment_id, rater=rater
        )
        if assignment.status != AssignmentStatus.SUBMITTED:
            raise Conflict(
                f"only a submitted task can be reopened; this one is {assignment.status}",
                code="not_submitted",
            )
        now = timezone.now()
        window = timedelta(seconds=UNDO_SECONDS + UNDO_GRACE_SECONDS)
        if assignment.finished_at is None or now - assignment.finished_at > window:
            raise Conflict(
                f"too late to undo: a submit can be undone for {UNDO_SECONDS} seconds",
                code="undo_expired",
            )
        if assignment.expires_at <= now:
            raise Conflict(
                "too late to undo: your time on this task had run out", code="lease_expired"
            )
        ranking = Ranking.objects.filter(assignment=assignment).first()
        if ranking is None:  # a task of another kind (a written demonstration)
            raise Conflict("only a ranking can be undone", code="not_a_ranking")
        labeling_services.assignment_reopen(assignment=assignment)
    return ranking


def _ranking_store_submitted(
    *,
    assignment: Assignment,
    rater: User,
    groups: list[list[int]],
    ratings: dict[str, dict[str, Any]],
    rationale: str,
    seconds: float | None,
    strength: int | None,
) -> Ranking:
    """Create the assignment's ranking, or replace the one a reopened task already has,
    and mark the assignment submitted (with the INSERT, one round trip on PostgreSQL).

    Replacing keeps the earlier version in `revisions`, so one Ranking row per assignment
    counts once in agreement and exports however often it is undone.
    """
    # Only a reopened task (leased again, finished_at kept) can have a ranking already.
    existing = (
        Ranking.objects.select_for_update().filter(assignment=assignment).first()
        if assignment.finished_at is not None
        else None
    )
    marking = labeling_services.assignment_submitted_statements(assignment=assignment)
    if existing is None:
        ranking = Ranking(
            assignment=assignment,
            project_id=assignment.project_id,
            prompt_id=assignment.prompt_id,
            rater=rater,
            groups=groups,
            ratings=ratings,
            rationale=rationale,
            seconds=seconds,
            strength=strength,
            is_repeat=assignment.is_repeat,
        )
        # The ORM's create without its compiler, the assignment marked submitted with it.
        return RANKING.insert(ranking, connection, along=marking)
    now = timezone.now()
    existing.revisions = [
        *existing.revisions,
        {
            "groups": existing.groups,
            "ratings": existing.ratings,
            "rationale": existing.rationale,
            "seconds": existing.seconds,
            "strength": existing.strength,
            "submitted_at": (existing.updated_at or existing.created_at).isoformat(),
            "replaced_at": now.isoformat(),
        },
    ]
    existing.groups, existing.ratings, existing.rationale = groups, ratings, rationale
    existing.seconds, existing.strength, existing.updated_at = seconds, strength, now
    existing.save(
        update_fields=[
            "revisions",
            "groups",
            "ratings",
            "rationale",
            "seconds",
            "strength",
            "updated_at",
        ]
    )
    run_together(marking, connection)
    return existing
