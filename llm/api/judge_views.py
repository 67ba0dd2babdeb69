"""REST endpoints of the AI judge: runs, the template with its preview, calibration."""

from __future__ import annotations

from drf_spectacular.plumbing import build_array_type, build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES, NOT_QUEUED
from core.auth import signed_in_user
from core.errors import InvalidInput, NotFound
from core.jobs import job_raise_if_not_queued
from llm import selectors
from llm.models import JudgeRun
from llm.services import calibration, judge_report, judging, routing
from llm.services.endpoints import endpoint_for_project


class JudgeRunCreateSerializer(serializers.Serializer):
    endpoint = serializers.IntegerField(help_text="The endpoint that judges (its AI rater).")
    prompts = serializers.JSONField(
        required=False,
        help_text='"unjudged" (no verdict from this endpoint yet), "all", or a list of ids.',
    )


class JudgeTemplateSerializer(serializers.Serializer):
    system_template = serializers.CharField(trim_whitespace=False)
    user_template = serializers.CharField(trim_whitespace=False)


def _query_int(request: Request, name: str, *, required: bool) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        if required:
            raise InvalidInput(f"give ?{name}=ID", field=name)
        return None
    try:
        return int(str(raw))
    except ValueError:
        raise InvalidInput("must be a whole number", field=name) from None


class JudgeRunListView(APIView):
    @extend_schema(
        summary="List a project's judge runs",
        responses={
            200: build_array_type(build_basic_type(OpenApiTypes.OBJECT) or {}),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.managed_project(user=signed_in_user(request), project_id=project_id)
        runs = JudgeRun.objects.filter(project=project).order_by("-id")[:50]
        return Response([judge_report.judge_run_report(run=run, failures_limit=0) for run in runs])

    @extend_schema(
        summary="Run the AI judge over prompts",
        description="Each prompt is judged in its original and reversed response order; "
        "consistent verdicts are kept, flipped pairs become ties (low confidence). Poll "
        "`GET /api/judge-runs/{id}/`.",
        request=JudgeRunCreateSerializer,
        responses={202: OpenApiTypes.OBJECT, 503: NOT_QUEUED, **ERROR_RESPONSES},
    )
    def post(self, request: Request, project_id: int) -> Response:
        user = signed_in_user(request)
        project = selectors.managed_project(user=user, project_id=project_id)
        serializer = JudgeRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = judging.judge_run_create(
            project=project,
            by=user,
            endpoint_id=serializer.validated_data["endpoint"],
            prompts=serializer.validated_data.get("prompts", "unjudged"),
        )
        job_raise_if_not_queued(run)
        run.refresh_from_db()
        return Response(judge_report.judge_run_report(run=run), status=status.HTTP_202_ACCEPTED)


class JudgeRunDetailView(APIView):
    @extend_schema(
        summary="A judge run: status, progress, position bias, failures",
        responses={200: OpenApiTypes.OBJECT, **ERROR_RESPONSES},
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = JudgeRun.objects.filter(pk=run_id).first()
        if run is None:
            raise NotFound("judge run not found")
        selectors.managed_project(user=signed_in_user(request), project_id=run.project_id)
        return Response(judge_report.judge_run_report(run=run))


class JudgeTemplateView(APIView):
    @extend_schema(
        summary="The judge's prompt template",
        responses={200: JudgeTemplateSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.managed_project(user=signed_in_user(request), project_id=project_id)
        system_template, user_template = judging.judge_template_of(project=project)
        return Response({"system_template": system_template, "user_template": user_template})

    @extend_schema(
        summary="Change the judge's prompt template",
        description="Placeholders: {guidelines} {rubric} {ties} {conversation} {responses}.",
        request=JudgeTemplateSerializer,
        responses={200: JudgeTemplateSerializer, **ERROR_RESPONSES},
    )
    def put(self, request: Request, project_id: int) -> Response:
        project = selectors.managed_project(user=signed_in_user(request), project_id=project_id)
        serializer = JudgeTemplateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        judging.judge_template_update(project=project, **serializer.validated_data)
        return self.get(request, project_id)


class JudgePreviewView(APIView):
    @extend_schema(
        summary="The exact messages the judge is sent for a prompt, in both orders",
        parameters=[OpenApiParameter("prompt", int, required=False)],
        responses={200: OpenApiTypes.OBJECT, **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.managed_project(user=signed_in_user(request), project_id=project_id)
        prompt_id = _query_int(request, "prompt", required=False)
        return Response(judging.judge_preview(project=project, prompt_id=prompt_id))


class JudgeCalibrationView(APIView):
    @extend_schema(
        summary="How far the judge can be trusted: agreement with humans",
        parameters=[OpenApiParameter("endpoint", int, required=True)],
        responses={200: OpenApiTypes.OBJECT, **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.managed_project(user=signed_in_user(request), project_id=project_id)
        endpoint_id = _query_int(request, "endpoint", required=True)
        assert endpoint_id is not None
        endpoint = endpoint_for_project(project=project, endpoint_id=endpoint_id)
        return Response(calibration.judge_calibration(project=project, endpoint=endpoint))


class JudgeRoutingSerializer(serializers.Serializer):
    endpoint = serializers.IntegerField()
    max_agreement = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.5)
    include_inconsistent = serializers.BooleanField(default=True)


class JudgeRoutingView(APIView):
    @extend_schema(
        summary="Route prompts the judge disagrees on to extra human raters",
        description="Prompts whose judge verdict agrees with their human rankings on at most "
        "`max_agreement` of the pairs (or flipped with the shown order) get one more rater "
        "through adaptive overlap, up to the project's `max_overlap`; each keeps its reason.",
        request=JudgeRoutingSerializer,
        responses={200: OpenApiTypes.OBJECT, **ERROR_RESPONSES},
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = selectors.managed_project(user=signed_in_user(request), project_id=project_id)
        serializer = JudgeRoutingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint = endpoint_for_project(project=project, endpoint_id=data["endpoint"])
        return Response(
            routing.judge_routing_apply(
                project=project,
                endpoint=endpoint,
                max_agreement=data["max_agreement"],
                include_inconsistent=data["include_inconsistent"],
            )
        )
