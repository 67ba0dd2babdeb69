"""REST endpoints for export jobs, their files, previews, and small exports streamed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES, NOT_QUEUED, ErrorSerializer
from core.auth import signed_in_user
from core.errors import InvalidInput, NotFound
from core.jobs import job_raise_if_not_queued
from exports import selectors, services
from exports.api.examples import create_examples, stream_examples
from exports.api.serializers import (
    ExportCreateSerializer,
    ExportJobSerializer,
    ExportPreviewSerializer,
    ExportStreamQuerySerializer,
)
from exports.models import ExportJob
from labeling import selectors as labeling_selectors
from labeling.models import Project

CONTENT_TYPES = {
    "jsonl": "application/jsonl",
    "jsonl.gz": "application/gzip",
    "parquet": "application/vnd.apache.parquet",
}
NOT_READY = OpenApiResponse(
    ErrorSerializer, description="The export is not done, or its files were deleted"
)
FILE_MISSING = OpenApiResponse(
    ErrorSerializer, description="The export's file is missing from storage: create it again"
)


def export_job_for_user(*, user: Any, export_id: int) -> ExportJob:
    job = selectors.export_jobs_for_user(user=user).filter(pk=export_id).first()
    if job is None:
        raise NotFound("export not found")
    return job


def _data_project(request: Request, project_id: int) -> Project:
    return labeling_selectors.project_for_user(
        user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.DATA_ROLES
    )


class ExportListView(APIView):
    @extend_schema(
        summary="List a project's exports",
        responses={200: ExportJobSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = _data_project(request, project_id)
        jobs = selectors.export_jobs_of_project(project=project, limit=100)
        return Response(ExportJobSerializer(jobs, many=True).data)

    @extend_schema(
        summary="Start an export job",
        description="Queues a Celery job that writes the file in keyset batches; poll "
        "`GET /api/exports/{id}/` until `status` is `done`, then download. Same parameters "
        "over the same data give a byte-identical file (same sha256).",
        request=ExportCreateSerializer,
        responses={202: ExportJobSerializer, 503: NOT_QUEUED, **ERROR_RESPONSES},
        examples=create_examples(),
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = _data_project(request, project_id)
        data = ExportCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.export_job_create(
            project=project, created_by=signed_in_user(request), **data.export_arguments()
        )
        job_raise_if_not_queued(job)
        job.refresh_from_db()
        return Response(ExportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class FormatIsAnExportParameter(DefaultContentNegotiation):
    """`?format=` names the export format here, not a DRF renderer: errors are JSON."""

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ExportStreamView(APIView):
    content_negotiation_class = FormatIsAnExportParameter

    @extend_schema(
        summary="Stream a small export straight to the client",
        description="The same rows, in the same bytes, as a job with these parameters, sent "
        f"as they are made. Takes the job's parameters as query parameters; at most "
        f"{services.STREAM_MAX_ROWS} rows (413 when the export is estimated to be bigger and "
        "no `limit` is given). JSON Lines or gzip JSON Lines; Parquet needs a job.",
        parameters=[ExportStreamQuerySerializer],
        responses={
            (200, "application/jsonl"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="JSON Lines rows",
                examples=stream_examples(),
            ),
            413: OpenApiResponse(description="Too big to stream: create a job or pass a limit"),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, project_id: int) -> StreamingHttpResponse:
        project = _data_project(request, project_id)
        # A plain dict: a QueryDict would turn every omitted boolean into false.
        data = ExportStreamQuerySerializer(data=request.query_params.dict())
        data.is_valid(raise_exception=True)
        arguments = data.export_arguments()
        split = arguments.pop("split", None)
        limit = arguments.pop("limit", None)
        chunks = services.export_stream_open(project=project, split=split, limit=limit, **arguments)
        container = arguments["container"]
        response = StreamingHttpResponse(chunks, content_type=CONTENT_TYPES[container])
        filename = f"ranklab-project-{project.pk}-{arguments['format']}.{container}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class ExportDetailView(APIView):
    @extend_schema(
        summary="An export job: status, progress, rows per split, sha256",
        responses={200: ExportJobSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request, export_id: int) -> Response:
        job = export_job_for_user(user=signed_in_user(request), export_id=export_id)
        return Response(ExportJobSerializer(job).data)


class ExportDownloadView(APIView):
    @extend_schema(
        summary="Download an export file",
        description="The whole export, or with `?split=train|test` one split's file. The "
        "`X-Content-SHA256` header carries the file's sha256.",
        parameters=[
            OpenApiParameter("split", str, enum=["train", "test"], required=False),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(description="The export file"),
            409: NOT_READY,
            410: FILE_MISSING,
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, export_id: int) -> FileResponse:
        job = export_job_for_user(user=signed_in_user(request), export_id=export_id)
        split = request.query_params.get("split") or None
        handle, name = services.export_file_open(job=job, split=split)
        sha256 = job.sha256 if name == job.file.name else job.splits[str(split)]["sha256"]
        suffix = f"-{split}" if split and name != job.file.name else ""
        filename = (
            f"ranklab-project-{job.project_id}-export-{job.pk}-{job.format}{suffix}.{job.container}"
        )
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=filename,
            content_type=CONTENT_TYPES[job.container],
        )
        response["X-Content-SHA256"] = sha256
        return response


class ExportFileView(APIView):
    @extend_schema(
        summary="Delete an export's files (lead)",
        description="Frees the storage; the job record with its parameters, row counts and "
        "sha256 stays, so the export can be made again.",
        request=None,
        responses={200: ExportJobSerializer, 409: NOT_READY, **ERROR_RESPONSES},
    )
    def delete(self, request: Request, export_id: int) -> Response:
        user = signed_in_user(request)
        job = export_job_for_user(user=user, export_id=export_id)
        labeling_selectors.project_for_user(
            user=user, project_id=job.project_id, roles=labeling_selectors.LEAD_ROLES
        )
        job = services.export_job_delete_file(job=job, deleted_by=user)
        return Response(ExportJobSerializer(job).data)


class ExportPreviewView(APIView):
    @extend_schema(
        summary="The first rows of an export file",
        parameters=[OpenApiParameter("rows", int, required=False, description="1 to 50")],
        responses={
            200: ExportPreviewSerializer,
            409: NOT_READY,
            410: FILE_MISSING,
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, export_id: int) -> Response:
        job = export_job_for_user(user=signed_in_user(request), export_id=export_id)
        raw = request.query_params.get("rows", str(services.PREVIEW_ROWS))
        if not raw.isdigit() or not 1 <= int(raw) <= 50:
            raise InvalidInput("rows must be a whole number from 1 to 50", field="rows")
        return Response({"rows": services.export_preview(job=job, limit=int(raw))})
