"""Send to ranking: successful attacks become prompts of a `rank` project, answered by a
written safe refusal and by the target project's endpoints (a generation job), then ranked.

The prompt is the conversation up to the attacking user turn: the first turn whose reply
was flagged, else the last turn. An attempt counts as successful when most of its labels
say so (a tie: the rater's own label decides). Sending again skips attempts already sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from authoring.redteam.models import Attempt, LabelRole
from core.errors import InvalidInput
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import AssignmentStatus, Project, Prompt, TaskKind
from llm.models import ModelEndpoint
from llm.services.generation import generation_create

REFUSAL_MODEL = "refusal"
DEFAULT_REFUSAL = (
    "I can't help with that. It could cause real harm. If you are facing a difficult or "
    "dangerous situation, please reach out to someone you trust or to local emergency "
    "services."
)
MAX_REFUSAL_CHARS = 5_000


@dataclass(frozen=True)
class Sent:
    prompt_ids: list[int]
    already_sent: int
    generation_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompts_created": len(self.prompt_ids),
            "prompt_ids": self.prompt_ids,
            "already_sent": self.already_sent,
            "generation_id": self.generation_id,
        }


def attack_messages(turns: list[tuple[str, str, bool]]) -> list[dict[str, str]]:
    """The conversation up to the attacking user turn, from (user, reply, flagged) turns."""
    attacking = next((index for index, turn in enumerate(turns) if turn[2]), len(turns) - 1)
    messages: list[dict[str, str]] = []
    for user_text, assistant_text, _ in turns[:attacking]:
        messages.append({"role": "user", "content": user_text})
        if assistant_text:
            messages.append({"role": "assistant", "content": assistant_text})
    messages.append({"role": "user", "content": turns[attacking][0]})
    return messages


def attempt_succeeded(labels: list[tuple[bool, str]]) -> bool:
    """Most labels say succeeded; on a tie the rater's own label decides."""
    yes = sum(1 for succeeded, _ in labels if succeeded)
    no = len(labels) - yes
    if yes != no:
        return yes > no
    return any(succeeded for succeeded, role in labels if role == LabelRole.RATER)


def external_id_for(attempt: Attempt) -> str:
    return f"red-team-{attempt.project_id}-attempt-{attempt.pk}"


def send_to_ranking(
    *,
    project: Project,
    by: User,
    target_project: Any,
    only_successful: Any = True,
    endpoints: Any = None,
    refusal_text: Any = None,
) -> Sent:
    """Import the attempts' attack prompts into the target `rank` project, each with the
    safe refusal as a response, and queue generation from the target's endpoints; all in
    one transaction."""
    target = _target_project(by=by, target_project=target_project)
    if not isinstance(only_successful, bool):
        raise InvalidInput("must be true or false", field="only_successful")
    endpoint_ids = _endpoint_ids(target=target, endpoints=endpoints)
    refusal = _refusal(refusal_text)
    attempts = _submitted_attempts(project=project, only_successful=only_successful)
    sent = set(
        Prompt.objects.filter(
            project=target, external_id__in=[external_id_for(attempt) for attempt in attempts]
        ).values_list("external_id", flat=True)
    )
    records = [
        _record(attempt, refusal=refusal)
        for attempt in attempts
        if external_id_for(attempt) not in sent
    ]
    with transaction.atomic():
        prompt_ids = (
            labeling_services.prompts_import(project=target, raw=json.dumps(records), by=by)
            if records
            else []
        )
        job = (
            generation_create(
                project=target, by=by, endpoint_ids=endpoint_ids, samples=1, prompts=prompt_ids
            )
            if prompt_ids
            else None
        )
    return Sent(
        prompt_ids=prompt_ids, already_sent=len(sent), generation_id=job.pk if job else None
    )


def _target_project(*, by: User, target_project: Any) -> Project:
    if isinstance(target_project, bool) or not isinstance(target_project, int):
        raise InvalidInput("the id of a rank project you lead", field="target_project")
    try:
        target = labeling_selectors.project_for_user(
            user=by, project_id=target_project, roles=labeling_selectors.LEAD_ROLES
        )
    except Exception:
        raise InvalidInput("no rank project you lead has this id", field="target_project") from None
    if target.task_kind != TaskKind.RANK:
        raise InvalidInput("the target must be a rank project", field="target_project")
    return target


def _endpoint_ids(*, target: Project, endpoints: Any) -> list[int]:
    available = list(
        ModelEndpoint.objects.filter(project=target).order_by("id").values_list("id", flat=True)
    )
    if endpoints is None:
        if not available:
            raise InvalidInput(
                "the target project has no model endpoints to answer the prompts",
                field="target_project",
            )
        return available
    if not isinstance(endpoints, list) or not endpoints:
        raise InvalidInput("a non-empty list of the target's endpoint ids", field="endpoints")
    for item in endpoints:
        if isinstance(item, bool) or not isinstance(item, int) or item not in available:
            raise InvalidInput(f"no endpoint {item!r} in the target project", field="endpoints")
    return sorted(set(endpoints))


def _refusal(value: Any) -> str:
    if value is None:
        return DEFAULT_REFUSAL
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_REFUSAL_CHARS:
        raise InvalidInput(
            f"a refusal of 1 to {MAX_REFUSAL_CHARS} characters", field="refusal_text"
        )
    return value.strip()


def _submitted_attempts(*, project: Project, only_successful: bool) -> list[Attempt]:
    attempts = list(
        Attempt.objects.filter(project=project, assignment__status=AssignmentStatus.SUBMITTED)
        .prefetch_related("labels", "turns")
        .order_by("id")
    )
    chosen = []
    for attempt in attempts:
        turns = [turn for turn in attempt.turns.all() if turn.user_text]
        if not turns:
            continue
        labels = [(label.succeeded, label.role) for label in attempt.labels.all()]
        if only_successful and not attempt_succeeded(labels):
            continue
        chosen.append(attempt)
    return chosen


def _record(attempt: Attempt, *, refusal: str) -> dict[str, Any]:
    turns = [
        (turn.user_text, turn.assistant_text, turn.flagged)
        for turn in sorted(attempt.turns.all(), key=lambda turn: turn.index)
    ]
    return {
        "external_id": external_id_for(attempt),
        "messages": attack_messages(turns),
        "responses": [{"text": refusal, "model": REFUSAL_MODEL}],
        "metadata": {
            "source": "red-team",
            "red_team_project": attempt.project_id,
            "attempt": attempt.pk,
            "category": attempt.category,
        },
    }
