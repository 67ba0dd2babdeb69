"""A real HTTP server speaking the OpenAI-compatible chat completions API on 127.0.0.1.

Deterministic completions; told by the test (or by words in the prompt) to answer 429 with
Retry-After, 500, to time out, or to return malformed JSON; counts the requests in flight
at once. Used by the tests and by `bench/generation.py`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_WORDS = ("FAIL500", "FAIL429", "HANG", "EMPTY")


@dataclass
class ServerState:
    latency: float = 0.0
    faults: deque[str] = field(default_factory=deque)
    """One fault per coming request, in order: "429", "500", "hang", "malformed", "empty",
    "stream_error" (a streamed answer breaks off halfway with an error event)."""
    judge: Callable[[dict[str, Any]], str] | None = None
    """Given the request body, the judge's message content (when the request asks for JSON)."""
    hang_seconds: float = 5.0
    stream_delay: float = 0.0
    """Seconds between the pieces of a streamed answer (`"stream": true` requests)."""
    streams_open: int = 0
    max_streams_open: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    in_flight_by_model: dict[str, int] = field(default_factory=dict)
    max_in_flight_by_model: dict[str, int] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset_counts(self) -> None:
        with self.lock:
            self.max_in_flight = self.in_flight
            self.requests = 0
            self.bodies.clear()
            self.authorizations.clear()


def completion_text(body: dict[str, Any]) -> str:
    """The deterministic answer to a request: the model, the last message and a digest."""
    messages = body.get("messages") or []
    last = str(messages[-1].get("content", "")) if messages else ""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    return f"[{body.get('model')}] answer to: {last[:60]} ({digest})"


class Handler(BaseHTTPRequestHandler):
    server: FakeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        with state.lock:
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            state.requests += 1
            fault = state.faults.popleft() if state.faults else ""
            state.authorizations.append(self.headers.get("Authorization", ""))
        model = ""
        try:
            body = json.loads(raw or b"{}")
            model = str(body.get("model", ""))
            with state.lock:
                state.bodies.append(body)
                now = state.in_flight_by_model.get(model, 0) + 1
                state.in_flight_by_model[model] = now
                state.max_in_flight_by_model[model] = max(
                    state.max_in_flight_by_model.get(model, 0), now
                )
            self._answer(state, body, fault)
        finally:
            with state.lock:
                state.in_flight -= 1
                if model in state.in_flight_by_model:
                    state.in_flight_by_model[model] -= 1

    def _answer(self, state: ServerState, body: dict[str, Any], fault: str) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found"}})
            return
        text_of_request = json.dumps(body.get("messages", []))
        for word in FAULT_WORDS:
            if word in text_of_request and not fault:
                fault = {"FAIL500": "500", "FAIL429": "429", "HANG": "hang", "EMPTY": "empty"}[word]
        if fault == "hang":
            time.sleep(state.hang_seconds)
        elif state.latency:
            time.sleep(state.latency)
        if fault == "429":
            self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
            return
        if fault == "500":
            self._json(500, {"error": {"message": "the server broke"}})
            return
        if fault == "malformed":
            self._raw(200, b'{"id": "x", "choices": [')
            return
        if state.judge is not None and body.get("response_format"):
            content = state.judge(body)
        else:
            content = "" if fault == "empty" else completion_text(body)
        if body.get("stream"):
            self._stream(state, body, content, fault)
            return
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        self._json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake-model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content.split()),
                    "total_tokens": prompt_tokens + len(content.split()),
                },
            },
        )

    def _stream(
        self, state: ServerState, body: dict[str, Any], content: str, fault: str = ""
    ) -> None:
        """Server-sent events as OpenAI streams them: a chunk per word, then `[DONE]`."""
        with state.lock:
            state.streams_open += 1
            state.max_streams_open = max(state.max_streams_open, state.streams_open)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            pieces = [word + " " for word in content.split(" ")] if content else []
            for index, piece in enumerate(pieces):
                if fault == "stream_error" and index == max(1, len(pieces) // 2):
                    # The model fails mid-answer: an error event, as OpenAI sends one.
                    self._event({"error": {"message": "the model stopped mid-answer"}})
                    return
                last = index == len(pieces) - 1
                self._event(_chunk(body, piece.rstrip() if last else piece, None))
                if state.stream_delay:
                    time.sleep(state.stream_delay)
            self._event(_chunk(body, "", "stop"))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-stream
        finally:
            with state.lock:
                state.streams_open -= 1

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(data).encode(), headers)

    def _raw(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout)


def _chunk(body: dict[str, Any], piece: str, finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": finish_reason}],
    }


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = ServerState()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
