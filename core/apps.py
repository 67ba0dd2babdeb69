from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Ranklab core"

    def ready(self) -> None:
        from celery.signals import task_failure

        task_failure.connect(_job_past_time_limit, weak=False, dispatch_uid="job-time-limit")


def _job_past_time_limit(
    sender: Any = None, exception: BaseException | None = None, args: Any = None, **kwargs: Any
) -> None:
    """Celery killed a job's task at its hard time limit: the job row says so at once."""
    from celery.exceptions import TimeLimitExceeded

    from core.jobs import job_fail_past_time_limit

    if isinstance(exception, TimeLimitExceeded) and sender is not None:
        limit = exception.args[0] if exception.args else "?"
        job_fail_past_time_limit(task_name=sender.name, args=args, limit=limit)
