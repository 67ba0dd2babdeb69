"""Celery tasks for rankings: thin interfaces that load by id and call a service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from rankings import services


@shared_task(name="rankings.tasks.agreement_run_compute")
def agreement_run_compute_task(run_id: int) -> dict[str, Any]:
    """Compute one agreement run; a run already claimed or finished is skipped."""
    return services.agreement_run_compute(run_id=run_id)


@shared_task(name="rankings.tasks.agreement_run_all_projects")
def agreement_run_all_projects() -> dict[str, int]:
    """Beat entry: queue a run for every project with rankings newer than its last run."""
    return services.agreement_runs_queue_due()
