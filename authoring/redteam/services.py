"""Red-team writes: serving briefs, chat turns streamed from the target model, flags, the
rater's label (which submits the assignment) and reviewers' labels.

Briefs are prompts leased by the queue (`labeling.services`), so overlap is the number of
attempts per brief and pause, skip and expired leases behave as for rankings. In
free-choice mode a rater with no brief left gets a fresh free brief of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from authoring.redteam.models import MAX_SEVERITY, Attempt, Label, LabelRole, Turn
from authoring.redteam.options import RedTeamOptions, red_team_options
from authoring.streaming import Event, reply_events
from core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import (
    Assignment,
    AssignmentStatus,
    Membership,
    MemberStatus,
    Project,
    Prompt,
    Role,
    TaskKind,
)
from labeling.rendering import render_markdown
from llm.models import ModelEndpoint
from llm.services.endpoints import endpoint_config

MAX_MESSAGE_CHARS = 20_000
MAX_NOTE_CHARS = 5_000
FREE_CHOICE_GOAL = "Free choice: pick a harm category and a goal of your own."
STREAM_RECLAIM_MARGIN_SECONDS = 60
"""A reply whose stream started longer than the endpoint's timeout plus this ago and never
finished (its server went away) may be streamed again."""


# Briefs and attempts --------------------------------------------------------------------------


def brief_of(prompt: Prompt) -> dict[str, Any]:
    """A brief prompt's category and goal (a free brief has neither yet)."""
    metadata = prompt.metadata or {}
    free = bool(metadata.get("free_choice"))
    messages = prompt.messages or []
    goal = "" if free or not messages else str(messages[-1].get("content", ""))
    return {"category": str(metadata.get("category", "")), "goal": goal, "free_choice": free}


def red_team_lease(
    *, project: Project, rater: User, membership: Membership | None = None
) -> Attempt | None:
    """The rater's attempt on their leased brief (a new lease when needed), or None."""
    assignment = labeling_services.lease_next_assignment(
        project=project, rater=rater, membership=membership
    )
    if assignment is None and red_team_options(project).free_choice:
        _free_brief_create(project=project)
        assignment = labeling_services.lease_next_assignment(
            project=project, rater=rater, membership=membership
        )
    if assignment is None:
        return None
    assignment.project = project
    return attempt_for_assignment(assignment)


def _free_brief_create(*, project: Project) -> Prompt:
    return Prompt.objects.create(
        project=project,
        messages=[{"role": "user", "content": FREE_CHOICE_GOAL}],
        metadata={"free_choice": True},
        n_responses=0,
    )


def attempt_for_assignment(assignment: Assignment) -> Attempt:
    """The assignment's attempt, made from its brief the first time it is asked for."""
    attempt = Attempt.objects.filter(assignment=assignment).first()
    if attempt is not None:
        return attempt
    brief = brief_of(assignment.prompt)
    attempt, _ = Attempt.objects.get_or_create(
        assignment=assignment,
        defaults={
            "project_id": assignment.project_id,
            "prompt_id": assignment.prompt_id,
            "rater_id": assignment.rater_id,
            "category": brief["category"],
            "goal": brief["goal"],
            "free_choice": brief["free_choice"],
        },
    )
    return attempt


def target_endpoint(project: Project) -> ModelEndpoint:
    """The endpoint raters attack; Conflict when the lead has not set one of this project."""
    endpoint_id = red_team_options(project).target_endpoint
    endpoint = (
        ModelEndpoint.objects.filter(project=project, pk=endpoint_id).first()
        if endpoint_id
        else None
    )
    if endpoint is None:
        raise Conflict(
            "the project has no target model yet: a lead sets task_options.target_endpoint",
            field="task_options.target_endpoint",
            code="no_target",
        )
    return endpoint


def target_endpoint_problem(*, project_id: int | None, endpoint_id: int | None) -> str | None:
    """Why a target endpoint is not acceptable for the project (None: it is)."""
    if endpoint_id is None:
        return None
    if project_id is None:
        return "add the project's model endpoints first, then choose the target among them"
    if not ModelEndpoint.objects.filter(project_id=project_id, pk=endpoint_id).exists():
        return f"no endpoint {endpoint_id} in this project"
    return None


# Turns ----------------------------------------------------------------------------------------


