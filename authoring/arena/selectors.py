"""What the rater sees of a battle: turns, replies (sanitized HTML), votes, and the models
only once revealed. The page and the API answer the same payload."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.urls import reverse

from authoring.arena.models import FINISHED_STATES, Battle, Turn
from authoring.arena.options import arena_options
from authoring.arena.services.battles import votes_left
from labeling.rendering import render_markdown


def battle_payload(battle: Battle, *, rater: User) -> dict[str, Any]:
    project = battle.project
    options = arena_options(project.task_options)
    turns = list(
        battle.turns.select_related("assignment", "response_a", "response_b", "prompt").order_by(
            "number"
        )
    )
    pending = next((turn for turn in turns if turn.voted_at is None), None)
    last = turns[-1] if turns else None
    can_continue = (
        battle.closed_at is None
        and battle.revealed_at is None
        and pending is None
        and (last is None or (bool(last.context_side) and last.number < options.max_turns))
    )
    left = votes_left(project=project, rater=rater, options=options)
    return {
        "battle_id": battle.pk,
        "assignment_id": pending.assignment_id if pending else None,
        "expires_at": pending.assignment.expires_at if pending else None,
        "turns": [_turn_payload(turn) for turn in turns],
        "can_continue": can_continue and left != 0,
        "votes_left": left,
        "max_turns": options.max_turns,
        "reveal": options.reveal,
        "revealed": (
            {"a": battle.model_a, "b": battle.model_b} if battle.revealed_at is not None else None
        ),
        "turns_url": reverse("arena-api:turns", args=[battle.pk]),
        "reveal_url": reverse("arena-api:reveal", args=[battle.pk]) if options.reveal else None,
        "new_battle_url": reverse("arena-api:battles", args=[project.pk]),
    }


def _turn_payload(turn: Turn) -> dict[str, Any]:
    user_message = turn.prompt.messages[-1]["content"]
    args = [turn.battle_id, turn.number]
    stream_url = reverse("arena-api:stream", args=args)
    return {
        "number": turn.number,
        "assignment_id": turn.assignment_id,
        "content": user_message,
        "content_html": render_markdown(user_message),
        "a": _reply(turn.state_a, turn.response_a.text, f"{stream_url}?side=a"),
        "b": _reply(turn.state_b, turn.response_b.text, f"{stream_url}?side=b"),
        "vote_url": reverse("arena-api:vote", args=args),
        "vote": (
            {
                "choice": turn.choice,
                "strength": turn.strength,
                "counted": turn.counted,
                "void_reason": turn.void_reason,
            }
            if turn.voted_at is not None
            else None
        ),
        "context_side": turn.context_side or None,
    }


def _reply(state: str, text: str, stream_url: str) -> dict[str, Any]:
    finished = state in FINISHED_STATES
    return {
        "state": state,
        "html": render_markdown(text) if finished else "",
        "stream_url": stream_url,
    }
