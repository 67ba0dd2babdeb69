"""Storing what a generation chunk got back: each prompt's new responses at once, and
every call's outcome on its `Generation` row."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core.errors import Conflict
from labeling.importing import ResponseRecord
from labeling.services.generated import prompt_responses_append
from llm.client import CallFailed, Completion
from llm.models import CallStatus, Generation, GenerationJob


def store_prompts(
    job: GenerationJob, results: dict[int, list[tuple[Generation, Completion | CallFailed]]]
) -> int:
    """Store each prompt's new responses at once (so a rater never sees a prompt half
    filled) and record every call's outcome, in one transaction for the batch; calls another
    worker stored meanwhile are dropped."""
    now = timezone.now()
    with transaction.atomic():
        still_pending = set(
            Generation.objects.select_for_update()
            .filter(
                pk__in=[call.pk for outcomes in results.values() for call, _ in outcomes],
                job=job,
                status=CallStatus.PENDING,
            )
            .values_list("pk", flat=True)
        )
        changed: list[Generation] = []
        for prompt_id, outcomes in results.items():
            kept = [(call, outcome) for call, outcome in outcomes if call.pk in still_pending]
            changed += _store_prompt(job, prompt_id, kept, now=now)
        Generation.objects.bulk_update(
            changed,
            ["status", "response", "error", "tokens_in", "tokens_out", "latency_ms", "updated_at"],
        )
    return len(changed)


def _store_prompt(
    job: GenerationJob,
    prompt_id: int,
    outcomes: list[tuple[Generation, Completion | CallFailed]],
    *,
    now: Any,
) -> list[Generation]:
    """One prompt's responses, in (endpoint, sample) order rather than the order the answers
    came back in; its calls with their outcome set, to be saved."""
    outcomes = sorted(outcomes, key=lambda item: (item[0].endpoint_id, item[0].sample))
    succeeded = [(call, o) for call, o in outcomes if isinstance(o, Completion)]
    failed = [(call, o.reason) for call, o in outcomes if isinstance(o, CallFailed)]
    if succeeded:
        try:
            responses = prompt_responses_append(
                prompt_id=prompt_id,
                responses=[_response_record(job, call, o) for call, o in succeeded],
            )
        except Conflict as refusal:
            failed += [(call, refusal.message) for call, _ in succeeded]
            succeeded, responses = [], []
        for (call, completion), response in zip(succeeded, responses, strict=True):
            call.status, call.response, call.error = CallStatus.DONE, response, ""
            call.tokens_in, call.tokens_out = completion.tokens_in, completion.tokens_out
            call.latency_ms, call.updated_at = completion.latency_ms, now
    for call, reason in failed:
        call.status, call.error, call.updated_at = CallStatus.FAILED, reason[:500], now
    return [call for call, _ in outcomes]


def _response_record(
    job: GenerationJob, call: Generation, completion: Completion
) -> ResponseRecord:
    endpoint = call.endpoint
    return ResponseRecord(
        text=completion.text,
        model=endpoint.name,
        metadata={
            "generation": {
                "job": job.pk,
                "endpoint_id": endpoint.pk,
                "endpoint": endpoint.name,
                "model": completion.model,
                "sample": call.sample,
                "parameters": {
                    "temperature": endpoint.temperature,
                    "top_p": endpoint.top_p,
                    "max_tokens": endpoint.max_tokens,
                    "system_prompt": endpoint.system_prompt,
                },
                "latency_ms": round(completion.latency_ms, 1),
                "tokens_in": completion.tokens_in,
                "tokens_out": completion.tokens_out,
                "finish_reason": completion.finish_reason,
            }
        },
    )
