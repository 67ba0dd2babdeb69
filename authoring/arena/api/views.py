"""The arena's REST endpoints: start a battle, add a turn, stream a side, vote, reveal.

A battle is addressed by its own id because the rater writes the prompt: no assignment
exists before the first message. Each turn carries its own assignment (in the payload),
which the vote finishes through the lease services like any submit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from authoring.api import (
    TurnReplyStreamView,
    request_data,
    submission_answer,
    turn_stream_schema,
)
from authoring.arena import selectors
from authoring.arena.api.serializers import (
    ArenaBattleSerializer,
    ArenaTurnCreateSerializer,
    ArenaVoteSerializer,
)
from authoring.arena.services import battles, turns
from authoring.streaming import Event
from core.api import ERROR_RESPONSES
from core.auth import signed_in_user
from labeling import services as labeling_services

CONFLICT = OpenApiResponse(
    description="Refused in the battle's state (code says why: daily_cap, revealed, "
    "vote_pending, voted, streaming, battle_closed, nothing_to_continue, max_turns)"
)


def _battle_data(request: Request, battle_id: int) -> Any:
    """The battle as the rater sees it now (the answer of every battle endpoint)."""
    rater = signed_in_user(request)
    battle = battles.battle_for_rater(battle_id=battle_id, rater=rater)
    return ArenaBattleSerializer(selectors.battle_payload(battle, rater=rater)).data


class BattleStartView(APIView):
    """A new battle with a fairly drawn pair; the rater's open battle ends."""

    @extend_schema(
        request=None, responses={201: ArenaBattleSerializer, 409: CONFLICT, **ERROR_RESPONSES}
    )
    def post(self, request: Request, project_id: int) -> Response:
        rater = signed_in_user(request)
        membership = labeling_services.rater_membership(project_id=project_id, rater=rater)
        battle = battles.battle_start(project=membership.project, rater=rater)
        return Response(_battle_data(request, battle.pk), status=status.HTTP_201_CREATED)


class BattleDetailView(APIView):
    @extend_schema(responses={200: ArenaBattleSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, battle_id: int) -> Response:
        return Response(_battle_data(request, battle_id))


class TurnCreateView(APIView):
    """The rater's next message; both sides then stream their replies."""

    @extend_schema(
        request=ArenaTurnCreateSerializer,
        responses={201: ArenaBattleSerializer, 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request: Request, battle_id: int) -> Response:
        data = request_data(ArenaTurnCreateSerializer, request)
        turns.turn_create(
            battle_id=battle_id, rater=signed_in_user(request), content=data["content"]
        )
        return Response(_battle_data(request, battle_id), status=status.HTTP_201_CREATED)


SIDE = OpenApiParameter("side", str, enum=["a", "b"], required=True)


@turn_stream_schema(conflict=CONFLICT, parameters=[SIDE])
class TurnStreamView(TurnReplyStreamView):
    """One side's reply as server-sent events (`delta` pieces, then `done` or `failed` with
    the stored reply's sanitized HTML); a finished reply answers its stored final event."""

    def reply_events(self, request: Request, **url: int) -> Iterator[Event]:
        side = request.query_params.get("side")
        return turns.turn_reply_events(**url, side=side, rater=signed_in_user(request))


class VoteView(APIView):
    @extend_schema(
        request=ArenaVoteSerializer,
        responses={
            201: ArenaBattleSerializer,
            200: OpenApiResponse(
                ArenaBattleSerializer, description="The same vote was already stored"
            ),
            409: CONFLICT,
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request, battle_id: int, number: int) -> Response:
        data = request_data(ArenaVoteSerializer, request)
        _turn, created = turns.turn_vote(
            battle_id=battle_id,
            number=number,
            rater=signed_in_user(request),
            choice=data["choice"],
            strength=data.get("strength"),
        )
        return submission_answer(_battle_data(request, battle_id), created=created)


class RevealView(APIView):
    """Show the two models (after a vote); the battle takes no counted vote afterwards."""

    @extend_schema(
        request=None, responses={200: ArenaBattleSerializer, 409: CONFLICT, **ERROR_RESPONSES}
    )
    def post(self, request: Request, battle_id: int) -> Response:
        battles.battle_reveal(battle_id=battle_id, rater=signed_in_user(request))
        return Response(_battle_data(request, battle_id))
