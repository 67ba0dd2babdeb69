"""Celery tasks of agreement runs: thin interfaces that load by id and call a service.

The registered names keep the ``rankings.tasks`` prefix: they are what the broker, the beat
schedule (``config.settings``) and ``job_enqueue`` know the tasks by. ``RankingsConfig.ready``
imports this module, so every process that may send them has them registered.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from rankings.runs import parts, services


def agreement_run_compute(run_id: int) -> dict[str, Any]:
    """Compute one agreement run; a run already claimed or finished is skipped."""
    return services.agreement_run_compute(run_id=run_id)


def agreement_run_part(part_id: int) -> dict[str, Any]:
    """Compute one part of an agreement run; a part already claimed or finished is skipped."""
    return services.agreement_run_part_compute(part_id=part_id)


def agreement_runs_queue_due() -> dict[str, int]:
    """Beat entry: fail lost runs; queue a run for every project with rankings newer than
    its last run."""
    return services.agreement_runs_queue_due()


# Registered by call rather than as decorators: Celery's decorators are untyped.
agreement_run_compute_task = shared_task(name=services.COMPUTE_TASK)(agreement_run_compute)
agreement_run_part_task = shared_task(name=parts.PART_TASK)(agreement_run_part)
agreement_run_all_projects = shared_task(name="rankings.tasks.agreement_run_all_projects")(
    agreement_runs_queue_due
)
