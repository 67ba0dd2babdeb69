"""Serializers for export jobs, their parameters and the stream endpoint's query."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from exports.models import Container, ExportFormat, ExportJob, PairStrategy
from exports.services import STREAM_MAX_ROWS

PARAM_FIELDS = (
    "include_ties",
    "with_metadata",
    "min_agreement",
    "min_raters",
    "exclude_flagged_raters",
    "exclude_excluded_raters",
    "include_gold",
    "only_complete",
    "created_after",
    "created_before",
    "since_export",
    "until_ranking_id",
    "test_fraction",
    "seed",
)


class ExportParamsSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=ExportFormat.choices, default=ExportFormat.TRL)
    strategy = serializers.ChoiceField(choices=PairStrategy.choices, default=PairStrategy.ALL_PAIRS)
    container = serializers.ChoiceField(choices=Container.choices, default=Container.JSONL)
    include_ties = serializers.BooleanField(
        required=False,
        help_text="Export tied pairs (margin 0). Needs metadata on, or trl-reward; "
        "trl-unpaired cannot express a tie. Default false.",
    )
    with_metadata = serializers.BooleanField(
        required=False,
        help_text="Add prompt_id, prompt_external_id, chosen_id, rejected_id, chosen_model, "
        "rejected_model, margin, agreement, n_raters, rater_keys, group_id, split. Default true.",
    )
    min_agreement = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Drop pairs whose agreement (share of the prompt's raters ordering the pair "
        "the same way) is below this. Default 0.",
    )
    min_raters = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=1000,
        help_text="Only prompts with at least this many rankings after the filters. Default 1.",
    )
    exclude_flagged_raters = serializers.BooleanField(
        required=False, help_text="Leave out raters with an open quality flag. Default false."
    )
    exclude_excluded_raters = serializers.BooleanField(
        required=False, help_text="Leave out raters a lead excluded. Default true."
    )
    include_gold = serializers.BooleanField(
        required=False, help_text="Include gold prompts. Default false."
    )
    only_complete = serializers.BooleanField(
        required=False, help_text="Only prompts that collected their full overlap. Default false."
    )
    created_after = serializers.DateTimeField(
        required=False, help_text="Only rankings created at or after this time."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Only rankings created before this time."
    )
    since_export = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Incremental: leave out prompts covered by this earlier export of the "
        "project (and by the exports it continued).",
    )
    until_ranking_id = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="Only rankings up to this id. A job pins it to the newest ranking when it "
        "starts (see last_ranking_id); pass an earlier job's value to repeat that export.",
    )
    test_fraction = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=0.99,
        help_text="Share of prompts in the test split (by prompt, seeded). Default 0: no split.",
    )
    seed = serializers.IntegerField(
        required=False, min_value=0, help_text="Seed of the split. Default 0."
    )

    def export_arguments(self) -> dict:
        """format/strategy/container and the params dict, as the services take them."""
        values = dict(self.validated_data)
        params = {name: values.pop(name) for name in PARAM_FIELDS if name in values}
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


class SplitSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    sha256 = serializers.CharField(required=False)
    size_bytes = serializers.IntegerField(required=False)
    download_url = serializers.CharField(required=False)


class ExportJobSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    progress = serializers.FloatField(read_only=True, help_text="Rows written over the estimate.")
    splits = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    preview_url = serializers.SerializerMethodField()

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
        ]

    @extend_schema_field(
        serializers.DictField(
            child=SplitSerializer(),
            help_text="Rows per split; sha256, size and download_url when the split has a file.",
        )
    )
    def get_splits(self, job: ExportJob) -> dict:
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


class ExportPreviewSerializer(serializers.Serializer):
    rows = serializers.ListField(child=serializers.DictField())
