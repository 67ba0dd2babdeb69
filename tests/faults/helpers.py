"""Plain helpers (not fixtures) shared by these tests."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import unused_port

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ROOT = Path(__file__).resolve().parents[2]


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


@contextmanager
def ranklab_serve(
    env: dict[str, str], log: Path, *, seconds: float
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`ranklab serve` (gunicorn as production runs it: the app preloaded in the master) on
    a free port, answering `/healthz`; (its process, its base URL). Stopped on leaving."""
    port = unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            with DIRECT.open(f"{url}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_until(answers, seconds=seconds, what="web server up")
        yield process, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
