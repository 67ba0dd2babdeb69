"""Serializers for export jobs, their parameters and the stream endpoint's query."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.jobs import JobStatus
from exports.models import Container, ExportJob
from exports.params import PARAMS, ExportParam, Kind
from exports.services import STREAM_MAX_ROWS


def serializer_field(param: ExportParam) -> serializers.Field[Any, Any, Any, Any]:
    """The API field of a parameter. Only the job's own columns (format, strategy,
    container) get a default here; the others are left out when omitted, and their
    defaults are filled in by `export_params_clean`."""
    default = param.default
    help_text = param.help
    if default is not None and param.kind is not Kind.CHOICE:
        help_text += f" Default {str(default).lower() if isinstance(default, bool) else default}."
    common: dict[str, Any] = {"help_text": help_text}
    if param.kind is Kind.CHOICE:
        return serializers.ChoiceField(choices=list(param.choices), default=default, **common)
    common["required"] = False
    if param.kind is Kind.BOOLEAN:
        return serializers.BooleanField(**common)
    if param.kind is Kind.TIME:
        return serializers.DateTimeField(**common)
    low, high = param.minimum, param.maximum
    if param.kind is Kind.NUMBER:
        return serializers.FloatField(min_value=low, max_value=high, **common)
    return serializers.IntegerField(
        min_value=None if low is None else int(low),
        max_value=None if high is None else int(high),
        **common,
    )


class ExportParamsSerializer(serializers.Serializer[Any]):
    """Every export parameter, from the registry; anything else is refused, naming it."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()  # declared ones (the stream's) win
        for param in PARAMS:
            fields.setdefault(param.name, serializer_field(param))
        return fields

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({unknown[0]: ["unknown parameter"]})
        return super().to_internal_value(data)

    def export_arguments(self) -> dict[str, Any]:
        """format/strategy/container, the params dict, and the stream's own options, as
        the services take them."""
        values = dict(self.validated_data)
        params = {
            param.name: values.pop(param.name)
            for param in PARAMS
            if param.stored and param.name in values
        }
        return {**values, "params": params}


class ExportCreateSerializer(ExportParamsSerializer):
    pass


class ExportStreamQuerySerializer(ExportParamsSerializer):
    container = serializers.ChoiceField(
        choices=[(Container.JSONL, "JSON Lines"), (Container.JSONL_GZ, "gzip JSON Lines")],
        default=Container.JSONL,
    )
    split = serializers.ChoiceField(
        choices=["train", "test"], required=False, help_text="Only this split's rows."
    )
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=STREAM_MAX_ROWS,
        help_text=f"Send only the first rows. Without it the export must have at most "
        f"{STREAM_MAX_ROWS} rows (413 otherwise).",
    )


class SplitSerializer(serializers.Serializer[Any]):
    rows = serializers.IntegerField()
    sha256 = serializers.CharField(required=False)
    size_bytes = serializers.IntegerField(required=False)
    download_url = serializers.CharField(required=False)


class ExportJobSerializer(serializers.ModelSerializer[ExportJob]):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    progress = serializers.FloatField(read_only=True, help_text="Rows written over the estimate.")
    splits = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    preview_url = serializers.SerializerMethodField()
    card_url = serializers.SerializerMethodField(
        help_text="The dataset card (README.md); it stays when the files are deleted."
    )
    archive_url = serializers.SerializerMethodField(
        help_text="A zip of the card and the data files as the card's configs read them."
    )

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
            "rows_estimated",
            "progress",
            "prompts",
            "splits",
            "sha256",
            "size_bytes",
            "last_ranking_id",
            "timings",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "file_deleted_at",
            "download_url",
            "preview_url",
            "card_url",
            "archive_url",
        ]

    @extend_schema_field(
        serializers.DictField(
            child=SplitSerializer(),
            help_text="Rows per split; sha256, size and download_url when the split has a file.",
        )
    )
    def get_splits(self, job: ExportJob) -> dict[str, dict[str, Any]]:
        splits = {}
        for name, split in sorted(job.splits.items()):
            entry = {key: value for key, value in split.items() if key != "file"}
            if split.get("file"):
                entry["download_url"] = (
                    reverse("api-export-download", kwargs={"export_id": job.pk}) + f"?split={name}"
                )
            splits[name] = entry
        return splits

    def get_download_url(self, job: ExportJob) -> str | None:
        if not job.has_file:
            return None
        return reverse("api-export-download", kwargs={"export_id": job.pk})

    def get_preview_url(self, job: ExportJob) -> str | None:
        if not job.has_file:
            return None
        return reverse("api-export-preview", kwargs={"export_id": job.pk})

    def get_card_url(self, job: ExportJob) -> str | None:
        if job.status != JobStatus.DONE or not _has_card(job):
            return None
        return reverse("api-export-card", kwargs={"export_id": job.pk})

    def get_archive_url(self, job: ExportJob) -> str | None:
        if not job.has_file or not _has_card(job):
            return None
        return reverse("api-export-archive", kwargs={"export_id": job.pk})


def _has_card(job: ExportJob) -> bool:
    # Lists annotate `has_card` rather than read every card (`exports.selectors`).
    has_card = getattr(job, "has_card", None)
    return bool(job.card) if has_card is None else bool(has_card)


class ExportPreviewSerializer(serializers.Serializer[Any]):
    rows = serializers.ListField(child=serializers.DictField())
