"""Plain helpers (not fixtures) shared by these tests."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


JOB_SETTINGS = {
    "JOB_HEARTBEAT_SECONDS": 0.5,
    "JOB_STALE_SECONDS": 3,
    "JOB_QUEUED_SECONDS": 3,
    "JOB_GIVE_UP_SECONDS": 60,
    "JOB_SWEEP_SECONDS": 1.0,
}


def wait_until(condition: Callable[[], object], *, seconds: float, what: str) -> float:
    """Poll until the condition holds; how long it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not after {seconds:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started
