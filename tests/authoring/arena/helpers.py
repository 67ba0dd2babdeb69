"""Plain helpers (not fixtures) shared by these tests."""

from __future__ import annotations

import json
from typing import Any

from authoring.arena.models import Battle, Side
from authoring.arena.options import clean_arena_options
from authoring.arena.services import battles, turns
from labeling import services as labeling_services
from labeling.models import Project, TaskKind
from tests.llm.helpers import make_endpoint


def stream_text(response) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a server-sent events response."""
    body = b"".join(response.streaming_content).decode()
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def make_arena_project(
    lead: Any, base_url: str, *, name: str = "Arena", endpoints: int = 2, **options: Any
) -> Project:
    """An arena project of `lead` whose endpoints `model-0`, `model-1`, … answer at
    `base_url` (the fake OpenAI-compatible server)."""
    project = labeling_services.project_create(
        creator=lead,
        name=name,
        task_kind=TaskKind.ARENA,
        task_options=clean_arena_options(options),
        overlap=3,
    )
    for index in range(endpoints):
        make_endpoint(project, base_url, name=f"model-{index}", model=f"fake-{index}")
    return project


def voted_battle(project: Project, rater: Any, *, content: str = "Explain tides") -> Battle:
    """A battle of `rater` with one turn whose two replies are streamed and stored, voted A."""
    battle = battles.battle_start(project=project, rater=rater)
    turn = turns.turn_create(battle_id=battle.pk, rater=rater, content=content)
    for side in Side.values:
        list(
            turns.turn_reply_events(battle_id=battle.pk, number=turn.number, side=side, rater=rater)
        )
    turns.turn_vote(battle_id=battle.pk, number=turn.number, rater=rater, choice="a")
    return battle