def turn_create(
    *,
    assignment_id: int,
    rater: User,
    content: Any,
    goal: Any = None,
    category: Any = None,
) -> Turn:
    """The rater's next message; its reply is streamed by `turn_reply_events`.

    The previous reply must be in, the attempt under the project's `max_turns`; a free-choice
    attempt takes its goal and category with any turn until it is labelled.
    """
    text = _message_text(content)
    with transaction.atomic():
        assignment = _lock_leased(assignment_id=assignment_id, rater=rater)
        project = assignment.project
        options = red_team_options(project)
        endpoint = target_endpoint(project)
        attempt = attempt_for_assignment(assignment)
        if attempt.free_choice:
            _choose_brief(attempt, options=options, goal=goal, category=category)
        elif goal is not None or category is not None:
            raise InvalidInput("this brief's goal and category are set by the lead", field="goal")
        turns = list(attempt.turns.order_by("index").values_list("index", "finished_at"))
        if turns and turns[-1][1] is None:
            raise Conflict("wait for the model's reply before writing again", code="reply_pending")
        if len(turns) >= options.max_turns:
            raise Conflict(
                f"this attempt has used its {options.max_turns} turns; label it now",
                field="content",
                code="max_turns",
            )
        if attempt.endpoint_id != endpoint.pk:
            attempt.endpoint = endpoint
            attempt.save(update_fields=["endpoint"])
        return Turn.objects.create(
            attempt=attempt, index=len(turns), user_text=text, model_name=endpoint.model
        )


def _message_text(content: Any) -> str:
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("write a message to the model", field="content")
    if len(content) > MAX_MESSAGE_CHARS or "\x00" in content:
        raise InvalidInput(f"at most {MAX_MESSAGE_CHARS} characters", field="content")
    return content.strip()


def _choose_brief(attempt: Attempt, *, options: RedTeamOptions, goal: Any, category: Any) -> None:
    changed: list[str] = []
    if category is not None:
        attempt.category = _category(category, options=options, field="category")
        changed.append("category")
    if goal is not None:
        if not isinstance(goal, str) or len(goal) > MAX_NOTE_CHARS or "\x00" in goal:
            raise InvalidInput(f"a goal of at most {MAX_NOTE_CHARS} characters", field="goal")
        attempt.goal = goal.strip()
        changed.append("goal")
    if changed:
        attempt.save(update_fields=changed)


def _lock_leased(*, assignment_id: int, rater: User) -> Assignment:
    """The rater's red-team assignment, locked, still theirs to work on (409 otherwise)."""
    assignment = labeling_services.assignment_lock_for_finish(
        assignment_id=assignment_id, rater=rater
    )
    if assignment.project.task_kind != TaskKind.RED_TEAM:
        raise NotFound("assignment not found")
    labeling_services.assignment_claim_slot(assignment=assignment)
    return assignment


def turn_for_rater(*, assignment_id: int, rater: User, index: int) -> Turn:
    turn = (
        Turn.objects.select_related("attempt__assignment", "attempt__endpoint")
        .filter(attempt__assignment_id=assignment_id, attempt__assignment__rater=rater, index=index)
        .first()
    )
    if turn is None:
        raise NotFound("turn not found")
    return turn


def turn_reply_events(*, assignment_id: int, rater: User, index: int) -> Iterator[Event]:
    """The turn's reply as events: streamed from the target model the first time, the stored
    reply after that (a reconnecting page gets it at once). Checks happen before the first
    event, so a refused request is a plain JSON error."""
    turn = turn_for_rater(assignment_id=assignment_id, rater=rater, index=index)
    if turn.finished_at is not None:
        return iter([_stored_event(turn)])
    endpoint = turn.attempt.endpoint
    if endpoint is None:
        raise Conflict("the target model of this attempt was removed", code="no_target")
    if not _stream_claim(turn, endpoint=endpoint):
        raise Conflict("this reply is already being streamed", code="streaming")
    messages = conversation_before(turn)
    finish = partial(turn_reply_store, turn_id=turn.pk)
    return reply_events(endpoint_config(endpoint), messages, finish=finish)


def _stored_event(turn: Turn) -> Event:
    html = render_markdown(turn.assistant_text)
    if turn.failure:
        return "failed", {"detail": turn.failure, "html": html}
    return "done", {"html": html}


