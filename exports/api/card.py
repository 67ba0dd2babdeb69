"""An export's dataset card (README.md) and the archive of the card with the data files."""

from __future__ import annotations

import hashlib

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES, ErrorSerializer
from core.auth import signed_in_user
from exports import services
from exports.api.views import FormatIsAnExportParameter, export_job_for_user

NO_CARD = OpenApiResponse(
    ErrorSerializer, description="The export is not done, or was made before dataset cards"
)


class ExportCardView(APIView):
    # Any Accept header gets the card (errors are JSON), `text/markdown` included.
    content_negotiation_class = FormatIsAnExportParameter

    @extend_schema(
        summary="An export's dataset card (README.md)",
        description="Markdown with Hugging Face YAML metadata (`configs` per split, "
        "`size_categories`, `tags`, `license` for the lead to set) and how the data was "
        "made: guidelines, raters and overlap, gold and repeat rates, agreement with "
        "intervals, flagged and excluded raters (counts), the parameters, each file's "
        "sha256. Made with the files, so it stays when they are deleted; the same "
        "parameters over the same data give the same card. `X-Content-SHA256` is its sha256.",
        responses={
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, description="README.md"),
            409: NO_CARD,
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, export_id: int) -> HttpResponse:
        job = export_job_for_user(user=signed_in_user(request), export_id=export_id)
        card = services.export_card(job=job).encode()
        response = HttpResponse(card, content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="README.md"'
        response["X-Content-SHA256"] = hashlib.sha256(card).hexdigest()
        return response


class ExportArchiveView(APIView):
    content_negotiation_class = FormatIsAnExportParameter

    @extend_schema(
        summary="An export as a zip: README.md and data/<split> files",
        description="The dataset card and the data files laid out as the card's `configs` "
        "read them (`data/train.jsonl`, `data/test.jsonl`, …): unzip and "
        "`datasets.load_dataset(folder)`, or push the folder to the Hugging Face Hub. "
        "Streamed; the same files give the same archive bytes.",
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="Zip"),
            409: NO_CARD,
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request, export_id: int) -> StreamingHttpResponse:
        job = export_job_for_user(user=signed_in_user(request), export_id=export_id)
        chunks = services.export_archive_open(job=job)
        response = StreamingHttpResponse(chunks, content_type="application/zip")
        filename = f"ranklab-project-{job.project_id}-export-{job.pk}-{job.format}.zip"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
