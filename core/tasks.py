"""Celery tasks of the job lifecycle: the sweep that ends jobs nobody will finish."""

from __future__ import annotations

from celery import shared_task

from core import jobs


@shared_task(name="core.tasks.jobs_sweep")
def jobs_sweep_task() -> dict[str, int]:
    return jobs.sweep_all_job_kinds()
