"""The lead's export page: start an export, watch it, preview and download it, delete files.

GET renders the page, or only its `jobs` fragment for htmx polling while a job runs; POST
starts an export and answers with that fragment (or the form with its errors).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import retarget
from django_htmx.middleware import HtmxDetails

from core.auth import signed_in_user
from core.errors import NotAllowed, NotFound, RanklabError
from exports import selectors, services
from exports.forms import ExportForm
from exports.models import ExportJob
from labeling import selectors as labeling_selectors
from labeling.models import Project, Role

PREVIEW_TEXT_CHARS = 400


class LeadRequest(HttpRequest):
    htmx: HtmxDetails


def _project(request: HttpRequest, project_id: int, roles: tuple[str, ...]) -> Project:
    try:
        return labeling_selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=roles
        )
    except NotFound as error:
        raise Http404(error.message) from None
    except NotAllowed as error:
        raise PermissionDenied(error.message) from None


def _job(project: Project, job_id: int) -> ExportJob:
    job = (
        ExportJob.objects.filter(project=project, pk=job_id)
        .defer("exported_prompt_ids")
        .select_related("created_by")
        .first()
    )
    if job is None:
        raise Http404("export not found")
    return job


def _context(
    request: HttpRequest, project: Project, form: ExportForm | None = None
) -> dict[str, Any]:
    jobs = selectors.export_jobs_of_project(project=project)
    role = labeling_selectors.project_role_for(user=request.user, project=project)
    return {
        "project": project,
        "jobs": jobs,
        "form": form or ExportForm(earlier_jobs=jobs),
        "polling": any(job.is_live for job in jobs),
        "is_lead": role == Role.LEAD,
    }


@login_required
@require_http_methods(["GET", "POST"])
def project_exports(request: LeadRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id, labeling_selectors.DATA_ROLES)
    if request.method == "POST":
        earlier = selectors.export_jobs_of_project(project=project)
        form = ExportForm(request.POST, earlier_jobs=earlier)
        if form.is_valid():
            try:
                job = services.export_job_create(
                    project=project, created_by=signed_in_user(request), **form.export_arguments()
                )
            except RanklabError as error:
                form.add_error(error.field if error.field in form.fields else None, error.message)
            else:
                if request.htmx:
                    return render(request, "exports/project.html#jobs", _context(request, project))
                messages.success(request, f"Export {job.pk} started.")
                return redirect("exports:project", project_id=project.pk)
        context = _context(request, project, form)
        if request.htmx:
            response = render(request, "exports/project.html#export-form", context)
            return retarget(response, "#export-form")
        return render(request, "exports/project.html", context, status=400)
    template = "exports/project.html#jobs" if request.htmx else "exports/project.html"
    return render(request, template, _context(request, project))


@login_required
@require_GET
def preview(request: LeadRequest, project_id: int, job_id: int) -> HttpResponse:
    project = _project(request, project_id, labeling_selectors.DATA_ROLES)
    job = _job(project, job_id)
    try:
        rows = services.export_preview(job=job)
    except RanklabError as error:
        rows, problem = [], error.message
    else:
        problem = ""
    context = {
        "project": project,
        "job": job,
        "rows": [_shown(row) for row in rows],
        "problem": problem,
    }
    template = "exports/preview.html#rows" if request.htmx else "exports/preview.html"
    return render(request, template, context)


def _shown(row: dict[str, Any]) -> str:
    """A row as JSON with one column per line and long texts shortened for the page."""
    columns = (
        f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}"
        for key, value in _shorten(row).items()
    )
    return "{\n" + ",\n".join(columns) + "\n}"


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > PREVIEW_TEXT_CHARS:
        return value[:PREVIEW_TEXT_CHARS] + f"… [{len(value) - PREVIEW_TEXT_CHARS} more characters]"
    if isinstance(value, dict):
        return {key: _shorten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    return value


@login_required
@require_POST
def delete_file(request: LeadRequest, project_id: int, job_id: int) -> HttpResponse:
    project = _project(request, project_id, labeling_selectors.LEAD_ROLES)
    job = _job(project, job_id)
    try:
        services.export_job_delete_file(job=job, deleted_by=signed_in_user(request))
    except RanklabError as error:
        if not request.htmx:
            messages.error(request, error.message)
    else:
        if not request.htmx:
            messages.success(request, f"The files of export {job.pk} were deleted.")
    if request.htmx:
        return render(request, "exports/project.html#jobs", _context(request, project))
    return redirect("exports:project", project_id=project.pk)
