"""What one rater cycle (next-task, then submit) costs the web side, in-process: CPU time,
and with `--instructions` the instructions executed, counted by valgrind's callgrind.

Wall-clock and CPU figures move with whatever else the machine runs, and on a shared
machine its speed drifts from one minute to the next; the instruction count does not. It
is the way to compare two trees there: run this from each (the script puts its own tree
first on the path) and compare the counts.

The requests go through Django's WSGI handler as gunicorn sends them (the request signals
included: connection checks, persistent connections), on a 6,000-prompt project
(prompt ~40 words, K=4 responses ~120 words), a new rater each run; the first `--warm`
cycles are not counted. Agreement runs the submits ask for are queued to Redis, as in
production, not run (the bench project asks for one every 1,000,000 submits, so none
comes due among the cycles). Instructions: two processes run under callgrind side by side, one
stopping after the warm-up, one going on for `--cycles` more; the difference of their
counts is what the cycles executed (start-up and warm-up cancel out).

    .venv/bin/python bench/rater_cycle_cost.py [--cycles 100] [--warm 20] [--instructions]
        [--reuse]

Uses its own database (ranklab_bench_cycle) and Redis db 13 (flushed at the end). With
`--instructions` it needs valgrind and takes about five minutes (Python runs ~30x slower
under it). Exits non-zero only when it cannot run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranklab_bench_cycle"
)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import BENCH_DATABASE_URL, ROOT, django_setup, machine, recreate_database
from rater_loop import BENCH_BROKER_URL, add_rater, create_project, fill_project

PROJECT = "rater cycle cost"
PROMPTS = 6_000


def prepare() -> None:
    recreate_database()
    django_setup()
    from labeling.models import Project

    project_id = create_project(PROJECT)
    fill_project(project_id, PROMPTS)
    # Every submit still counts toward the next agreement run (a cache increment), but no
    # run comes due among the measured cycles: one would add its request and its queue
    # client's first use to some runs and not others.
    Project.objects.filter(pk=project_id).update(agreement_every_n_rankings=1_000_000)


def call(handler: Any, method: str, path: str, token: str, body: bytes = b"") -> tuple[str, bytes]:
    """One request through the WSGI handler, as a WSGI server hands it over."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
    }
    answer: dict[str, str] = {}

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> None:
        answer["status"] = status

    payload = b"".join(handler(environ, start_response))
    return answer["status"], payload


def cycle(handler: Any, project_id: int, token: str) -> None:
    status, payload = call(handler, "GET", f"/api/projects/{project_id}/next-task/", token)
    if not status.startswith("200"):
        raise RuntimeError(f"next-task answered {status}: {payload[:200]!r}")
    task = json.loads(payload)
    body = json.dumps({"ranking": [[item["id"]] for item in task["responses"]], "seconds": 20})
    path = f"/api/assignments/{task['assignment_id']}/ranking/"
    status, payload = call(handler, "POST", path, token, body.encode())
    if not status.startswith("201"):
        raise RuntimeError(f"submit answered {status}: {payload[:200]!r}")


def measure(cycles: int, warm: int) -> None:
    """The child: warm up, then time `cycles` cycles; one JSON line on stdout."""
    django_setup(migrate=False)
    from django.core.handlers.wsgi import WSGIHandler

    from labeling.models import Project

    project_id = Project.objects.get(name=PROJECT).pk
    _, token = add_rater(project_id, f"cycle-{time.time_ns()}")
    handler = WSGIHandler()
    for _ in range(warm):
        cycle(handler, project_id, token)
    started = time.process_time()
    for _ in range(cycles):
        cycle(handler, project_id, token)
    cpu = time.process_time() - started
    print(json.dumps({"cpu_ms": cpu * 1000 / max(cycles, 1)}))


def child_command(cycles: int, warm: int) -> list[str]:
    return [sys.executable, __file__, "--child", "--cycles", str(cycles), "--warm", str(warm)]


def child_env() -> dict[str, str]:
    return {**os.environ, "CELERY_BROKER_URL": BENCH_BROKER_URL, "PYTHONHASHSEED": "0"}


def cpu_ms_a_cycle(cycles: int, warm: int) -> float:
    done = subprocess.run(
        child_command(cycles, warm), cwd=ROOT, env=child_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["cpu_ms"])


def instructions_a_cycle(cycles: int, warm: int) -> float:
    """Two processes under callgrind, side by side: the warm-up alone, and the warm-up then
    `cycles` cycles; the difference of their counts is the cycles' own."""
    with tempfile.TemporaryDirectory() as scratch:
        runs = [
            subprocess.Popen(
                [
                    *("valgrind", "--tool=callgrind"),
                    f"--callgrind-out-file={Path(scratch) / f'callgrind.{measured}'}",
                    *child_command(measured, warm),
                ],
                cwd=ROOT,
                env=child_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for measured in (0, cycles)
        ]
        counts = [collected(run) for run in runs]
    return (counts[1] - counts[0]) / cycles


def collected(run: subprocess.Popen[str]) -> int:
    _, stderr = run.communicate()
    count = re.search(r"Collected : (\d+)", stderr)
    if run.returncode != 0 or count is None:
        raise RuntimeError(f"the process under callgrind failed:\n{stderr[-2000:]}")
    return int(count.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep the bench database")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        measure(options.cycles, options.warm)
        return
    print(machine())
    print(f"tree: {ROOT}; database: {BENCH_DATABASE_URL.rsplit('/', 1)[1]}")
    if not options.reuse:
        prepare()
    try:
        if options.instructions:
            count = instructions_a_cycle(options.cycles, options.warm)
            print(
                f"{options.cycles} cycles after {options.warm}: "
                f"{count / 1e6:.1f} M instructions a cycle (callgrind)"
            )
        else:
            cpu_ms = cpu_ms_a_cycle(options.cycles, options.warm)
            print(f"{options.cycles} cycles after {options.warm}: CPU {cpu_ms:.2f} ms a cycle")
    finally:
        import redis

        redis.Redis.from_url(BENCH_BROKER_URL).flushdb()


if __name__ == "__main__":
    main()
