"""Admin for operators: rankings (read-only: nothing a rater submitted is edited here),
agreement runs with their rater scores, and quality flags."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from rankings.models import AgreementRun, Flag, Ranking, RaterScore


class ReadOnlyAdmin(admin.ModelAdmin):
    """Derived or submitted data: shown, never changed or deleted from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Ranking)
class RankingAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "prompt", "rater", "is_repeat", "seconds", "created_at"]
    list_filter = ["is_repeat"]
    search_fields = ["rater__username"]
    list_select_related = ["project", "rater"]
    show_full_result_count = False


class RaterScoreInline(admin.TabularInline):
    model = RaterScore
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "rater",
        "rankings",
        "agreement",
        "gold_accuracy",
        "self_consistency",
        "tie_rate",
    )


@admin.register(AgreementRun)
class AgreementRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "status", "trigger", "n_rankings", "created_at", "error"]
    list_filter = ["status", "trigger"]
    list_select_related = ["project"]
    inlines = [RaterScoreInline]


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "rater", "code", "status", "created_at"]
    list_filter = ["code", "status"]
    search_fields = ["rater__username"]
    raw_id_fields = ["project", "rater", "run", "resolved_by"]
    readonly_fields = ["evidence", "code", "run", "created_at"]
