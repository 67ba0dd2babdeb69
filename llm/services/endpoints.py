"""Model endpoints: create, change, delete, test one; the plain key only on its way out to
the endpoint."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from core.errors import InvalidInput, NotFound
from labeling.models import Project
from llm.addresses import base_url_refusal
from llm.client import CallFailed, EndpointConfig, chat
from llm.crypto import secret_decrypt, secret_encrypt
from llm.models import ModelEndpoint

EDITABLE_FIELDS = (
    "name",
    "base_url",
    "model",
    "temperature",
    "top_p",
    "max_tokens",
    "system_prompt",
    "concurrency",
    "timeout_seconds",
    "max_retries",
)
TEST_MESSAGES = [{"role": "user", "content": "Reply with the single word: ok"}]


def endpoint_config(endpoint: ModelEndpoint) -> EndpointConfig:
    """What the client needs to call the endpoint, with the key decrypted (memory only)."""
    return EndpointConfig(
        base_url=endpoint.base_url,
        model=endpoint.model,
        api_key=secret_decrypt(endpoint.api_key_encrypted),
        temperature=endpoint.temperature,
        top_p=endpoint.top_p,
        max_tokens=endpoint.max_tokens,
        system_prompt=endpoint.system_prompt,
        timeout_seconds=endpoint.timeout_seconds,
        max_retries=endpoint.max_retries,
    )


def endpoint_for_project(*, project: Project, endpoint_id: int) -> ModelEndpoint:
    endpoint = ModelEndpoint.objects.filter(project=project, pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("endpoint not found", field="endpoint")
    return endpoint


def endpoint_create(*, project: Project, values: dict[str, Any]) -> ModelEndpoint:
    """A new endpoint from validated values; `api_key` (optional) is stored encrypted."""
    endpoint = ModelEndpoint(project=project)
    return _save(endpoint, values)


def endpoint_update(*, endpoint: ModelEndpoint, values: dict[str, Any]) -> ModelEndpoint:
    """Change the given fields; `api_key` replaces the key ("" removes it), absent keeps it."""
    return _save(endpoint, values)


def _save(endpoint: ModelEndpoint, values: dict[str, Any]) -> ModelEndpoint:
    for name in EDITABLE_FIELDS:
        if name in values:
            setattr(endpoint, name, values[name])
    refusal = base_url_refusal(endpoint.base_url)
    if refusal:
        raise InvalidInput(refusal, field="base_url")
    if "api_key" in values:
        endpoint.api_key_encrypted = secret_encrypt(values["api_key"] or "")
    try:
        with transaction.atomic():
            endpoint.save()
    except IntegrityError:
        raise InvalidInput(
            f"an endpoint named {endpoint.name!r} already exists in this project", field="name"
        ) from None
    return endpoint


def endpoint_delete(*, endpoint: ModelEndpoint) -> None:
    """Remove the endpoint and its call records; the responses it generated stay."""
    endpoint.delete()


def endpoint_test(*, endpoint: ModelEndpoint) -> dict[str, Any]:
    """One short call: `{ok, latency_ms, model, reply}` or `{ok: false, error}`."""
    config = endpoint_config(endpoint)
    try:
        completion = chat(config, TEST_MESSAGES, max_tokens=16)
    except CallFailed as failure:
        return {"ok": False, "error": failure.reason}
    return {
        "ok": True,
        "latency_ms": round(completion.latency_ms, 1),
        "model": completion.model,
        "reply": completion.text[:200],
        "tokens_in": completion.tokens_in,
        "tokens_out": completion.tokens_out,
    }
