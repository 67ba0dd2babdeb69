"""The rater's REST endpoints: next task, submit, skip, undo, renew.

Tasks are served by `services.task_for_rater`, the same sequence as the page's, so a task
reopened by an undo comes back first here too.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES, api_datetime
from core.auth import signed_in_user
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.api.serializers import SkipSerializer, TaskSerializer
from labeling.models import Membership, Project
from labeling.task_kinds import task_kind_handler
from rankings.models import Ranking
from rankings.rating import services
from rankings.rating.api.serializers import (
    LeaseSerializer,
    RankingSerializer,
    RankingSubmitSerializer,
)

CONFLICT = OpenApiResponse(description="Lease taken over, or the task is no longer leased")


class NextTaskView(APIView):
    @extend_schema(
        responses={
            200: TaskSerializer,
            204: OpenApiResponse(description="Nothing left to rank"),
            **ERROR_RESPONSES,
        }
    )
    def get(self, request: Request, project_id: int) -> Response:
        rater = signed_in_user(request)
        membership = labeling_services.rater_membership(project_id=project_id, rater=rater)
        project = membership.project
        payload = task_kind_handler(project.task_kind).next_task(project, rater, membership)
        if payload is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response({"kind": project.task_kind, **payload})


def rank_next_task(project: Project, rater: User, membership: Membership) -> dict[str, Any] | None:
    """The `rank` kind's next-task payload: the rater's task with responses in shown order."""
    tasks = services.task_for_rater(project=project, rater=rater, membership=membership)
    if tasks.current is None:
        return None
    return rank_task_json(labeling_selectors.task_payload(tasks.current, membership=membership))


def rank_task_json(payload: dict[str, Any]) -> dict[str, Any]:
    """A rank task as `TaskSerializer` writes it, built directly: the rater loop's hottest
    answer (a test holds the two equal)."""
    return {"kind": "rank", **payload, "expires_at": api_datetime(payload["expires_at"])}


def ranking_json(ranking: Ranking) -> dict[str, Any]:
    """A stored ranking as `RankingSerializer` writes it, built directly (a test holds the
    two equal)."""
    return {
        "id": ranking.pk,
        "assignment_id": ranking.assignment_id,
        "ranking": ranking.groups,
        "ratings": ranking.ratings,
        "rationale": ranking.rationale,
        "seconds": None if ranking.seconds is None else float(ranking.seconds),
        "created_at": api_datetime(ranking.created_at),
    }


class RankingSubmitView(APIView):
    @extend_schema(
        request=RankingSubmitSerializer,
        responses={
            201: RankingSerializer,
            200: OpenApiResponse(RankingSerializer, description="Same ranking already stored"),
            409: OpenApiResponse(description="Lease taken over or already submitted"),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = RankingSubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ranking, created = services.ranking_submit(
            assignment_id=assignment_id, rater=signed_in_user(request), **data.validated_data
        )
        return Response(
            ranking_json(ranking),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class SkipView(APIView):
    @extend_schema(request=SkipSerializer, responses={200: OpenApiResponse(), **ERROR_RESPONSES})
    def post(self, request: Request, assignment_id: int) -> Response:
        data = SkipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = labeling_services.assignment_skip(
            assignment_id=assignment_id,
            rater=signed_in_user(request),
            reason=data.validated_data["reason"],
        )
        return Response({"assignment_id": assignment.pk, "status": assignment.status})


class UndoView(APIView):
    """Reopen the task submitted last, within the undo window; answers it as a task again."""

    @extend_schema(request=None, responses={200: TaskSerializer, 409: CONFLICT, **ERROR_RESPONSES})
    def post(self, request: Request, assignment_id: int) -> Response:
        rater = signed_in_user(request)
        services.ranking_undo(assignment_id=assignment_id, rater=rater)
        assignment = labeling_services.assignment_for_rater(
            assignment_id=assignment_id, rater=rater
        )
        return Response(rank_task_json(labeling_selectors.task_payload(assignment)))


class RenewView(APIView):
    """Extend the lease on a task the rater is still working on, from now."""

    @extend_schema(request=None, responses={200: LeaseSerializer, 409: CONFLICT, **ERROR_RESPONSES})
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = labeling_services.assignment_renew(
            assignment_id=assignment_id, rater=signed_in_user(request)
        )
        return Response(LeaseSerializer(assignment).data)
