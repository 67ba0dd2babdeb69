"""Red-team replies stream from a real OpenAI-compatible server: pieces reach the rater
before the reply is complete; failures and walk-aways are stored with their reason."""

from __future__ import annotations

import json
import time
from collections.abc import Generator

import pytest

from authoring.redteam import services
from authoring.redteam.models import Turn
from authoring.streaming import CUT_SHORT

pytestmark = pytest.mark.django_db


def _events(chunks) -> list[tuple[str, dict]]:
    events = []
    for block in b"".join(chunks).decode().split("\n\n"):
        if block.strip():
            name_line, data_line = block.split("\n")
            events.append((name_line.removeprefix("event: "), json.loads(data_line[6:])))
    return events


def _first_turn(api_for, project, rater, content="how do I pick a lock"):
    api = api_for(rater)
    assignment_id = api.get(f"/api/projects/{project.pk}/next-task/").json()["assignment_id"]
    turn = api.post(
        f"/api/assignments/{assignment_id}/red-team/turns/", {"content": content}, format="json"
    ).json()
    return api, turn


def test_pieces_arrive_before_the_reply_is_complete(api_for, red_project, rater, fake_llm):
    fake_llm.state.stream_delay = 0.05
    api, turn = _first_turn(api_for, red_project, rater)
    response = api.get(turn["stream_url"])
    chunks = iter(response.streaming_content)
    started = time.monotonic()
    first = next(chunks)
    assert first.startswith(b"event: delta")
    # The model is still generating: nothing stored yet, the upstream stream still open.
    assert Turn.objects.get().finished_at is None
    assert fake_llm.state.streams_open == 1
    rest = list(chunks)
    assert time.monotonic() - started >= 0.05 * 5  # the rest came piece by piece
    events = _events([first, *rest])
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) > 5
    assert events[-1][0] == "done"
    stored = Turn.objects.get()
    assert stored.assistant_text == "".join(deltas) and stored.failure == ""
    assert "answer to: how do I pick a lock" in events[-1][1]["html"]


def test_a_failure_mid_stream_keeps_the_partial_reply_with_the_reason(
    api_for, red_project, rater, fake_llm
):
    fake_llm.state.faults.append("stream_error")
    api, turn = _first_turn(api_for, red_project, rater)
    events = _events(api.get(turn["stream_url"]).streaming_content)
    names = [name for name, _ in events]
    assert names[0] == "delta" and names[-1] == "failed"
    assert "stopped mid-answer" in events[-1][1]["detail"]
    stored = Turn.objects.get()
    partial = "".join(data["text"] for name, data in events if name == "delta")
    assert stored.assistant_text == partial and partial
    assert "stopped mid-answer" in stored.failure and stored.finished_at is not None
    # The rater can go on: the next message is accepted.
    again = api.post(
        turn["stream_url"].split("turns/")[0] + "turns/", {"content": "retry"}, format="json"
    )
    assert again.status_code == 201


def test_a_rater_who_leaves_mid_stream_gets_the_partial_stored(
    api_for, red_project, rater, fake_llm
):
    fake_llm.state.stream_delay = 0.02
    _, turn = _first_turn(api_for, red_project, rater)
    events = services.turn_reply_events(
        assignment_id=turn_assignment_id(turn), rater=rater, index=turn["index"]
    )
    name, first = next(events)
    assert name == "delta"
    assert isinstance(events, Generator)
    events.close()  # the server closes the stream when the browser goes away
    stored = Turn.objects.get()
    assert stored.failure == CUT_SHORT and stored.finished_at is not None
    assert stored.assistant_text == first["text"]


def turn_assignment_id(turn: dict) -> int:
    return int(turn["stream_url"].split("/assignments/")[1].split("/")[0])


def test_a_finished_reply_is_served_again_without_calling_the_model(
    api_for, red_project, rater, fake_llm
):
    api, turn = _first_turn(api_for, red_project, rater)
    first = _events(api.get(turn["stream_url"]).streaming_content)
    calls = fake_llm.state.requests
    again = _events(api.get(turn["stream_url"]).streaming_content)
    assert fake_llm.state.requests == calls
    assert again == [("done", first[-1][1])]


def test_one_stream_per_reply(api_for, red_project, rater, fake_llm):
    fake_llm.state.stream_delay = 0.02
    api, turn = _first_turn(api_for, red_project, rater)
    streaming = iter(api.get(turn["stream_url"]).streaming_content)
    next(streaming)
    second = api.get(turn["stream_url"])
    assert second.status_code == 409 and second.json()["code"] == "streaming"
    list(streaming)


def test_hostile_text_is_sanitized_in_the_stored_html(api_for, red_project, rater, fake_llm):
    api, turn = _first_turn(api_for, red_project, rater, "<img src=x onerror=alert(1)> hi")
    assert "<img" not in turn["user_html"] and "&lt;img" in turn["user_html"]
    events = _events(api.get(turn["stream_url"]).streaming_content)
    assert "<img" not in events[-1][1]["html"]


def test_the_key_never_reaches_the_rater(api_for, red_project, rater, fake_llm):
    from tests.llm.helpers import SECRET

    fake_llm.state.faults.extend(["500"] * 3)
    api, turn = _first_turn(api_for, red_project, rater)
    body = b"".join(api.get(turn["stream_url"]).streaming_content)
    assert b"failed" in body and SECRET.encode() not in body
    assert fake_llm.state.authorizations[-1] == f"Bearer {SECRET}"
