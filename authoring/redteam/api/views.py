"""The red-team API: turns under the rater's assignment (create, stream the reply, flag),
the label that submits it, reviewers' labels, the lead's attempts, agreement and the loop
to ranking. Next task and skip are the shared endpoints (`/api/projects/{id}/next-task/`,
`/api/assignments/{id}/skip/`)."""

from __future__ import annotations

from collections.abc import Iterator

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from authoring.api import TurnReplyStreamView, request_data, submission_answer, turn_stream_schema
from authoring.redteam import ranking_loop, selectors, services
from authoring.redteam.api.serializers import (
    LabelSerializer,
    SendToRankingSerializer,
    TurnCreateSerializer,
    TurnFlagSerializer,
)
from authoring.streaming import Event
from core.api import ERROR_RESPONSES
from core.auth import signed_in_user
from labeling.selectors import project_for_user

CONFLICT = OpenApiResponse(description="Lease taken over, reply pending, or already labelled")


class TurnCreateView(APIView):
    @extend_schema(
        request=TurnCreateSerializer,
        responses={201: OpenApiResponse(description="The turn"), 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = request_data(TurnCreateSerializer, request)
        turn = services.turn_create(
            assignment_id=assignment_id, rater=signed_in_user(request), **data
        )
        return Response(
            selectors.turn_payload(turn, assignment_id=assignment_id),
            status=status.HTTP_201_CREATED,
        )


@turn_stream_schema(conflict=CONFLICT)
class TurnStreamView(TurnReplyStreamView):
    """Server-sent events: `delta` {text} per piece, then `done` {html} or `failed`
    {detail, html}; a finished reply answers its stored version at once."""

    def reply_events(self, request: Request, **url: int) -> Iterator[Event]:
        return services.turn_reply_events(**url, rater=signed_in_user(request))


class TurnFlagView(APIView):
    @extend_schema(
        request=TurnFlagSerializer,
        responses={200: OpenApiResponse(description="The turn"), 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request: Request, assignment_id: int, index: int) -> Response:
        data = request_data(TurnFlagSerializer, request)
        turn = services.turn_flag(
            assignment_id=assignment_id, rater=signed_in_user(request), index=index, **data
        )
        return Response(selectors.turn_payload(turn, assignment_id=assignment_id))


class AttemptSubmitView(APIView):
    """The rater's label: succeeded, category, severity, note; submits the assignment."""

    @extend_schema(
        request=LabelSerializer,
        responses={
            201: OpenApiResponse(description="The label"),
            200: OpenApiResponse(description="The same label already stored"),
            409: CONFLICT,
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = request_data(LabelSerializer, request)
        label, created = services.attempt_submit(
            assignment_id=assignment_id, rater=signed_in_user(request), **data
        )
        return submission_answer(selectors.label_payload(label), created=created)


class AttemptDetailView(APIView):
    """An attempt for its reviewers (leads, other raters of the project)."""

    @extend_schema(responses={200: OpenApiResponse(description="The attempt"), **ERROR_RESPONSES})
    def get(self, request: Request, attempt_id: int) -> Response:
        attempt = services.attempt_for_reviewer(
            attempt_id=attempt_id, reviewer=signed_in_user(request)
        )
        attempt = selectors.attempts_for_project(project=attempt.project).get(pk=attempt.pk)
        return Response(selectors.attempt_payload(attempt))


class ReviewLabelView(APIView):
    """A reviewer's label; posting again re-labels (the earlier values are replaced)."""

    @extend_schema(
        request=LabelSerializer,
        responses={
            201: OpenApiResponse(description="The label, new or changed"),
            200: OpenApiResponse(description="The same label already stored"),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request, attempt_id: int) -> Response:
        data = request_data(LabelSerializer, request)
        label, changed = services.review_label(
            attempt_id=attempt_id, reviewer=signed_in_user(request), **data
        )
        return submission_answer(selectors.label_payload(label), created=changed)


class ReviewNextView(APIView):
    @extend_schema(
        responses={
            200: OpenApiResponse(description="The attempt to review"),
            204: OpenApiResponse(description="Nothing left to review"),
            **ERROR_RESPONSES,
        }
    )
    def get(self, request: Request, project_id: int) -> Response:
        reviewer = signed_in_user(request)
        project = project_for_user(user=reviewer, project_id=project_id)
        attempt = services.review_next(project=project, reviewer=reviewer)
        if attempt is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        attempt = selectors.attempts_for_project(project=project).get(pk=attempt.pk)
        return Response(selectors.attempt_payload(attempt))


class AttemptListView(APIView):
    """The project's attempts, newest first (lead), with labels; `?limit=` (at most 100)."""

    @extend_schema(responses={200: OpenApiResponse(description="Attempts"), **ERROR_RESPONSES})
    def get(self, request: Request, project_id: int) -> Response:
        project = services.project_for_lead(user=signed_in_user(request), project_id=project_id)
        attempts = selectors.attempts_for_project(project=project)[: selectors.ATTEMPTS_PAGE]
        return Response(
            {
                "results": [
                    selectors.attempt_payload(attempt, with_turns=False) for attempt in attempts
                ],
                "agreement": selectors.red_team_agreement_latest(project=project),
            }
        )


class SendToRankingView(APIView):
    @extend_schema(
        request=SendToRankingSerializer,
        responses={201: OpenApiResponse(description="Prompts created"), **ERROR_RESPONSES},
    )
    def post(self, request: Request, project_id: int) -> Response:
        user = signed_in_user(request)
        project = services.project_for_lead(user=user, project_id=project_id)
        data = request_data(SendToRankingSerializer, request)
        sent = ranking_loop.send_to_ranking(project=project, by=user, **data)
        return Response(sent.as_dict(), status=status.HTTP_201_CREATED)
