"""Celery tasks for exports: load the job by id and run the service."""

from __future__ import annotations

from celery import shared_task

from exports import services


@shared_task(name="exports.tasks.export_job_run")
def export_job_run_task(job_id: int) -> dict:
    return services.export_job_run(job_id=job_id)
