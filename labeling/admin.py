"""Admin for operators: projects and their people, prompts with their responses, leases.

Ranklab's own pages are where leads work; the admin is for inspecting data and fixing
accounts, so bulk-heavy lists are paginated and foreign keys are raw ids.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from labeling.models import (
    ApiToken,
    Assignment,
    AuditEvent,
    Invite,
    Membership,
    Project,
    Prompt,
    Response,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "role", "status", "excluded", "joined_at"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "overlap", "allow_ties", "created_by", "created_at"]
    search_fields = ["name"]
    raw_id_fields = ["created_by"]
    exclude = ["members"]
    readonly_fields = ["rater_key_salt"]
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return super().get_queryset(request).filter(staged_for__isnull=True)  # import stages


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role", "status", "excluded", "joined_at"]
    list_filter = ["role", "status", "excluded"]
    search_fields = ["user__username", "project__name"]
    raw_id_fields = ["project", "user"]


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["code", "project", "role", "uses", "max_uses", "expires_at"]
    raw_id_fields = ["project", "created_by"]


class ResponseInline(admin.StackedInline):
    model = Response
    extra = 0
    fields = ["position", "external_id", "model_name", "text", "metadata"]


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "external_id", "is_gold", "is_complete", "created_at"]
    list_filter = ["is_gold", "is_complete"]
    search_fields = ["external_id"]
    raw_id_fields = ["project"]
    list_select_related = ["project"]
    show_full_result_count = False  # counting a million prompts per page view costs seconds
    inlines = [ResponseInline]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "prompt", "rater", "status", "is_repeat", "expires_at"]
    list_filter = ["status", "is_repeat"]
    raw_id_fields = ["project", "prompt", "rater"]
    list_select_related = ["project", "rater"]
    show_full_result_count = False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, here as everywhere."""

    list_display = ["id", "created_at", "project", "actor_name", "action", "target"]
    list_filter = ["action"]
    search_fields = ["actor_name", "target"]
    list_select_related = ["project"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made by their owners; an operator may look, and revoke by deleting."""

    list_display = ["id", "user", "name", "prefix", "origin", "expires_at", "revoked_at"]
    list_filter = ["origin"]
    search_fields = ["user__username", "name", "prefix"]
    raw_id_fields = ["user"]
    fields = ("user", "name", "prefix", "origin", "created_at", "expires_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
