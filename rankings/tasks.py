"""Celery tasks for rankings: thin interfaces that load by id and call a service."""

from __future__ import annotations

from celery import shared_task

from labeling.models import Project
from rankings import services


@shared_task(name="rankings.tasks.agreement_run_compute")
def agreement_run_compute_task(run_id: int) -> dict:
    return services.agreement_run_compute(run_id=run_id)


@shared_task(name="rankings.tasks.agreement_run_all_projects")
def agreement_run_all_projects() -> dict:
    """Beat entry: queue a run for every project with rankings newer than its last run."""
    queued = 0
    for project in Project.objects.all().iterator():
        if services.agreement_run_is_stale(project=project):
            services.agreement_run_request(project=project, trigger="schedule")
            queued += 1
    return {"queued": queued}
