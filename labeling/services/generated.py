"""Responses added to a prompt after its import: generation fills prompts that were imported
with fewer responses than wanted (`llm/` calls this; labeling never imports it back)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.db.models import Max

from core.errors import Conflict, NotFound
from labeling.importing import ResponseRecord
from labeling.models import MAX_RESPONSES, Assignment, Prompt, Response


@transaction.atomic
def prompt_responses_append(
    *, prompt_id: int, responses: Sequence[ResponseRecord]
) -> list[Response]:
    """Append responses to a prompt no rater has been given yet, after its last position.

    The prompt row is locked first, so two workers filling the same prompt (or a rater's
    lease, which locks it too) take turns; a prompt already served keeps its responses as
    they were shown (409), and a prompt never grows past `MAX_RESPONSES` (409).
    """
    prompt = Prompt.objects.select_for_update(no_key=True).filter(pk=prompt_id).first()
    if prompt is None:
        raise NotFound("prompt not found", field="prompt")
    if Assignment.objects.filter(prompt_id=prompt_id).exists():
        raise Conflict(
            "the prompt was already served to raters; its responses stay as they were shown",
            code="prompt_served",
        )
    last = prompt.responses.aggregate(last=Max("position"))["last"]
    start = 0 if last is None else last + 1
    if start + len(responses) > MAX_RESPONSES:
        raise Conflict(
            f"the prompt would have more than {MAX_RESPONSES} responses", code="prompt_full"
        )
    created = Response.objects.bulk_create(
        Response(
            prompt_id=prompt_id,
            position=start + offset,
            external_id=item.external_id,
            text=item.text,
            model_name=item.model,
            metadata=item.metadata,
        )
        for offset, item in enumerate(responses)
    )
    Prompt.objects.filter(pk=prompt_id).update(n_responses=start + len(responses))
    return created
