"""A real Celery worker for the fault tests, with its work slowed down so a test can strike
mid-job: `python -m tests.faults.worker [celery worker options]`.

FAULT_BATCH_DELAY (seconds) sleeps before each export batch's heartbeat, FAULT_BATCH_SIZE
makes the batches small, FAULT_MATHS_DELAY sleeps in the maths of each part of an agreement
run. Nothing else differs from `ranklab worker`: the same app, settings (from the
environment), tasks and pool.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def slow_down() -> None:
    from exports import selectors as export_selectors
    from exports.services import jobs as export_jobs
    from rankings.runs import streamed

    batch_delay = float(os.environ.get("FAULT_BATCH_DELAY") or 0)
    if os.environ.get("FAULT_BATCH_SIZE"):
        export_selectors.PROMPT_BATCH_SIZE = int(os.environ["FAULT_BATCH_SIZE"])
    if batch_delay:
        beat = export_jobs._beat

        def slow_beat(job: Any, **progress: Any) -> None:
            time.sleep(batch_delay)
            beat(job, **progress)

        export_jobs._beat = slow_beat
    maths_delay = float(os.environ.get("FAULT_MATHS_DELAY") or 0)
    if maths_delay:
        first_pass = streamed.first_pass

        def slow_maths(block: Any) -> Any:
            time.sleep(maths_delay)
            return first_pass(block)

        streamed.first_pass = slow_maths


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    slow_down()  # before the pool forks: its children inherit the slow-down
    from config.celery import app

    app.worker_main(["worker", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
