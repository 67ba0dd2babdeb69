"""Celery tasks for exports: load the job by id and run the service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from exports import services


def export_job_run(job_id: int) -> dict[str, Any]:
    return services.export_job_run(job_id=job_id)


# Registered without decorator syntax: Celery's decorators are untyped.
export_job_run_task = shared_task(name=services.EXPORT_TASK)(export_job_run)
