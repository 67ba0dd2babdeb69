"""Record exports over the API: one row per authored record, streamed as JSON Lines."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES
from core.auth import signed_in_user
from exports.formats import RECORD_FORMAT_NAMES
from exports.records import record_export_lines
from labeling import selectors as labeling_selectors


class RecordExportView(APIView):
    @extend_schema(
        summary="Stream a record export (one row per record) as JSON Lines",
        description=f"Formats: {', '.join(RECORD_FORMAT_NAMES)}; each for its task kind.",
        responses={
            (200, "application/jsonl"): OpenApiResponse(
                response=OpenApiTypes.STR, description="JSON Lines rows"
            ),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, project_id: int, format_name: str) -> StreamingHttpResponse:
        project = labeling_selectors.project_for_user(
            user=signed_in_user(request),
            project_id=project_id,
            roles=labeling_selectors.DATA_ROLES,
        )
        lines = record_export_lines(project=project, name=format_name)
        response = StreamingHttpResponse(lines, content_type="application/jsonl")
        filename = f"ranklab-project-{project.pk}-{format_name}.jsonl"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
