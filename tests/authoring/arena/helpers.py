"""Plain helpers (not fixtures) shared by these tests."""

from __future__ import annotations

import json


def stream_text(response) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a server-sent events response."""
    body = b"".join(response.streaming_content).decode()
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events
