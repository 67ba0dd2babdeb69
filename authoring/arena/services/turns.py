"""An arena battle's turns: the rater's message, both sides' replies streamed and stored,
the vote. A counted vote is the turn's pairwise ranking stored through the lease services,
so it finishes its assignment under the same rules as any submit.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from authoring.arena.models import (
    FINISHED_STATES,
    Battle,
    Choice,
    Side,
    StreamState,
    Turn,
    VoidReason,
)
from authoring.arena.options import ArenaOptions, arena_options
from authoring.arena.services.battles import (
    battle_lock_for_rater,
    counted_votes_in_window,
    daily_cap_message,
    row_id,
    votes_left,
)
from authoring.streaming import Event, reply_events
from core.errors import Conflict, InvalidInput, NotFound
from labeling import services as labeling_services
from labeling.models import Assignment, Project, Prompt, Response
from labeling.rendering import render_markdown
from llm.services.endpoints import endpoint_config
from rankings.models import Ranking
from rankings.runs.services import agreement_run_request_if_due

MAX_MESSAGE_CHARS = 20_000
STRENGTHS = (1, 2, 3)
"""For A or B: 1 slightly, 2 better, 3 much better (the ranking's pairwise strength)."""


# Turns ----------------------------------------------------------------------------------------


def turn_create(*, battle_id: int, rater: User, content: Any) -> Turn:
    """The rater's next message: a prompt of the project (the shared context so far and the
    message), an empty response per side to stream into, and an assignment leased to them."""
    text = _message_text(content)
    with transaction.atomic():
        battle = battle_lock_for_rater(battle_id=battle_id, rater=rater)
        project = battle.project
        labeling_services.require_active_rater(project=project, rater=rater)
        options = arena_options(project.task_options)
        last = battle.turns.select_related("prompt", "assignment").order_by("-number").first()
        _check_can_continue(battle, last, options)
        if votes_left(project=project, rater=rater, options=options) == 0:
            raise Conflict(daily_cap_message(options), code="daily_cap")
        messages = [*_context_after(last), {"role": "user", "content": text}]
        return _turn_store(
            battle=battle, number=(last.number + 1 if last else 1), messages=messages
        )


def _message_text(content: Any) -> str:
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("write a message for the two models", field="content")
    if len(content) > MAX_MESSAGE_CHARS:
        raise InvalidInput(f"must be at most {MAX_MESSAGE_CHARS} characters", field="content")
    if "\x00" in content:
        raise InvalidInput("may not contain NUL characters", field="content")
    return content.strip()


def _check_can_continue(battle: Battle, last: Turn | None, options: ArenaOptions) -> None:
    if battle.closed_at is not None:
        raise Conflict("this battle has ended; start a new one", code="battle_closed")
    if battle.revealed_at is not None:
        raise Conflict(
            "the models were revealed: start a new battle to vote again", code="revealed"
        )
    if last is None:
        return
    if last.voted_at is None:
        raise Conflict("vote on the last turn before writing the next", code="vote_pending")
    if not last.context_side:
        raise Conflict(
            "both replies were bad, so there is nothing to continue: start a new battle",
            code="nothing_to_continue",
        )
    if last.number >= options.max_turns:
        raise Conflict(
            f"a battle has at most {options.max_turns} turns; start a new one", code="max_turns"
        )


def _context_after(last: Turn | None) -> list[dict[str, str]]:
    """The shared conversation the next turn continues: the last turn's prompt and the reply
    the rater preferred."""
    if last is None:
        return []
    preferred = last.response_a if last.context_side == Side.A else last.response_b
    return [*last.prompt.messages, {"role": "assistant", "content": preferred.text}]


def _turn_store(*, battle: Battle, number: int, messages: list[dict[str, str]]) -> Turn:
    project = battle.project
    now = timezone.now()
    prompt = Prompt.objects.create(
        project=project,
        external_id=f"arena-{battle.pk}-{number}",
        messages=messages,
        metadata={"arena": {"battle": battle.pk, "turn": number}},
        n_responses=2,
        created_at=now,
    )
    response_a, response_b = (
        Response.objects.create(
            prompt=prompt, position=position, text="", model_name=model, metadata={"side": side}
        )
        for position, (side, model) in enumerate(
            ((Side.A, battle.model_a), (Side.B, battle.model_b))
        )
    )
    assignment = Assignment.objects.create(
        project=project,
        prompt=prompt,
        rater_id=battle.rater_id,
        shown_order=[response_a.pk, response_b.pk],
        leased_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
    )
    return Turn.objects.create(
        battle=battle,
        number=number,
        prompt=prompt,
        assignment=assignment,
        response_a=response_a,
        response_b=response_b,
    )


def turn_for_rater(*, battle_id: int, number: int, rater: User) -> Turn:
    battle_id, number = row_id(battle_id, "turn"), row_id(number, "turn")
    turn = (
        Turn.objects.select_related("battle", "battle__project", "response_a", "response_b")
        .filter(battle_id=battle_id, number=number, battle__rater=rater)
        .first()
    )
    if turn is None:
        raise NotFound("turn not found")
    return turn


# Streaming ------------------------------------------------------------------------------------


def side_checked(raw: Any) -> str:
    if raw not in Side.values:
        raise InvalidInput("must be a or b", field="side")
    return str(raw)


def turn_reply_events(*, battle_id: int, number: int, side: Any, rater: User) -> Iterator[Event]:
    """The side's reply as events: streamed from its endpoint the first time, the stored
    reply afterwards. Checks run now (so a refusal is a plain error response); the stream
    starts when the events are read."""
    side = side_checked(side)
    turn = turn_for_rater(battle_id=battle_id, number=number, rater=rater)
    response = turn.response_a if side == Side.A else turn.response_b
    state = turn.state_a if side == Side.A else turn.state_b
    if state in FINISHED_STATES:
        return iter([_stored_event(response, state)])
    claimed = Turn.objects.filter(pk=turn.pk, **{f"state_{side}": StreamState.PENDING}).update(
        **{f"state_{side}": StreamState.STREAMING}
    )
    if not claimed:
        raise Conflict("this reply is already streaming to another window", code="streaming")
    endpoint = turn.battle.endpoint_a if side == Side.A else turn.battle.endpoint_b
    finish = partial(_reply_finish, turn_id=turn.pk, side=side, response_id=response.pk)
    if endpoint is None:
        return iter(
            [
                (
                    "failed",
                    {
                        "detail": "the endpoint was removed",
                        "html": finish("", "the endpoint was removed"),
                    },
                )
            ]
        )
    return reply_events(endpoint_config(endpoint), list(turn.prompt.messages), finish=finish)


def _stored_event(response: Response, state: str) -> Event:
    html = render_markdown(response.text)
    if state == StreamState.DONE:
        return "done", {"html": html}
    return "failed", {"detail": response.metadata.get("failure", ""), "html": html}


def _reply_finish(
    text: str, reason: str | None, *, turn_id: int, side: str, response_id: int
) -> str:
    """Store what the endpoint sent (all of it, or what came before a failure)."""
    metadata: dict[str, Any] = {"side": side}
    if reason:
        metadata["failure"] = reason
    Response.objects.filter(pk=response_id).update(text=text, metadata=metadata)
    state = StreamState.FAILED if reason else StreamState.DONE
    Turn.objects.filter(pk=turn_id).update(**{f"state_{side}": state})
    return render_markdown(text)


# Votes ----------------------------------------------------------------------------------------


def vote_cleaned(choice: Any, strength: Any) -> tuple[str, int]:
    if choice not in Choice.values:
        raise InvalidInput(f"must be one of: {', '.join(Choice.values)}", field="choice")
    if choice in (Choice.TIE, Choice.BOTH_BAD):
        if strength not in (None, 0):
            raise InvalidInput("a tie or 'both bad' takes no strength (or 0)", field="strength")
        return str(choice), 0
    if strength is None:
        return str(choice), 2
    if isinstance(strength, bool) or strength not in STRENGTHS:
        raise InvalidInput("must be 1 (slightly), 2 (better) or 3 (much better)", field="strength")
    return str(choice), int(strength)


def turn_vote(
    *,
    battle_id: int,
    number: int,
    rater: User,
    choice: Any,
    strength: Any = None,
    rng: random.Random | None = None,
) -> tuple[Turn, bool]:
    """Record the rater's vote on a turn; returns (turn, created).

    A counted vote is the turn's pairwise ranking (A over B, B over A, or a tie; "both bad"
    is a tie marked on the turn). A vote cast after the battle's models were revealed, or
    beyond the daily cap, is kept on the turn but not counted: its assignment is skipped
    with the reason and no ranking is made. The same vote again answers the stored one.
    """
    choice, strength_value = vote_cleaned(choice, strength)
    battle_id, number = row_id(battle_id, "turn"), row_id(number, "turn")
    rng = rng or random.SystemRandom()
    with transaction.atomic():
        turn = (
            Turn.objects.select_for_update(of=("self",))
            .select_related("battle", "battle__project", "response_a", "response_b")
            .filter(battle_id=battle_id, number=number, battle__rater=rater)
            .first()
        )
        if turn is None:
            raise NotFound("turn not found")
        if turn.voted_at is not None:
            if (turn.choice, turn.strength) == (choice, strength_value):
                return turn, False
            raise Conflict("this turn already has another vote", code="voted")
        if turn.state_a not in FINISHED_STATES or turn.state_b not in FINISHED_STATES:
            raise Conflict("wait until both replies have arrived", code="streaming")
        assignment = labeling_services.assignment_lock_for_finish(
            assignment_id=turn.assignment_id, rater=rater
        )
        project = turn.battle.project
        now = timezone.now()
        void = _void_reason(turn=turn, project=project, rater=rater, now=now)
        if void:
            labeling_services.assignment_skip(
                assignment_id=assignment.pk, rater=rater, reason=f"vote not counted: {void.label}"
            )
        else:
            _ranking_store(turn=turn, assignment=assignment, choice=choice, strength=strength_value)
            transaction.on_commit(partial(agreement_run_request_if_due, project=project))
        turn.choice, turn.strength, turn.voted_at = choice, strength_value, now
        turn.counted, turn.void_reason = not void, str(void)
        turn.context_side = _context_side(choice, rng)
        turn.save(
            update_fields=[
                "choice",
                "strength",
                "voted_at",
                "counted",
                "void_reason",
                "context_side",
            ]
        )
    return turn, True


def _void_reason(*, turn: Turn, project: Project, rater: User, now: datetime) -> VoidReason:
    if turn.battle.revealed_at is not None:
        return VoidReason.REVEALED
    cap = arena_options(project.task_options).daily_cap
    if cap is not None and counted_votes_in_window(project=project, rater=rater, now=now) >= cap:
        return VoidReason.DAILY_CAP
    return VoidReason.COUNTED


def _ranking_store(*, turn: Turn, assignment: Assignment, choice: str, strength: int) -> Ranking:
    labeling_services.assignment_claim_slot(assignment=assignment)
    a, b = turn.response_a_id, turn.response_b_id
    groups = {Choice.A: [[a], [b]], Choice.B: [[b], [a]]}.get(Choice(choice), [[a, b]])
    ranking = Ranking.objects.create(
        assignment=assignment,
        project_id=assignment.project_id,
        prompt_id=assignment.prompt_id,
        rater_id=assignment.rater_id,
        groups=groups,
        strength=strength,
    )
    labeling_services.assignment_mark_submitted(assignment=assignment)
    # The prompt is this rater's own: no one else is ever served it, whatever the overlap.
    Prompt.objects.filter(pk=assignment.prompt_id).update(is_complete=True)
    return ranking


def _context_side(choice: str, rng: random.Random) -> str:
    if choice == Choice.A:
        return Side.A
    if choice == Choice.B:
        return Side.B
    if choice == Choice.TIE:
        return rng.choice((Side.A, Side.B))  # either reply is as good to continue from
    return ""
