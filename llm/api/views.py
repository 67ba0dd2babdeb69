"""REST endpoints: model endpoints (keys write-only), endpoint tests, generation jobs."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES, NOT_QUEUED
from core.auth import signed_in_user
from core.jobs import job_raise_if_not_queued
from llm import selectors
from llm.api.serializers import (
    EndpointSerializer,
    EndpointTestSerializer,
    GenerationCreateSerializer,
    GenerationJobSerializer,
)
from llm.models import GenerationJob, ModelEndpoint
from llm.services import endpoints as endpoint_services
from llm.services import generation as generation_services


class EndpointListView(APIView):
    @extend_schema(
        summary="List a project's model endpoints",
        responses={200: EndpointSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.managed_project(user=signed_in_user(request), project_id=project_id)
        endpoints = ModelEndpoint.objects.filter(project=project).order_by("name")
        return Response(EndpointSerializer(endpoints, many=True).data)

    @extend_schema(
        summary="Register a model endpoint",
        description="An OpenAI-compatible chat completions server (vLLM, Ollama, TGI, "
        "LiteLLM, OpenAI…). `api_key` is write-only and stored encrypted.",
        request=EndpointSerializer,
        responses={201: EndpointSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = selectors.managed_project(user=signed_in_user(request), project_id=project_id)
        serializer = EndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = endpoint_services.endpoint_create(
            project=project, values=dict(serializer.validated_data)
        )
        return Response(EndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailView(APIView):
    @extend_schema(
        summary="A model endpoint", responses={200: EndpointSerializer, **ERROR_RESPONSES}
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = selectors.endpoint_for_user(
            user=signed_in_user(request), endpoint_id=endpoint_id
        )
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(
        summary="Change a model endpoint",
        description='Absent fields are kept; `api_key` replaces the key, `""` removes it.',
        request=EndpointSerializer,
        responses={200: EndpointSerializer, **ERROR_RESPONSES},
    )
    def patch(self, request: Request, endpoint_id: int) -> Response:
        endpoint = selectors.endpoint_for_user(
            user=signed_in_user(request), endpoint_id=endpoint_id
        )
        serializer = EndpointSerializer(endpoint, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = endpoint_services.endpoint_update(
            endpoint=endpoint, values=dict(serializer.validated_data)
        )
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(summary="Delete a model endpoint", responses={204: None, **ERROR_RESPONSES})
    def delete(self, request: Request, endpoint_id: int) -> Response:
        endpoint = selectors.endpoint_for_user(
            user=signed_in_user(request), endpoint_id=endpoint_id
        )
        endpoint_services.endpoint_delete(endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointTestView(APIView):
    @extend_schema(
        summary="Test a model endpoint with one short call",
        request=None,
        responses={200: EndpointTestSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = selectors.endpoint_for_user(
            user=signed_in_user(request), endpoint_id=endpoint_id
        )
        return Response(endpoint_services.endpoint_test(endpoint=endpoint))


class GenerationListView(APIView):
    @extend_schema(
        summary="List a project's generation jobs",
        responses={200: GenerationJobSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.managed_project(user=signed_in_user(request), project_id=project_id)
        jobs = GenerationJob.objects.filter(project=project).order_by("-id")[:50]
        return Response(
            [generation_services.generation_report(job=job, failures_limit=0) for job in jobs]
        )

    @extend_schema(
        summary="Generate responses from model endpoints",
        description="Queues a job that calls each endpoint `samples` times per selected "
        "prompt, fanned out in chunks, within each endpoint's concurrency limit. A call "
        "whose response already exists is never made again. Poll `GET /api/generations/{id}/`.",
        request=GenerationCreateSerializer,
        responses={202: GenerationJobSerializer, 503: NOT_QUEUED, **ERROR_RESPONSES},
    )
    def post(self, request: Request, project_id: int) -> Response:
        user = signed_in_user(request)
        project = selectors.managed_project(user=user, project_id=project_id)
        serializer = GenerationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = generation_services.generation_create(
            project=project,
            by=user,
            endpoint_ids=serializer.validated_data["endpoints"],
            samples=serializer.validated_data["samples"],
            prompts=serializer.validated_data.get("prompts", "missing"),
        )
        job_raise_if_not_queued(job)
        job.refresh_from_db()
        return Response(
            generation_services.generation_report(job=job), status=status.HTTP_202_ACCEPTED
        )


class GenerationDetailView(APIView):
    @extend_schema(
        summary="A generation job: status, progress, failures, tokens, wall time",
        responses={200: GenerationJobSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.generation_job_for_user(user=signed_in_user(request), job_id=job_id)
        return Response(generation_services.generation_report(job=job))
