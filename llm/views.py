"""The lead's models page: endpoints (keys write-only), generation with live progress."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.auth import signed_in_user
from core.errors import InvalidInput, NotAllowed, NotFound, RanklabError
from core.jobs import job_raise_if_not_queued
from labeling.models import Project
from llm import selectors
from llm.api.serializers import EndpointSerializer
from llm.models import CallStatus, GenerationJob, JudgeRun, JudgeVerdict, ModelEndpoint
from llm.services import calibration as calibration_services
from llm.services import endpoints as endpoint_services
from llm.services import generation as generation_services
from llm.services import judge_report, judging, routing

JOBS_ON_PAGE = 10


def _project(request: HttpRequest, project_id: int) -> Project:
    try:
        return selectors.managed_project(user=signed_in_user(request), project_id=project_id)
    except NotFound as error:
        raise Http404(error.message) from error
    except NotAllowed as error:
        raise PermissionDenied(error.message) from error


def _jobs(project: Project) -> list[dict[str, Any]]:
    jobs = GenerationJob.objects.filter(project=project).order_by("-id")[:JOBS_ON_PAGE]
    return [generation_services.generation_report(job=job, failures_limit=20) for job in jobs]


def _judge_runs(project: Project) -> list[dict[str, Any]]:
    runs = JudgeRun.objects.filter(project=project).order_by("-id")[:JOBS_ON_PAGE]
    return [judge_report.judge_run_report(run=run, failures_limit=20) for run in runs]


def _calibration(project: Project, endpoint_id: str | None) -> dict[str, Any] | None:
    """The calibration of the chosen endpoint, or of the first one with verdicts."""
    judged = ModelEndpoint.objects.filter(
        project=project, verdicts__status=CallStatus.DONE
    ).distinct()
    endpoint = judged.filter(pk=int(endpoint_id)).first() if endpoint_id else judged.first()
    if endpoint is None:
        return None
    return calibration_services.judge_calibration(project=project, endpoint=endpoint)


def _preview(project: Project) -> dict[str, Any] | None:
    try:
        return judging.judge_preview(project=project)
    except NotFound:
        return None


def _context(project: Project, calibrate: str | None = None, **extra: Any) -> dict[str, Any]:
    jobs = _jobs(project)
    runs = _judge_runs(project)
    system_template, user_template = judging.judge_template_of(project=project)
    return {
        "project": project,
        "endpoints": ModelEndpoint.objects.filter(project=project).order_by("name"),
        "jobs": jobs,
        "runs": runs,
        "polling": any(row["status"] in ("queued", "running") for row in [*jobs, *runs]),
        "template": {"system_template": system_template, "user_template": user_template},
        "preview": _preview(project),
        "calibration": _calibration(project, calibrate),
        "judged_endpoints": ModelEndpoint.objects.filter(
            project=project, pk__in=JudgeVerdict.objects.values("endpoint_id")
        ),
        "judge_reopened": routing.judge_reopened_prompts(project=project),
        "routing_default": routing.DEFAULT_MAX_AGREEMENT,
        "selections": [
            ("missing", "Prompts with fewer than 2 responses"),
            ("all", "Every prompt not yet served"),
        ],
        **extra,
    }


@login_required
def project_models(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id)
    context = _context(project, calibrate=request.GET.get("calibrate") or None)
    if request.GET.get("fragment") == "jobs":
        return render(request, "llm/_jobs.html", context)
    return render(request, "llm/project.html", context)


@login_required
@require_POST
def endpoint_add(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id)
    data = {key: value for key, value in request.POST.items() if key != "csrfmiddlewaretoken"}
    if not data.get("api_key"):
        data.pop("api_key", None)
    serializer = EndpointSerializer(data=data)
    try:
        if not serializer.is_valid():
            field, problems = next(iter(serializer.errors.items()))
            raise RanklabError(f"{field}: {' '.join(map(str, problems))}", field=field)
        endpoint = endpoint_services.endpoint_create(
            project=project, values=dict(serializer.validated_data)
        )
    except RanklabError as error:
        values = {key: value for key, value in data.items() if key != "api_key"}
        context = _context(project, endpoint_error=error.message, values=values)
        return render(request, "llm/project.html", context, status=400)
    messages.success(request, f"Endpoint “{endpoint.name}” added.")
    return redirect("llm:project", project_id=project.pk)


@login_required
@require_POST
def endpoint_remove(request: HttpRequest, project_id: int, endpoint_id: int) -> HttpResponse:
    project = _project(request, project_id)
    endpoint = _endpoint(project, endpoint_id)
    endpoint_services.endpoint_delete(endpoint=endpoint)
    messages.success(request, f"Endpoint “{endpoint.name}” deleted.")
    return redirect("llm:project", project_id=project.pk)


@login_required
@require_POST
def endpoint_try(request: HttpRequest, project_id: int, endpoint_id: int) -> HttpResponse:
    project = _project(request, project_id)
    endpoint = _endpoint(project, endpoint_id)
    result = endpoint_services.endpoint_test(endpoint=endpoint)
    return render(request, "llm/_test_result.html", {"endpoint": endpoint, "result": result})


@login_required
@require_POST
def generation_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id)
    try:
        endpoint_ids = [int(value) for value in request.POST.getlist("endpoints")]
        samples = int(request.POST.get("samples") or 1)
    except ValueError:
        endpoint_ids, samples = [], 0
    try:
        job = generation_services.generation_create(
            project=project,
            by=signed_in_user(request),
            endpoint_ids=endpoint_ids,
            samples=samples,
            prompts=request.POST.get("prompts") or "missing",
        )
        job_raise_if_not_queued(job)
    except RanklabError as error:
        context = _context(project, generation_error=error.message)
        return render(request, "llm/project.html", context, status=error.status_code)
    messages.success(request, f"Generation #{job.pk} started.")
    return redirect("llm:project", project_id=project.pk)


@login_required
@require_POST
def judge_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id)
    try:
        endpoint_id = int(request.POST.get("endpoint") or 0)
    except ValueError:
        endpoint_id = 0
    try:
        run = judging.judge_run_create(
            project=project,
            by=signed_in_user(request),
            endpoint_id=endpoint_id,
            prompts=request.POST.get("prompts") or "unjudged",
        )
        job_raise_if_not_queued(run)
    except RanklabError as error:
        context = _context(project, judge_error=error.message)
        return render(request, "llm/project.html", context, status=error.status_code)
    messages.success(request, f"Judge run #{run.pk} started.")
    return redirect("llm:project", project_id=project.pk)


@login_required
@require_POST
def judge_template_save(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id)
    try:
        if request.POST.get("reset"):
            judging.judge_template_reset(project=project)
        else:
            judging.judge_template_update(
                project=project,
                system_template=request.POST.get("system_template", ""),
                user_template=request.POST.get("user_template", ""),
            )
    except RanklabError as error:
        context = _context(project, template_error=error.message)
        return render(request, "llm/project.html", context, status=error.status_code)
    messages.success(request, "Judge template saved; the preview shows what is sent.")
    return redirect("llm:project", project_id=project.pk)


@login_required
@require_POST
def judge_routing(request: HttpRequest, project_id: int) -> HttpResponse:
    """Reopen the prompts the chosen judge disagrees on for one more human rater."""
    project = _project(request, project_id)
    try:
        endpoint = endpoint_services.endpoint_for_project(
            project=project, endpoint_id=_form_int(request.POST.get("endpoint"), "endpoint")
        )
        max_agreement = _form_fraction(request.POST.get("max_agreement"), "max_agreement")
        result = routing.judge_routing_apply(
            project=project,
            endpoint=endpoint,
            max_agreement=max_agreement,
            include_inconsistent=request.POST.get("include_inconsistent") == "on",
        )
    except RanklabError as error:
        context = _context(project, routing_error=error.message)
        return render(request, "llm/project.html", context, status=error.status_code)
    count = result["reopened"]
    messages.success(
        request,
        f"{count} prompt{'s' if count != 1 else ''} reopened for one more human rater"
        if count
        else "No prompt to reopen: the judge agrees with the humans at this threshold.",
    )
    return redirect(f"{reverse('llm:project', args=[project.pk])}#routing-title")


def _form_int(raw: str | None, field: str) -> int:
    try:
        return int(raw or "")
    except ValueError:
        raise InvalidInput("choose one", field=field) from None


def _form_fraction(raw: str | None, field: str) -> float:
    if raw in (None, ""):
        return routing.DEFAULT_MAX_AGREEMENT
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput("must be a number between 0 and 1", field=field) from None


def _endpoint(project: Project, endpoint_id: int) -> ModelEndpoint:
    endpoint = ModelEndpoint.objects.filter(project=project, pk=endpoint_id).first()
    if endpoint is None:
        raise Http404("endpoint not found")
    return endpoint
