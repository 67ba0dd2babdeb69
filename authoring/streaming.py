"""A model's reply streamed to the rater's page as server-sent events, then stored.

`reply_events` calls the endpoint with `llm.client.chat_stream` and yields `delta` events
with each piece of text as it arrives; when the stream ends it hands the whole text (or
what arrived before a failure, with the reason) to the caller's `finish`, which stores it
and returns the sanitized HTML the page swaps in (`done`, or `failed` with the reason).
A rater who leaves mid-stream still gets what arrived stored, marked as cut short.

Under gunicorn's threaded workers (`ranklab serve`) an open stream holds one thread while
it waits on the endpoint, not a process, so the rater loop keeps its other threads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable
from typing import Any

from django.http import StreamingHttpResponse

from llm.client import CallFailed, EndpointConfig, chat_stream

CUT_SHORT = "the stream was closed before the reply was complete"

Finish = Callable[[str, str | None], str]
"""(text, failure reason or None) → the stored reply's sanitized HTML."""

Event = tuple[str, dict[str, Any]]


def reply_events(
    config: EndpointConfig, messages: list[dict[str, str]], *, finish: Finish
) -> Generator[Event, None, None]:
    pieces: list[str] = []
    finished = False
    try:
        for piece in chat_stream(config, messages):
            pieces.append(piece)
            yield "delta", {"text": piece}
        finished = True
        yield "done", {"html": finish("".join(pieces), None)}
    except CallFailed as failure:
        finished = True
        yield "failed", {"detail": failure.reason, "html": finish("".join(pieces), failure.reason)}
    finally:
        if not finished:  # the rater's connection closed mid-stream
            finish("".join(pieces), CUT_SHORT)


def sse_response(events: Iterable[Event]) -> StreamingHttpResponse:
    """`text/event-stream` of the events; proxies are told not to buffer it."""
    response = StreamingHttpResponse(
        (_sse(name, data) for name, data in events), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
