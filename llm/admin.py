"""Admin for operators: model endpoints (never their keys), generation and judge jobs, and
the judge's verdicts, to inspect; changes go through the Models page and the API, where the
services validate them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from llm.models import GenerationJob, JudgeRun, JudgeVerdict, ModelEndpoint


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(ReadOnlyAdmin):
    """The encrypted key is left out of every admin view; `has_api_key` says whether one is set."""

    list_display = ["id", "project", "name", "model", "base_url", "concurrency", "has_api_key"]
    search_fields = ["name", "model"]
    list_select_related = ["project"]
    exclude = ["api_key_encrypted"]

    @admin.display(boolean=True, description="API key")
    def has_api_key(self, endpoint: ModelEndpoint) -> bool:
        return endpoint.has_api_key


@admin.register(GenerationJob)
class GenerationJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "status", "planned", "created_at", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["project"]


@admin.register(JudgeRun)
class JudgeRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "endpoint", "status", "planned", "created_at", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["project", "endpoint"]


@admin.register(JudgeVerdict)
class JudgeVerdictAdmin(ReadOnlyAdmin):
    list_display = ["id", "endpoint", "prompt", "status", "consistent", "pairs"]
    list_filter = ["status", "consistent"]
    raw_id_fields = ["run", "endpoint", "prompt"]
    list_select_related = ["endpoint"]