def _stream_claim(turn: Turn, *, endpoint: ModelEndpoint) -> bool:
    """Only one stream per reply: a conditional UPDATE, won by one request."""
    now = timezone.now()
    stale = now - timedelta(seconds=endpoint.timeout_seconds + STREAM_RECLAIM_MARGIN_SECONDS)
    free = Turn.objects.filter(pk=turn.pk, finished_at__isnull=True)
    claimed = free.filter(stream_started_at__isnull=True).update(stream_started_at=now)
    if not claimed:
        claimed = free.filter(stream_started_at__lt=stale).update(stream_started_at=now)
    return claimed == 1


def conversation_before(turn: Turn) -> list[dict[str, str]]:
    """The messages the model answers: earlier turns (user, then its reply) and this message."""
    messages: list[dict[str, str]] = []
    for user_text, assistant_text in (
        Turn.objects.filter(attempt_id=turn.attempt_id, index__lt=turn.index)
        .order_by("index")
        .values_list("user_text", "assistant_text")
    ):
        messages.append({"role": "user", "content": user_text})
        if assistant_text:
            messages.append({"role": "assistant", "content": assistant_text})
    messages.append({"role": "user", "content": turn.user_text})
    return messages


def turn_reply_store(text: str, failure: str | None, *, turn_id: int) -> str:
    """Store a turn's reply once (a later call changes nothing); its sanitized HTML."""
    Turn.objects.filter(pk=turn_id, finished_at__isnull=True).update(
        assistant_text=text, failure=(failure or "")[:500], finished_at=timezone.now()
    )
    return render_markdown(text)


def turn_flag(*, assignment_id: int, rater: User, index: int, flagged: Any, note: Any = "") -> Turn:
    """Mark (or unmark) a reply as harmful, until the attempt is labelled."""
    if not isinstance(flagged, bool):
        raise InvalidInput("must be true or false", field="flagged")
    note = _note(note, field="note")
    with transaction.atomic():
        _lock_leased(assignment_id=assignment_id, rater=rater)
        turn = turn_for_rater(assignment_id=assignment_id, rater=rater, index=index)
        if turn.finished_at is None:
            raise Conflict("the reply is not in yet", code="reply_pending")
        turn.flagged, turn.flag_note = flagged, note[:500] if flagged else ""
        turn.save(update_fields=["flagged", "flag_note"])
    return turn


# Labels ---------------------------------------------------------------------------------------


def clean_label(
    *, project: Project, succeeded: Any, category: Any, severity: Any, note: Any
) -> dict[str, Any]:
    if not isinstance(succeeded, bool):
        raise InvalidInput("must be true or false", field="succeeded")
    options = red_team_options(project)
    if isinstance(severity, bool) or not isinstance(severity, int):
        raise InvalidInput(f"a whole number from 0 to {MAX_SEVERITY}", field="severity")
    if not 0 <= severity <= MAX_SEVERITY:
        raise InvalidInput(f"a whole number from 0 to {MAX_SEVERITY}", field="severity")
    return {
        "succeeded": succeeded,
        "category": _category(category, options=options, field="category"),
        "severity": severity,
        "note": _note(note, field="note"),
    }


def _category(value: Any, *, options: RedTeamOptions, field: str) -> str:
    if not isinstance(value, str) or value.strip() not in options.categories:
        raise InvalidInput(f"one of: {', '.join(options.categories)}", field=field)
    return value.strip()


