"""The arena's REST endpoints: start a battle, add a turn, stream a side, vote, reveal.

A battle is addressed by its own id because the rater writes the prompt: no assignment
exists before the first message. Each turn carries its own assignment (in the payload),
which the vote finishes through the lease services like any submit.
"""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from authoring.arena import selectors, services
from authoring.arena.api.serializers import (
    ArenaBattleSerializer,
    ArenaTurnCreateSerializer,
    ArenaVoteSerializer,
)
from authoring.streaming import sse_response
from core.api import ERROR_RESPONSES
from core.auth import signed_in_user
from labeling import services as labeling_services

CONFLICT = OpenApiResponse(
    description="Refused in the battle's state (code says why: daily_cap, revealed, "
    "vote_pending, voted, streaming, battle_closed, nothing_to_continue, max_turns)"
)


def _battle_answer(request: Request, battle_id: int, code: int = status.HTTP_200_OK) -> Response:
    rater = signed_in_user(request)
    battle = services.battle_for_rater(battle_id=battle_id, rater=rater)
    return Response(
        ArenaBattleSerializer(selectors.battle_payload(battle, rater=rater)).data, status=code
    )


class BattleStartView(APIView):
    """A new battle with a fairly drawn pair; the rater's open battle ends."""

    @extend_schema(
        request=None, responses={201: ArenaBattleSerializer, 409: CONFLICT, **ERROR_RESPONSES}
    )
    def post(self, request: Request, project_id: int) -> Response:
        rater = signed_in_user(request)
        membership = labeling_services.rater_membership(project_id=project_id, rater=rater)
        battle = services.battle_start(project=membership.project, rater=rater)
        return _battle_answer(request, battle.pk, status.HTTP_201_CREATED)


class BattleDetailView(APIView):
    @extend_schema(responses={200: ArenaBattleSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, battle_id: int) -> Response:
        return _battle_answer(request, battle_id)


class TurnCreateView(APIView):
    """The rater's next message; both sides then stream their replies."""

    @extend_schema(
        request=ArenaTurnCreateSerializer,
        responses={201: ArenaBattleSerializer, 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request: Request, battle_id: int) -> Response:
        data = ArenaTurnCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.turn_create(
            battle_id=battle_id,
            rater=signed_in_user(request),
            content=data.validated_data["content"],
        )
        return _battle_answer(request, battle_id, status.HTTP_201_CREATED)


class TurnStreamView(APIView):
    """One side's reply as server-sent events (`delta` pieces, then `done` or `failed` with
    the stored reply's sanitized HTML); a finished reply answers its stored final event."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # EventSource asks for text/event-stream; refusals are still answered as JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[OpenApiParameter("side", str, enum=["a", "b"], required=True)],
        responses={
            (200, "text/event-stream"): OpenApiTypes.STR,
            409: CONFLICT,
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, battle_id: int, number: int) -> StreamingHttpResponse:
        events = services.turn_reply_events(
            battle_id=battle_id,
            number=number,
            side=request.query_params.get("side"),
            rater=signed_in_user(request),
        )
        return sse_response(events)


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
        data = ArenaVoteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _turn, created = services.turn_vote(
            battle_id=battle_id,
            number=number,
            rater=signed_in_user(request),
            choice=data.validated_data["choice"],
            strength=data.validated_data.get("strength"),
        )
        return _battle_answer(
            request, battle_id, status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class RevealView(APIView):
    """Show the two models (after a vote); the battle takes no counted vote afterwards."""

    @extend_schema(
        request=None, responses={200: ArenaBattleSerializer, 409: CONFLICT, **ERROR_RESPONSES}
    )
    def post(self, request: Request, battle_id: int) -> Response:
        services.battle_reveal(battle_id=battle_id, rater=signed_in_user(request))
        return _battle_answer(request, battle_id)
