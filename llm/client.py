"""Calls to OpenAI-compatible chat completions endpoints through the official `openai`
client: its retries (exponential backoff with jitter on 408, 409, 429 and 5xx, honouring
`Retry-After`), its timeouts, and the token usage the server reports.

No Django models here: an `EndpointConfig` (with the plain key, in memory only) in, a
`Completion` or a `CallFailed` with a reason free of the key out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from llm.addresses import base_url_refusal
from llm.crypto import scrubbed

if TYPE_CHECKING:
    import openai

REASON_CHARS = 500
NO_KEY = "no-key"
"""Sent when the endpoint has no key (local servers ignore it; the client needs one)."""


@dataclass(frozen=True)
class EndpointConfig:
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 1024
    system_prompt: str = ""
    timeout_seconds: float = 120.0
    max_retries: int = 3

    def parameters(self) -> dict[str, Any]:
        """The generation parameters, as recorded with each response."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "system_prompt": self.system_prompt,
        }


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    finish_reason: str = ""


class CallFailed(Exception):
    """A call that failed after the client's retries; `reason` never holds the key."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_clients: dict[tuple[str, str, float, int], openai.OpenAI] = {}
_clients_lock = threading.Lock()


def _client(config: EndpointConfig) -> openai.OpenAI:
    """One client (one connection pool) per endpoint configuration in this process; the
    client is thread-safe and reused by every call."""
    key = (config.base_url, config.api_key, config.timeout_seconds, config.max_retries)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            # Checked once per process and configuration, with the host resolved here.
            refusal = base_url_refusal(config.base_url)
            if refusal:
                raise CallFailed(f"base_url refused: {refusal}")
            import openai  # at first call: its import takes a second, paid by every process

            client = openai.OpenAI(
                base_url=config.base_url,
                api_key=config.api_key or NO_KEY,
                timeout=config.timeout_seconds,
                max_retries=config.max_retries,
            )
            _clients[key] = client
        return client


def with_system_prompt(config: EndpointConfig, messages: list[dict[str, str]]) -> list[dict]:
    """The conversation sent: the endpoint's system prompt first, unless it has its own."""
    if config.system_prompt and not (messages and messages[0].get("role") == "system"):
        return [{"role": "system", "content": config.system_prompt}, *messages]
    return list(messages)


def chat(
    config: EndpointConfig,
    messages: list[dict[str, str]],
    *,
    response_format: dict[str, Any] | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> Completion:
    """One chat completion (after the client's retries), or `CallFailed` with the reason."""
    extra: dict[str, Any] = {}
    if response_format is not None:
        extra["response_format"] = response_format
    if seed is not None:
        extra["seed"] = seed
    started = time.perf_counter()
    with _call_failures(config):
        result = _client(config).chat.completions.create(
            model=config.model,
            messages=with_system_prompt(config, messages),  # type: ignore[arg-type]
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=max_tokens or config.max_tokens,
            **extra,
        )
    latency_ms = (time.perf_counter() - started) * 1000
    choices = getattr(result, "choices", None) or []
    text = (choices[0].message.content or "") if choices else ""
    if not text.strip():
        raise CallFailed("the endpoint returned an empty completion")
    usage = getattr(result, "usage", None)
    return Completion(
        text=text,
        model=str(getattr(result, "model", "") or config.model),
        tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
        tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
        latency_ms=latency_ms,
        finish_reason=str(choices[0].finish_reason or ""),
    )


def chat_stream(config: EndpointConfig, messages: list[dict[str, str]]) -> Iterator[str]:
    """One chat completion streamed: its text in pieces as the endpoint generates them.

    A failure before or during the stream raises `CallFailed` (its reason free of the key);
    the caller keeps what arrived so far. An answer with no text at all is a failure too.
    """
    received = False
    with _call_failures(config):
        stream = cast(
            "openai.Stream[Any]",
            _client(config).chat.completions.create(
                model=config.model,
                messages=with_system_prompt(config, messages),  # type: ignore[arg-type]
                temperature=config.temperature,
                top_p=config.top_p,
                max_tokens=config.max_tokens,
                stream=True,
            ),
        )
        with stream:
            for chunk in stream:
                choices = getattr(chunk, "choices", None) or []
                piece = (choices[0].delta.content or "") if choices else ""
                if piece:
                    received = True
                    yield piece
    if not received:
        raise CallFailed("the endpoint returned an empty completion")


@contextmanager
def _call_failures(config: EndpointConfig) -> Iterator[None]:
    """The client's errors as `CallFailed` with a reason that never holds the key."""
    import openai

    try:
        yield
    except openai.APIStatusError as error:
        raise CallFailed(_reason(config, f"HTTP {error.status_code}: {error.message}")) from None
    except openai.APITimeoutError:
        raise CallFailed(f"timed out after {config.timeout_seconds:g} s") from None
    except openai.APIConnectionError as error:
        raise CallFailed(_reason(config, f"connection failed: {error}")) from None
    except openai.OpenAIError as error:
        raise CallFailed(_reason(config, f"{type(error).__name__}: {error}")) from None


def _reason(config: EndpointConfig, text: str) -> str:
    return scrubbed(text, config.api_key)[:REASON_CHARS]
