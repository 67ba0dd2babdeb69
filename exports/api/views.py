"""REST endpoints for export jobs and their files."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exports import selectors, services
from exports.api.serializers import ExportCreateSerializer, ExportJobSerializer
from exports.models import ExportJob, ExportStatus
from labeling import selectors as labeling_selectors
from labeling.api.views import ERROR_RESPONSES
from labeling.auth import signed_in_user
from labeling.errors import Conflict, NotFound

PARAM_FIELDS = (
    "include_gold",
    "include_ties",
    "min_raters",
    "with_metadata",
    "test_fraction",
    "seed",
)


def export_job_for_user(*, user, export_id: int) -> ExportJob:
    job = selectors.export_jobs_for_user(user=user).filter(pk=export_id).first()
    if job is None:
        raise NotFound("export not found")
    return job


class ExportListView(APIView):
    @extend_schema(responses={200: ExportJobSerializer(many=True), **ERROR_RESPONSES})
    def get(self, request: Request, project_id: int) -> Response:
        project = labeling_selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.DATA_ROLES
        )
        jobs = project.export_jobs.all()[:100]
        return Response(ExportJobSerializer(jobs, many=True).data)

    @extend_schema(
        request=ExportCreateSerializer, responses={202: ExportJobSerializer, **ERROR_RESPONSES}
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = labeling_selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=labeling_selectors.DATA_ROLES
        )
        data = ExportCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        params = {name: values.pop(name) for name in PARAM_FIELDS if name in values}
        job = services.export_job_create(
            project=project, created_by=signed_in_user(request), params=params, **values
        )
        job.refresh_from_db()
        return Response(ExportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailView(APIView):
    @extend_schema(responses={200: ExportJobSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, export_id: int) -> Response:
        return Response(
            ExportJobSerializer(
                export_job_for_user(user=signed_in_user(request), export_id=export_id)
            ).data
        )


class ExportDownloadView(APIView):
    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(description="The export file"),
            409: OpenApiResponse(description="The export is not done"),
            **ERROR_RESPONSES,
        }
    )
    def get(self, request: Request, export_id: int) -> FileResponse:
        job = export_job_for_user(user=signed_in_user(request), export_id=export_id)
        if job.status != ExportStatus.DONE or not job.file:
            raise Conflict(f"the export is {job.status}, not done", code="not_ready")
        filename = f"ranklab-project-{job.project_id}-export-{job.pk}-{job.format}.{job.container}"
        response = FileResponse(
            job.file.open("rb"),
            as_attachment=True,
            filename=filename,
            content_type="application/gzip" if job.container == "jsonl.gz" else "application/jsonl",
        )
        response["X-Content-SHA256"] = job.sha256
        return response
