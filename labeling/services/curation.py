"""A lead's changes to prompts after import: archive and restore, reopen for more raters,
and editing responses while nobody has ranked them yet. Gold stays in `prompts`."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from labeling.importing import RecordError, ResponseRecord, validate_record
from labeling.models import (
    Assignment,
    AssignmentStatus,
    AuditAction,
    Project,
    Prompt,
    Response,
)
from labeling.services.audit import audit_record
from labeling.services.leases import occupied_assignments

BULK_LIMIT = 1000
EXTRA_RATERS_LIMIT = 50


def _project_prompts(*, project: Project, prompt_ids: Iterable[int]) -> QuerySet[Prompt]:
    ids = sorted(set(prompt_ids))
    if not ids:
        raise InvalidInput("choose at least one prompt", field="prompt_ids")
    if len(ids) > BULK_LIMIT:
        raise InvalidInput(
            f"at most {BULK_LIMIT} prompts at a time, not {len(ids)}", field="prompt_ids"
        )
    found = Prompt.objects.filter(project=project, pk__in=ids)
    missing = set(ids) - set(found.values_list("pk", flat=True))
    if missing:
        raise NotFound(
            f"no prompt {min(missing)} in this project", field="prompt_ids", code="not_found"
        )
    return found


def _ids_target(ids: list[int]) -> str:
    shown = ", ".join(str(pk) for pk in ids[:10])
    return f"{len(ids)} prompts ({shown}{', …' if len(ids) > 10 else ''})"


@transaction.atomic
def prompts_archive(
    *, project: Project, prompt_ids: Iterable[int], archived: bool = True, by: User | None = None
) -> list[int]:
    """Archive prompts (out of the queue, and by default out of exports) or restore them.

    Nothing is deleted: rankings stay, and restoring puts the prompt back as it was.
    Returns the ids of the prompts that changed.
    """
    prompts = _project_prompts(project=project, prompt_ids=prompt_ids)
    to_change = prompts.filter(archived_at__isnull=archived)
    changed_ids = list(to_change.order_by("pk").values_list("pk", flat=True))
    to_change.update(archived_at=timezone.now() if archived else None)
    if changed_ids:
        audit_record(
            action=AuditAction.PROMPTS_ARCHIVE if archived else AuditAction.PROMPTS_UNARCHIVE,
            actor=by,
            project=project,
            target=_ids_target(changed_ids),
            changes={"prompt_ids": changed_ids},
        )
    return changed_ids


@transaction.atomic
def prompts_reopen(
    *, project: Project, prompt_ids: Iterable[int], by: User | None = None, reason: str = ""
) -> list[int]:
    """Ask for one more rater on each prompt (the adaptive-overlap mechanism, by hand).

    Gold and archived prompts are left as they are: gold has no overlap and archived prompts
    are out of the queue. Returns the ids of the prompts reopened.
    """
    prompts = _project_prompts(project=project, prompt_ids=prompt_ids)
    eligible = prompts.filter(
        is_gold=False, archived_at__isnull=True, extra_raters__lt=EXTRA_RATERS_LIMIT
    )
    changed_ids = list(eligible.order_by("pk").values_list("pk", flat=True))
    who = by.get_username() if by is not None else "the system"
    why = (reason.strip() or f"reopened by {who}")[:300]
    eligible.update(extra_raters=F("extra_raters") + 1, is_complete=False, extra_reason=why)
    if changed_ids:
        audit_record(
            action=AuditAction.PROMPTS_REOPEN,
            actor=by,
            project=project,
            target=_ids_target(changed_ids),
            changes={"prompt_ids": changed_ids, "reason": why},
        )
    return changed_ids


# Conversation and responses ----------------------------------------------------------------


def prompt_has_work(*, prompt: Prompt) -> bool:
    """Whether a rater has ranked the prompt or holds it now (a live or reopened lease)."""
    return Assignment.objects.filter(
        Q(prompt=prompt) & occupied_assignments(now=timezone.now())
    ).exists()


def _edit_refusal(prompt: Prompt) -> str | None:
    if prompt.is_gold:
        return "this prompt is gold: remove its gold ranking before changing its responses"
    if prompt_has_work(prompt=prompt):
        return "this prompt has rankings (or a rater is working on it): its responses are fixed"
    return None


def prompt_edit_refusal(*, prompt: Prompt) -> str | None:
    """Why the prompt's conversation and responses can't be changed now, or None."""
    return _edit_refusal(prompt)


@transaction.atomic
def prompt_content_update(
    *, prompt: Prompt, changes: dict[str, Any], by: User | None = None
) -> Prompt:
    """Change a prompt's conversation (`prompt` or `messages`) and/or its `responses`,
    while no rater has ranked it: 409 otherwise.

    `responses` is the whole new list in import order, shaped as in an import; responses
    keep their ids position by position, extra ones are removed and new ones added.
    """
    unknown = sorted(set(changes) - {"prompt", "messages", "responses"})
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field", field=unknown[0])
    if not changes:
        raise InvalidInput("give prompt, messages or responses to change", field="responses")
    prompt = Prompt.objects.select_for_update(no_key=True).get(pk=prompt.pk)
    refusal = _edit_refusal(prompt)
    if refusal:
        raise Conflict(refusal, code="has_rankings", field="responses")
    current = list(prompt.responses.order_by("position"))
    record = _validated(prompt=prompt, changes=changes, current=current)
    before = {
        "messages": prompt.messages,
        "responses": [_response_summary(r.text, r.model_name) for r in current],
    }
    if "prompt" in changes or "messages" in changes:
        prompt.messages = record.messages
        prompt.save(update_fields=["messages"])
    if "responses" in changes:
        _responses_replace(prompt=prompt, current=current, wanted=record.responses)
    audit_record(
        action=AuditAction.RESPONSES_EDIT,
        actor=by,
        project=prompt.project,
        target=f"prompt {prompt.pk}" + (f" ({prompt.external_id})" if prompt.external_id else ""),
        changes={
            "messages": {"old": before["messages"], "new": prompt.messages},
            "responses": {
                "old": before["responses"],
                "new": [_response_summary(r.text, r.model) for r in record.responses],
            },
        },
    )
    return prompt


def _response_summary(text: str, model: str) -> str:
    short = text if len(text) <= 60 else text[:59] + "…"
    return f"{model or '?'}: {short}"


def _validated(*, prompt: Prompt, changes: dict[str, Any], current: list[Response]) -> Any:
    """The import's own validation, on the prompt as it would become."""
    value: dict[str, Any] = {}
    if "prompt" in changes:
        value["prompt"] = changes["prompt"]
    elif "messages" in changes:
        value["messages"] = changes["messages"]
    else:
        value["messages"] = prompt.messages
    value["responses"] = (
        changes["responses"]
        if "responses" in changes
        else [
            {"text": r.text, "model": r.model_name, "metadata": r.metadata, "external_id": ""}
            for r in current
        ]
    )
    try:
        return validate_record(1, value)
    except RecordError as error:
        # Import errors name a line; an edit has only the one record.
        raise InvalidInput(error.message.removeprefix("line 1: "), field=error.field) from None


