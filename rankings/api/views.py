"""REST endpoints for submitting rankings and reading agreement."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import selectors as labeling_selectors
from labeling.api.views import ERROR_RESPONSES
from labeling.auth import signed_in_user
from rankings import selectors, services
from rankings.api.serializers import (
    AgreementQueuedSerializer,
    AgreementSerializer,
    RankingSerializer,
    RankingSubmitSerializer,
)


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
            RankingSerializer(ranking).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class AgreementView(APIView):
    """The project's latest agreement and its history (GET); queue a run now (POST)."""

    @extend_schema(responses={200: AgreementSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, project_id: int) -> Response:
        project = labeling_selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.DATA_ROLES
        )
        history = selectors.agreement_history(project=project)
        latest = history[0] if history else None
        return Response(AgreementSerializer({"latest": latest, "history": history}).data)

    @extend_schema(request=None, responses={202: AgreementQueuedSerializer, **ERROR_RESPONSES})
    def post(self, request: Request, project_id: int) -> Response:
        project = labeling_selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.DATA_ROLES
        )
        run = services.agreement_run_request(project=project, trigger="manual")
        # Without a broker the run has already been computed on commit; report that.
        run.refresh_from_db(fields=["status"])
        return Response(
            AgreementQueuedSerializer({"run_id": run.pk, "status": run.status}).data,
            status=status.HTTP_202_ACCEPTED,
        )