def _note(value: Any, *, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_NOTE_CHARS or "\x00" in value:
        raise InvalidInput(f"text of at most {MAX_NOTE_CHARS} characters", field=field)
    return value.strip()


def _same_label(label: Label, values: dict[str, Any]) -> bool:
    return all(getattr(label, name) == value for name, value in values.items())


def attempt_submit(
    *,
    assignment_id: int,
    rater: User,
    succeeded: Any,
    category: Any,
    severity: Any,
    note: Any = "",
) -> tuple[Label, bool]:
    """The rater labels their attempt, which submits the assignment; returns (label, created).

    The same label again returns the stored one; another label for a submitted attempt is
    a conflict. Rules of the queue as for rankings: an expired lease still free is accepted,
    one taken over is refused.
    """
    with transaction.atomic():
        assignment = labeling_services.assignment_lock_for_finish(
            assignment_id=assignment_id, rater=rater
        )
        project = assignment.project
        if project.task_kind != TaskKind.RED_TEAM:
            raise NotFound("assignment not found")
        values = clean_label(
            project=project, succeeded=succeeded, category=category, severity=severity, note=note
        )
        attempt = attempt_for_assignment(assignment)
        if assignment.status == AssignmentStatus.SUBMITTED:
            existing = Label.objects.filter(attempt=attempt, labeler=rater).first()
            if existing is not None and _same_label(existing, values):
                return existing, False
            raise Conflict("this attempt was already labelled differently", code="submitted")
        labeling_services.assignment_claim_slot(assignment=assignment)
        finished = list(attempt.turns.values_list("finished_at", flat=True))
        if not finished:
            raise InvalidInput("chat with the model at least once before labelling", field="turns")
        if any(moment is None for moment in finished):
            raise Conflict("wait for the model's reply before labelling", code="reply_pending")
        label = Label.objects.create(
            attempt=attempt, project=project, labeler=rater, role=LabelRole.RATER, **values
        )
        labeling_services.assignment_mark_submitted(assignment=assignment)
        transaction.on_commit(partial(_agreement_if_due, project_id=project.pk))
    return label, True


# Review ---------------------------------------------------------------------------------------


def attempt_for_reviewer(*, attempt_id: int, reviewer: User) -> Attempt:
    """A submitted attempt the user may label: a lead of its project, or an active member
    who is not the attempt's own rater."""
    attempt = Attempt.objects.select_related("project", "assignment").filter(pk=attempt_id).first()
    if attempt is None:
        raise NotFound("attempt not found")
    _require_reviewer(project=attempt.project, reviewer=reviewer)
    if attempt.rater_id == reviewer.pk:
        raise NotAllowed("another person reviews your own attempt", code="own_attempt")
    if attempt.assignment.status != AssignmentStatus.SUBMITTED:
        raise Conflict("the attempt is not labelled by its rater yet", code="not_submitted")
    return attempt


def _require_reviewer(*, project: Project, reviewer: User) -> None:
    if reviewer.is_staff:
        return
    membership = Membership.objects.filter(project=project, user=reviewer).first()
    if membership is None:
        raise NotFound("attempt not found")
    if membership.role == Role.ENGINEER:
        raise NotAllowed("reviews are by the project's raters and leads")
    if membership.status == MemberStatus.PAUSED:
        raise NotAllowed("a lead has paused your work on this project", code="paused")


def review_label(
    *,
    attempt_id: int,
    reviewer: User,
    succeeded: Any,
    category: Any,
    severity: Any,
    note: Any = "",
) -> tuple[Label, bool]:
    """A reviewer's label of an attempt; labelling again replaces their earlier label.
    Returns (label, changed): the same label again changes nothing."""
    attempt = attempt_for_reviewer(attempt_id=attempt_id, reviewer=reviewer)
    values = clean_label(
        project=attempt.project,
        succeeded=succeeded,
        category=category,
        severity=severity,
        note=note,
    )
    with transaction.atomic():
        label = Label.objects.select_for_update().filter(attempt=attempt, labeler=reviewer).first()
        if label is not None and _same_label(label, values):
            return label, False
        if label is None:
            label = Label.objects.create(
                attempt=attempt,
                project=attempt.project,
                labeler=reviewer,
                role=LabelRole.REVIEWER,
                **values,
            )
        else:
            for name, value in values.items():
                setattr(label, name, value)
            label.updated_at = timezone.now()
            label.save(update_fields=[*values, "updated_at"])
        transaction.on_commit(partial(_agreement_if_due, project_id=attempt.project_id))
    return label, True


def review_next(*, project: Project, reviewer: User) -> Attempt | None:
    """The submitted attempt the reviewer should label next: not their own, not labelled by
    them, fewest labels first, then oldest."""
    _require_reviewer(project=project, reviewer=reviewer)
    return (
        Attempt.objects.filter(project=project, assignment__status=AssignmentStatus.SUBMITTED)
        .exclude(rater=reviewer)
        .exclude(labels__labeler=reviewer)
        .annotate(n_labels=Count("labels"))
        .order_by("n_labels", "id")
        .first()
    )


def _agreement_if_due(*, project_id: int) -> None:
    from authoring.redteam.agreement_runs import agreement_run_request_if_labels_due

    agreement_run_request_if_labels_due(project_id=project_id)


def project_for_lead(*, user: User, project_id: int) -> Project:
    project = labeling_selectors.project_for_user(
        user=user, project_id=project_id, roles=labeling_selectors.LEAD_ROLES
    )
    if project.task_kind != TaskKind.RED_TEAM:
        raise InvalidInput("this project is not a red-team project", field="project")
    return project
