"""Serializers for export jobs."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from exports.models import Container, ExportFormat, ExportJob, PairStrategy


class ExportCreateSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=ExportFormat.choices, default=ExportFormat.TRL)
    strategy = serializers.ChoiceField(choices=PairStrategy.choices, default=PairStrategy.ALL_PAIRS)
    container = serializers.ChoiceField(choices=Container.choices, default=Container.JSONL)
    include_gold = serializers.BooleanField(required=False)
    include_ties = serializers.BooleanField(required=False)
    min_raters = serializers.IntegerField(required=False, min_value=1, max_value=100)
    with_metadata = serializers.BooleanField(required=False)
    test_fraction = serializers.FloatField(required=False, min_value=0.0, max_value=0.99)
    seed = serializers.IntegerField(required=False, min_value=0)


class ExportJobSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "project",
            "status",
            "format",
            "strategy",
            "container",
            "params",
            "rows",
            "sha256",
            "size_bytes",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
        ]

    def get_download_url(self, job: ExportJob) -> str | None:
        if job.status != "done":
            return None
        return reverse("api-export-download", kwargs={"export_id": job.pk})
