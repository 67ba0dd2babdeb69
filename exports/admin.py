"""Admin for operators: export jobs, their parameters, status and file (read-only)."""

from __future__ import annotations

from django.contrib import admin

from exports.models import ExportJob
from rankings.admin import ReadOnlyAdmin


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "format", "strategy", "container", "status", "rows"]
    list_filter = ["status", "format", "container"]
    list_select_related = ["project"]
    exclude = ["exported_prompt_ids"]
