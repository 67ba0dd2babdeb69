"""Does streaming starve the rater loop? next-task/submit p95 idle vs with ten streams open,
against `ranklab serve` (gunicorn, threaded workers, as in production) and PostgreSQL.

A rank project of 2,000 prompts x 4 responses and one rater looping GET next-task, POST
ranking over HTTP; an arena project with two endpoints on a fake OpenAI-compatible server
(tests/llm/fake_server.py, in this process) that streams each reply a piece at a time with
`--piece-delay` seconds between pieces. Ten arena raters keep a stream open each the whole
time: start a battle, send a message, read side A's stream to its end, again. The rater
loop is timed idle, then while the streams run; the target is p95 with streams within 2x
of idle. Prints both, the ratio, queries per call, the streams seen open and the load.

    .venv/bin/python bench/streaming.py [--loops 300] [--streams 10] [--piece-delay 0.1]

Uses its own database (BENCH_STREAMING_DATABASE_URL, default ranklab_arena_bench), port 8811 and
Redis db 10 for queued agreement runs (no worker; flushed at the end). Exits non-zero only
when it cannot run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Its own port and Redis db, so it can run beside the other benches.
os.environ.setdefault("BENCH_PORT", "8811")
os.environ.setdefault("BENCH_BROKER_URL", "redis://127.0.0.1:6379/10")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from _setup import django_setup, machine, percentile, recreate_database
from rater_loop import (
    PORT,
    Rater,
    add_rater,
    create_project,
    fill_project,
    flush_bench_queue,
    http_loop,
    queries_per_call,
    start_server,
    stop_server,
)

DATABASE_URL = os.environ.get(
    "BENCH_STREAMING_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranklab_arena_bench"
)
PROMPTS = 2_000
TARGET_RATIO = 2.0


def create_arena(base_url: str) -> int:
    from django.contrib.auth.models import User

    from authoring.arena.options import clean_arena_options
    from labeling import services
    from labeling.models import TaskKind
    from llm.services.endpoints import endpoint_create

    lead, _ = User.objects.get_or_create(username="bench-lead")
    project = services.project_create(
        creator=lead,
        name="bench arena",
        task_kind=TaskKind.ARENA,
        task_options=clean_arena_options({"daily_cap": None}),
    )
    for name in ("north", "south"):
        endpoint_create(
            project=project,
            values={"name": name, "model": name, "base_url": base_url, "timeout_seconds": 60.0},
        )
    return project.pk


class Streamer(threading.Thread):
    """An arena rater who always has one reply streaming: new battle, message, read side A."""

    def __init__(self, project_id: int, token: str, stop: Any) -> None:
        super().__init__(daemon=True)
        self.client = Rater(project_id, token)
        self.project_id = project_id
        self.stop = stop
        self.streams = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._one_stream()
                self.streams += 1
            except Exception as error:
                self.errors.append(f"{type(error).__name__}: {error}")
                time.sleep(0.5)

    def _one_stream(self) -> None:
        status, payload, _ = self.client.call(
            "POST", f"/api/projects/{self.project_id}/arena/battles/"
        )
        if status != 201:
            raise RuntimeError(f"new battle answered {status}: {payload[:200]!r}")
        battle = json.loads(payload)
        body = json.dumps({"content": "Explain how ocean tides work, step by step please."})
        status, payload, _ = self.client.call("POST", battle["turns_url"], body.encode())
        if status != 201:
            raise RuntimeError(f"turn answered {status}: {payload[:200]!r}")
        url = json.loads(payload)["turns"][0]["a"]["stream_url"]
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
        headers = {**self.client.headers, "Accept": "text/event-stream"}
        connection.request("GET", url, headers=headers)
        text = connection.getresponse().read().decode()
        connection.close()
        if "event: done" not in text:
            raise RuntimeError(f"stream ended without done: {text[-200:]!r}")


def stream_load(
    fake: Any, project_id: int, tokens: list[str], stop: Any, open_now: Any, results: Any
) -> None:
    """The child process: the streaming endpoint's server and the arena raters, so their
    threads never share the timed rater's interpreter (its GIL)."""
    fake.__enter__()
    streamers = [Streamer(project_id, token, stop) for token in tokens]
    for streamer in streamers:
        streamer.start()
    while not stop.is_set():
        open_now.value = fake.state.streams_open
        time.sleep(0.02)
    for streamer in streamers:
        streamer.join(timeout=60)
    fake.__exit__(None, None, None)
    errors = [error for streamer in streamers for error in streamer.errors]
    results.put((sum(streamer.streams for streamer in streamers), errors))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=300)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--piece-delay", type=float, default=0.1)
    args = parser.parse_args()

    try:
        recreate_database(DATABASE_URL)
        django_setup(DATABASE_URL)
    except Exception as error:
        print(f"cannot set up the bench database: {error}", file=sys.stderr)
        return 1
    from django.db import connections

    from tests.llm.fake_server import FakeServer

    fake = FakeServer()  # bound here (its port is known), served by the child process
    fake.state.stream_delay = args.piece_delay
    rank_project = create_project("bench streaming rank")
    fill_project(rank_project, PROMPTS)
    _, rank_token = add_rater(rank_project, "bench-rank-rater")
    _, counted_token = add_rater(rank_project, "bench-rank-counted")
    arena_project = create_arena(fake.base_url)
    streamer_tokens = [add_rater(arena_project, f"bench-arena-{i}")[1] for i in range(args.streams)]
    counts = queries_per_call(rank_project, counted_token)
    connections.close_all()

    os.environ["LLM_SEMAPHORE_URL"] = ""
    server = start_server()
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    open_now = context.Value("i", 0)
    results = context.Queue()
    load = context.Process(
        target=stream_load,
        args=(fake, arena_project, streamer_tokens, stop, open_now, results),
        daemon=True,
    )
    samples: list[int] = []
    streams_done, errors = 0, ["the streaming process did not report"]
    try:
        rater = Rater(rank_project, rank_token)
        http_loop(rater, 20)  # warm the connection and the workers
        idle_load = os.getloadavg()[0]
        idle_next, idle_submit = http_loop(rater, args.loops)

        load.start()
        deadline = time.monotonic() + 60
        while open_now.value < args.streams and time.monotonic() < deadline:
            time.sleep(0.05)
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                samples.append(open_now.value)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        busy_load = os.getloadavg()[0]
        busy_next, busy_submit = http_loop(rater, args.loops)
        sampling.set()
        sampler.join()
    finally:
        stop.set()
        if load.is_alive() or load.exitcode is not None:
            with contextlib.suppress(queue.Empty):
                streams_done, errors = results.get(timeout=90)
            load.join(timeout=10)
        stop_server(server)
        flush_bench_queue()

    def line(label: str, nexts: list[float], submits: list[float], load: float) -> str:
        return (
            f"{label}: next-task p50 {percentile(nexts, 0.5):.1f} ms, p95 "
            f"{percentile(nexts, 0.95):.1f} ms; submit p50 {percentile(submits, 0.5):.1f} ms, "
            f"p95 {percentile(submits, 0.95):.1f} ms ({len(submits)} loops, load {load:.2f})"
        )

    next_ratio = percentile(busy_next, 0.95) / percentile(idle_next, 0.95)
    submit_ratio = percentile(busy_submit, 0.95) / percentile(idle_submit, 0.95)
    workers = os.environ.get("WEB_CONCURRENCY", "3")
    threads = os.environ.get("WEB_THREADS", "8")
    print(f"machine: {machine()}; ranklab serve: {workers} gthread workers x {threads} threads")
    print(
        f"queries per call: next-task {counts[1]} (+ BEGIN/COMMIT = {counts[0]}), "
        f"submit {counts[3]} (+ BEGIN/COMMIT = {counts[2]})"
    )
    print(line("idle", idle_next, idle_submit, idle_load))
    print(line(f"{args.streams} streams open", busy_next, busy_submit, busy_load))
    seen = sorted(float(count) for count in samples)
    print(
        f"streams open while timed: median {percentile(seen, 0.5):.0f}, min "
        f"{min(seen, default=0):.0f}; {streams_done} streams finished "
        f"({args.piece_delay:g} s per piece), {len(errors)} errors"
        + (f" (first: {errors[0]})" if errors else "")
    )
    verdict = "meets" if max(next_ratio, submit_ratio) <= TARGET_RATIO else "misses"
    print(
        f"p95 with streams / idle: next-task {next_ratio:.2f}x, submit {submit_ratio:.2f}x "
        f"({verdict} the {TARGET_RATIO:g}x target); load average now {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
