"""Red-team reads: the rater's task payload, turns and attempts as the API shows them."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse

from authoring.redteam.models import Attempt, Label, Turn
from authoring.redteam.options import red_team_options
from labeling.models import Project
from labeling.rendering import render_markdown
from rankings.runs import selectors as run_selectors

ATTEMPTS_PAGE = 100


def stream_url(turn: Turn, *, assignment_id: int) -> str:
    return reverse(
        "api-red-team-stream", kwargs={"assignment_id": assignment_id, "index": turn.index}
    )


def turn_payload(turn: Turn, *, assignment_id: int, with_model: bool = False) -> dict[str, Any]:
    """A turn for the API: texts raw and rendered (sanitized), the stream to read its reply."""
    payload: dict[str, Any] = {
        "index": turn.index,
        "user_text": turn.user_text,
        "user_html": render_markdown(turn.user_text),
        "assistant_text": turn.assistant_text,
        "assistant_html": render_markdown(turn.assistant_text),
        "failure": turn.failure,
        "finished": turn.finished_at is not None,
        "flagged": turn.flagged,
        "flag_note": turn.flag_note,
        "stream_url": stream_url(turn, assignment_id=assignment_id),
        "flag_url": reverse(
            "api-red-team-flag", kwargs={"assignment_id": assignment_id, "index": turn.index}
        ),
    }
    if with_model:
        payload["model"] = turn.model_name
    return payload


def red_team_task_payload(attempt: Attempt) -> dict[str, Any]:
    """The `red_team` kind's next-task payload (the view adds `kind`)."""
    assignment = attempt.assignment
    options = red_team_options(attempt.project)
    turns = list(attempt.turns.order_by("index"))
    return {
        "assignment_id": assignment.pk,
        "attempt_id": attempt.pk,
        "expires_at": assignment.expires_at,
        "brief": {
            "category": attempt.category,
            "goal": attempt.goal,
            "free_choice": attempt.free_choice,
        },
        "categories": list(options.categories),
        "max_turns": options.max_turns,
        "turns": [turn_payload(turn, assignment_id=assignment.pk) for turn in turns],
    }


def label_payload(label: Label) -> dict[str, Any]:
    return {
        "id": label.pk,
        "attempt_id": label.attempt_id,
        "labeler": label.labeler.username,
        "role": label.role,
        "succeeded": label.succeeded,
        "category": label.category,
        "severity": label.severity,
        "note": label.note,
        "updated_at": label.updated_at,
    }


def attempt_payload(attempt: Attempt, *, with_turns: bool = True) -> dict[str, Any]:
    """An attempt as a lead or reviewer sees it: brief, model, transcript and labels."""
    payload: dict[str, Any] = {
        "id": attempt.pk,
        "assignment_id": attempt.assignment_id,
        "prompt_id": attempt.prompt_id,
        "rater": attempt.rater.username,
        "status": attempt.assignment.status,
        "brief": {
            "category": attempt.category,
            "goal": attempt.goal,
            "free_choice": attempt.free_choice,
        },
        "model": attempt.endpoint.model if attempt.endpoint else None,
        "labels": [label_payload(label) for label in attempt.labels.all()],
    }
    if with_turns:
        payload["turns"] = [
            turn_payload(turn, assignment_id=attempt.assignment_id, with_model=True)
            for turn in attempt.turns.all()
        ]
    return payload


def attempts_for_project(*, project: Project) -> QuerySet[Attempt]:
    return (
        Attempt.objects.filter(project=project)
        .select_related("rater", "assignment", "endpoint")
        .prefetch_related("labels__labeler", "turns")
        .order_by("-id")
    )


def red_team_agreement_latest(*, project: Project) -> dict[str, Any] | None:
    """The red-team numbers of the newest finished agreement run, with when it ran."""
    run = run_selectors.latest_agreement_run(project=project)
    if run is None:
        return None
    numbers = (run.metrics or {}).get("extensions", {}).get("red_team")
    if numbers is None:
        return None
    return {**numbers, "run_id": run.pk, "finished_at": run.finished_at}
