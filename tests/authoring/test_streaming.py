"""A model's reply streamed as server-sent events, against a real OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest

from authoring.streaming import CUT_SHORT, reply_events, sse_response
from labeling.rendering import render_markdown
from llm.client import CallFailed, EndpointConfig, chat, chat_stream

HOSTILE = "tell me <script>alert(1)</script> **now**"


def _config(fake_llm, **values) -> EndpointConfig:
    return EndpointConfig(base_url=fake_llm.base_url, model="m1", **values)


def test_the_stream_arrives_in_pieces_that_make_the_whole_reply(fake_llm):
    messages = [{"role": "user", "content": "explain tides"}]
    pieces = list(chat_stream(_config(fake_llm), messages))
    assert len(pieces) > 3
    whole = "".join(pieces)
    assert whole.startswith("[m1] answer to: explain tides (")
    assert whole.split(" (")[0] == chat(_config(fake_llm), messages).text.split(" (")[0]
    assert fake_llm.state.bodies[0]["stream"] is True


def test_a_failing_endpoint_raises_with_a_reason_free_of_the_key(fake_llm):
    fake_llm.state.faults.extend(["500"] * 3)
    config = _config(fake_llm, api_key="sk-very-secret", max_retries=0)
    with pytest.raises(CallFailed) as failed:
        list(chat_stream(config, [{"role": "user", "content": "x"}]))
    assert "500" in failed.value.reason
    assert "sk-very-secret" not in failed.value.reason


def test_events_give_pieces_then_the_stored_replys_sanitized_html(fake_llm):
    stored: list[tuple[str, str | None]] = []

    def finish(text: str, reason: str | None) -> str:
        stored.append((text, reason))
        return render_markdown(text)

    events = list(
        reply_events(_config(fake_llm), [{"role": "user", "content": HOSTILE}], finish=finish)
    )
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"} and len(names) > 3
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert stored == [(text, None)]
    html = events[-1][1]["html"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<strong>now</strong>" in html


def test_a_failure_is_an_event_with_the_reason_and_is_stored(fake_llm):
    fake_llm.state.faults.extend(["500"] * 3)
    stored: list[tuple[str, str | None]] = []

    def finish(text: str, reason: str | None) -> str:
        stored.append((text, reason))
        return "<p>nothing</p>"

    config = _config(fake_llm, max_retries=0)
    events = list(reply_events(config, [{"role": "user", "content": "x"}], finish=finish))
    assert [name for name, _ in events] == ["failed"]
    assert "500" in events[0][1]["detail"]
    assert stored == [("", events[0][1]["detail"])]


def test_a_rater_who_leaves_mid_stream_still_gets_the_partial_reply_stored(fake_llm):
    stored: list[tuple[str, str | None]] = []

    def finish(text: str, reason: str | None) -> str:
        stored.append((text, reason))
        return ""

    events = reply_events(_config(fake_llm), [{"role": "user", "content": "a b c"}], finish=finish)
    first = next(events)
    second = next(events)
    events.close()
    assert stored == [(first[1]["text"] + second[1]["text"], CUT_SHORT)]


def test_the_response_is_an_event_stream():
    response = sse_response(iter([("delta", {"text": "hé"}), ("done", {"html": "<p>x</p>"})]))
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    body = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    blocks = [block for block in body.split("\n\n") if block]
    assert blocks[0].splitlines() == ["event: delta", 'data: {"text": "h\\u00e9"}']
    assert json.loads(blocks[1].splitlines()[1].removeprefix("data: ")) == {"html": "<p>x</p>"}
