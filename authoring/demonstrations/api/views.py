"""The demonstration API: submit a reply to a write task, decide or skip a review task.

Tasks are served by `GET /api/projects/{id}/next-task/` (kind `demonstration`, the payload
of `selectors.task_payload`); skipping a write task is the queue's own
`POST /api/assignments/{id}/skip/`.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from authoring.api import request_data, submission_answer
from authoring.demonstrations import reviews, selectors, services
from authoring.demonstrations.api.serializers import (
    DemonstrationSerializer,
    DemonstrationSubmitSerializer,
    ReviewSerializer,
    ReviewSkipSerializer,
    ReviewSubmitSerializer,
)
from core.api import ERROR_RESPONSES
from core.auth import signed_in_user
from labeling.models import Membership, Project

CONFLICT = OpenApiResponse(description="Lease taken over, or already submitted differently")


def demonstration_next_task(
    project: Project, rater: User, membership: Membership
) -> dict[str, Any] | None:
    """The demonstration kind's next-task payload: a write task or a review task."""
    task = services.task_for_rater(project=project, rater=rater, membership=membership)
    if task is None:
        return None
    return selectors.task_payload(task, project=project, membership=membership)


class DemonstrationSubmitView(APIView):
    @extend_schema(
        request=DemonstrationSubmitSerializer,
        responses={
            201: DemonstrationSerializer,
            200: OpenApiResponse(DemonstrationSerializer, description="Same reply already stored"),
            409: CONFLICT,
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = request_data(DemonstrationSubmitSerializer, request)
        demonstration, created = services.demonstration_submit(
            assignment_id=assignment_id, rater=signed_in_user(request), **data
        )
        return submission_answer(DemonstrationSerializer(demonstration).data, created=created)


class ReviewSubmitView(APIView):
    @extend_schema(
        request=ReviewSubmitSerializer,
        responses={
            201: ReviewSerializer,
            200: OpenApiResponse(ReviewSerializer, description="Same decision already stored"),
            409: CONFLICT,
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request, review_id: int) -> Response:
        data = request_data(ReviewSubmitSerializer, request)
        review, created = reviews.review_submit(
            review_id=review_id, reviewer=signed_in_user(request), **data
        )
        return submission_answer(ReviewSerializer(review).data, created=created)


class ReviewSkipView(APIView):
    @extend_schema(
        request=ReviewSkipSerializer, responses={200: OpenApiResponse(), **ERROR_RESPONSES}
    )
    def post(self, request: Request, review_id: int) -> Response:
        data = request_data(ReviewSkipSerializer, request)
        review = reviews.review_skip(
            review_id=review_id, reviewer=signed_in_user(request), reason=data["reason"]
        )
        return Response({"review_id": review.pk, "status": review.status})
