"""REST endpoints for reading agreement and acting on rater quality (rating has its own)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES, NOT_QUEUED
from core.auth import signed_in_user
from core.errors import InvalidInput
from core.jobs import job_raise_if_not_queued
from labeling import selectors as labeling_selectors
from labeling.models import Project
from rankings.api.serializers import (
    AgreementQueuedSerializer,
    AgreementSerializer,
    ExtraRatersSerializer,
    FlagActionSerializer,
    FlagSerializer,
    LowAgreementSerializer,
    RaterExcludeSerializer,
    RaterRowSerializer,
)
from rankings.models import Flag, FlagStatus
from rankings.quality import actions
from rankings.quality import selectors as quality_selectors
from rankings.runs import selectors as run_selectors
from rankings.runs import services as run_services


class AgreementView(APIView):
    """The project's latest agreement and its history (GET); queue a run now (POST)."""

    @extend_schema(responses={200: AgreementSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, project_id: int) -> Response:
        project = labeling_selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.DATA_ROLES
        )
        history = run_selectors.agreement_history(project=project)
        latest = history[0] if history else None
        return Response(AgreementSerializer({"latest": latest, "history": history}).data)

    @extend_schema(
        request=None,
        responses={202: AgreementQueuedSerializer, 503: NOT_QUEUED, **ERROR_RESPONSES},
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = labeling_selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.DATA_ROLES
        )
        run = run_services.agreement_run_request(project=project, trigger="manual")
        job_raise_if_not_queued(run)
        # Without a broker the run has already been computed on commit; report that.
        run.refresh_from_db(fields=["status"])
        return Response(
            AgreementQueuedSerializer({"run_id": run.pk, "status": run.status}).data,
            status=status.HTTP_202_ACCEPTED,
        )


# Rater quality -------------------------------------------------------------------------------


def _data_project(request: Request, project_id: int) -> Project:
    """Leads and engineers read quality data; raters get 403, outsiders 404."""
    return labeling_selectors.project_for_user(
        user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.DATA_ROLES
    )


def _lead_project(request: Request, project_id: int) -> Project:
    return labeling_selectors.project_for_user(
        user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.LEAD_ROLES
    )


def _int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number", field=name) from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be from {low} to {high}", field=name)
    return value


class RaterListView(APIView):
    """A row per rater: membership, scores from the latest finished run, and flags."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "sort",
                description="One of "
                + ", ".join(quality_selectors.RATER_SORTS)
                + "; a leading - sorts descending. Raters without a value come last.",
            )
        ],
        responses={200: RaterRowSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = _data_project(request, project_id)
        raw_sort = request.query_params.get("sort")
        sort, descending = quality_selectors.parse_rater_sort(raw_sort)
        if raw_sort and raw_sort.lstrip("-") != sort:
            raise InvalidInput(
                f"sort must be one of {list(quality_selectors.RATER_SORTS)}", field="sort"
            )
        rows = quality_selectors.rater_rows(
            project=project,
            run=run_selectors.latest_agreement_run(project=project),
            sort=sort,
            descending=descending,
        )
        return Response(RaterRowSerializer(rows, many=True).data)


class RaterExcludeView(APIView):
    """Leave a rater's rankings out of agreement and exports (or back in); queues a run."""

    @extend_schema(
        request=RaterExcludeSerializer, responses={200: RaterRowSerializer, **ERROR_RESPONSES}
    )
    def post(self, request: Request, project_id: int, username: str) -> Response:
        project = _lead_project(request, project_id)
        data = RaterExcludeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # One transaction: a member with no rater row is refused and nothing is saved.
        with transaction.atomic():
            actions.rater_set_excluded(
                project=project,
                username=username,
                excluded=data.validated_data["excluded"],
                by=signed_in_user(request),
            )
            return Response(_rater_row(project, username))


def _rater_row(project: Project, username: str) -> dict[str, Any]:
    latest = run_selectors.latest_agreement_run(project=project)
    rows = quality_selectors.rater_rows(project=project, run=latest)
    row = next((row for row in rows if row.username == username), None)
    if row is None:
        raise InvalidInput(
            f"{username!r} is not a rater here and has no rankings to exclude", field="username"
        )
    data: dict[str, Any] = RaterRowSerializer(row).data
    return data


class FlagListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                enum=[*FlagStatus.values, "all"],
                description="open (default), dismissed, rater_paused, or all",
            )
        ],
        responses={200: FlagSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = _data_project(request, project_id)
        status_param = request.query_params.get("status", FlagStatus.OPEN)
        flags = quality_selectors.project_flags(
            project=project, status=None if status_param == "all" else status_param
        )
        return Response(FlagSerializer(flags, many=True).data)


class FlagDetailView(APIView):
    @extend_schema(responses={200: FlagSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, flag_id: int) -> Response:
        flag = actions.flag_for_user(user=signed_in_user(request), flag_id=flag_id, lead_only=False)
        return Response(FlagSerializer(flag).data)


class _FlagActionView(APIView):
    action_name = ""

    def act(self, *, flag: Flag, by: User, note: str) -> Flag:
        raise NotImplementedError

    def post(self, request: Request, flag_id: int) -> Response:
        user = signed_in_user(request)
        flag = actions.flag_for_user(user=user, flag_id=flag_id)
        data = FlagActionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        flag = self.act(flag=flag, by=user, note=data.validated_data["note"])
        flag = actions.flag_for_user(user=user, flag_id=flag.pk)  # with its resolver loaded
        return Response(FlagSerializer(flag).data)


_FLAG_ACTION_SCHEMA = extend_schema(
    request=FlagActionSerializer,
    responses={
        200: FlagSerializer,
        409: OpenApiResponse(description="The flag is closed in a way this cannot change"),
        **ERROR_RESPONSES,
    },
)


class FlagDismissView(_FlagActionView):
    """The lead disagrees with the flag: it closes with their note."""

    @_FLAG_ACTION_SCHEMA
    def post(self, request: Request, flag_id: int) -> Response:
        return super().post(request, flag_id)

    def act(self, *, flag: Flag, by: User, note: str) -> Flag:
        return actions.flag_dismiss(flag=flag, by=by, note=note)


class FlagPauseRaterView(_FlagActionView):
    """Pause the flagged rater: no more tasks; their open flags close as rater_paused."""

    @_FLAG_ACTION_SCHEMA
    def post(self, request: Request, flag_id: int) -> Response:
        return super().post(request, flag_id)

    def act(self, *, flag: Flag, by: User, note: str) -> Flag:
        return actions.flag_pause_rater(flag=flag, by=by, note=note)


class FlagExcludeRaterView(_FlagActionView):
    """Exclude the flagged rater's rankings and pause them; a new agreement run is queued."""

    @_FLAG_ACTION_SCHEMA
    def post(self, request: Request, flag_id: int) -> Response:
        return super().post(request, flag_id)

    def act(self, *, flag: Flag, by: User, note: str) -> Flag:
        return actions.flag_exclude_rater(flag=flag, by=by, note=note)


class LowAgreementPromptsView(APIView):
    """The latest run's lowest-agreement prompts, their rankings side by side."""

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description="1 to 100, default 10")],
        responses={200: LowAgreementSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = _data_project(request, project_id)
        limit = _int_param(request, "limit", default=10, low=1, high=100)
        run = run_selectors.latest_agreement_run(project=project)
        prompts = quality_selectors.low_agreement_prompts(project=project, run=run, limit=limit)
        body = {"run_id": run.pk if run else None, "prompts": prompts}
        return Response(LowAgreementSerializer(body).data)


class ExtraRatersPromptsView(APIView):
    """Prompts adaptive overlap put back in the queue, with the reason."""

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description="1 to 1000, default 100")],
        responses={200: ExtraRatersSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = _data_project(request, project_id)
        limit = _int_param(request, "limit", default=100, low=1, high=1000)
        prompts, total = quality_selectors.prompts_with_extra_raters(project=project, limit=limit)
        return Response(ExtraRatersSerializer({"total": total, "prompts": prompts}).data)