def _responses_replace(
    *, prompt: Prompt, current: list[Response], wanted: list[ResponseRecord]
) -> None:
    kept = current[: len(wanted)]
    for response, item in zip(kept, wanted, strict=False):
        response.text, response.model_name = item.text, item.model
        response.metadata, response.external_id = item.metadata, item.external_id
    Response.objects.bulk_update(kept, ["text", "model_name", "metadata", "external_id"])
    Response.objects.filter(pk__in=[r.pk for r in current[len(wanted) :]]).delete()
    Response.objects.bulk_create(
        Response(
            prompt=prompt,
            position=position,
            text=item.text,
            model_name=item.model,
            metadata=item.metadata,
            external_id=item.external_id,
        )
        for position, item in enumerate(wanted)
        if position >= len(current)
    )
    Prompt.objects.filter(pk=prompt.pk).update(n_responses=len(wanted))
    _refresh_stale_shown_orders(prompt=prompt)


def _refresh_stale_shown_orders(*, prompt: Prompt) -> None:
    """Expired leases are renewed as they were (see `leases._lease_prompt`): give them the
    new responses, reshuffled, so a renewed task never shows a removed one."""
    ids = list(prompt.responses.order_by("position").values_list("pk", flat=True))
    stale = list(Assignment.objects.filter(prompt=prompt, status=AssignmentStatus.LEASED))
    rng = random.SystemRandom()
    for assignment in stale:
        order = ids[:]
        rng.shuffle(order)
        assignment.shown_order = order
    Assignment.objects.bulk_update(stale, ["shown_order"])
