"""API shapes of the llm app. The API key is write-only: accepted, never returned."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from llm.addresses import base_url_refusal
from llm.models import MAX_CONCURRENCY, ModelEndpoint


class EndpointSerializer(serializers.ModelSerializer):
    api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=4000,
        trim_whitespace=True,
        style={"input_type": "password"},
        help_text='Write-only; stored encrypted and never returned. "" removes it.',
    )
    has_api_key = serializers.BooleanField(read_only=True)
    temperature = serializers.FloatField(min_value=0.0, max_value=2.0, required=False)
    top_p = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    max_tokens = serializers.IntegerField(min_value=1, max_value=262_144, required=False)
    concurrency = serializers.IntegerField(min_value=1, max_value=MAX_CONCURRENCY, required=False)
    timeout_seconds = serializers.FloatField(min_value=1.0, max_value=3600.0, required=False)
    max_retries = serializers.IntegerField(min_value=0, max_value=10, required=False)

    class Meta:
        model = ModelEndpoint
        fields = [
            "id",
            "project",
            "name",
            "base_url",
            "model",
            "api_key",
            "has_api_key",
            "temperature",
            "top_p",
            "max_tokens",
            "system_prompt",
            "concurrency",
            "timeout_seconds",
            "max_retries",
            "created_at",
        ]
        read_only_fields = ["id", "project", "has_api_key", "created_at"]
        # Uniqueness of the name is the service's to report (field "name").
        validators: list[Any] = []

    def validate_base_url(self, value: str) -> str:
        refusal = base_url_refusal(value)
        if refusal:
            raise serializers.ValidationError(refusal)
        return value.rstrip("/")


class EndpointTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField(required=False)
    model = serializers.CharField(required=False)
    reply = serializers.CharField(required=False)
    tokens_in = serializers.IntegerField(required=False)
    tokens_out = serializers.IntegerField(required=False)
    error = serializers.CharField(required=False)


class GenerationCreateSerializer(serializers.Serializer):
    endpoints = serializers.ListField(child=serializers.IntegerField(), min_length=1)
    samples = serializers.IntegerField(min_value=1, max_value=9, default=1)
    prompts = serializers.JSONField(
        required=False,
        help_text='"missing" (prompts with fewer than 2 responses), "all" (every prompt not '
        "yet served to raters) or a list of prompt ids. Calls whose response exists are "
        "never made again.",
    )


class GenerationProgressSerializer(serializers.Serializer):
    planned = serializers.IntegerField()
    done = serializers.IntegerField(help_text="Calls finished, succeeded or failed.")
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()


class GenerationFailureSerializer(serializers.Serializer):
    prompt_id = serializers.IntegerField()
    external_id = serializers.CharField()
    endpoint_id = serializers.IntegerField()
    endpoint = serializers.CharField()
    sample = serializers.IntegerField()
    reason = serializers.CharField()


class GenerationJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    error = serializers.CharField()
    endpoints = serializers.ListField(child=serializers.IntegerField())
    samples = serializers.IntegerField()
    prompts = serializers.JSONField()
    progress = GenerationProgressSerializer()
    skipped = serializers.DictField(child=serializers.IntegerField())
    failures = GenerationFailureSerializer(many=True)
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    wall_seconds = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
