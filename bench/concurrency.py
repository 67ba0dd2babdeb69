"""150 concurrent raters with doubled and retried submits against gunicorn + PostgreSQL.

Each rater loops next-task → submit over HTTP for a bounded time. A share of submits is
sent twice (the same body on a second connection, at once: a double click, two tabs) and
a share is "timed out": the client hangs up before reading the answer and sends the
submit again on a fresh connection. Afterwards the database is held to what the clients
were told:

- every acknowledged submit (201, or 200 "same ranking already stored") is stored once;
- no ranking is stored that no client was told about beyond those whose answer was lost
  to the simulated time-out (those count as "stored, answer lost" and must be stored);
- no assignment has two rankings, no prompt more rankings than its overlap;
- no 5xx at all.

    .venv/bin/python bench/concurrency.py [--raters 150] [--seconds 60] [--prompts 1500]

Uses its own database (ranklab_bench_conc) and Redis db 2 (no worker: runs wait there).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranklab_bench_conc")
os.environ.setdefault("BENCH_BROKER_URL", "redis://127.0.0.1:6379/2")
os.environ.setdefault("BENCH_PORT", "8797")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, machine, percentile, recreate_database
from rater_loop import PORT, flush_bench_queue, prepare, start_server

ACKNOWLEDGED = (200, 201)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: set[int] = field(default_factory=set)  # assignment ids told "stored"
    answer_lost: set[int] = field(default_factory=set)  # submits whose answer was not read
    statuses: Counter[int] = field(default_factory=Counter)
    doubled: int = 0
    retried: int = 0
    loops: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _connection() -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)


def _post(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> int:
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def _note(tally: Tally, assignment_id: int, status: int) -> None:
    with tally.lock:
        tally.statuses[status] += 1
        if status in ACKNOWLEDGED:
            tally.acknowledged.add(assignment_id)


def _doubled_submit(
    tally: Tally, path: str, body: bytes, headers: dict[str, str], assignment_id: int
) -> None:
    """The same submit twice at once on two connections (double click, two tabs)."""
    answers: list[int] = []

    def send() -> None:
        connection = _connection()
        try:
            answers.append(_post(connection, path, body, headers))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for status in answers:
        _note(tally, assignment_id, status)
    with tally.lock:
        tally.doubled += 1


def _timed_out_submit(
    tally: Tally, path: str, body: bytes, headers: dict[str, str], assignment_id: int
) -> None:
    """Send, hang up before the answer (a client time-out), then retry on a new connection."""
    raw = socket.create_connection(("127.0.0.1", PORT), timeout=60)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    raw.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    raw.close()  # the answer, whatever it was, is lost
    with tally.lock:
        tally.answer_lost.add(assignment_id)
    time.sleep(random.uniform(0.0, 0.3))
    connection = _connection()
    try:
        _note(tally, assignment_id, _post(connection, path, body, headers))
    finally:
        connection.close()
    with tally.lock:
        tally.retried += 1


def rater(project_id: int, token: str, deadline: float, tally: Tally, seed: int) -> None:
    choose = random.Random(seed)
    connection = _connection()
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            connection.request("GET", f"/api/projects/{project_id}/next-task/", headers=headers)
            response = connection.getresponse()
            payload = response.read()
            with tally.lock:
                tally.statuses[response.status] += 1
            if response.status == 204:
                return
            if response.status != 200:
                raise RuntimeError(f"next-task answered {response.status}: {payload[:200]!r}")
            task = json.loads(payload)
            ids = [item["id"] for item in task["responses"]]
            choose.shuffle(ids)
            body = json.dumps({"ranking": [[item] for item in ids], "seconds": 12}).encode()
            path = f"/api/assignments/{task['assignment_id']}/ranking/"
            draw = choose.random()
            if draw < 0.15:
                _doubled_submit(tally, path, body, headers, task["assignment_id"])
            elif draw < 0.25:
                _timed_out_submit(tally, path, body, headers, task["assignment_id"])
            else:
                _note(tally, task["assignment_id"], _post(connection, path, body, headers))
            with tally.lock:
                tally.loops += 1
                tally.latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(choose.uniform(0.0, 0.2))
    except Exception as error:  # recorded and reported: the bench must not hide a failure
        with tally.lock:
            tally.errors.append(f"{type(error).__name__}: {error}")
    finally:
        connection.close()


def verify(project_id: int, overlap: int, tally: Tally) -> dict[str, int]:
    from django.db.models import Count

    from rankings.models import Ranking

    stored = set(
        Ranking.objects.filter(project_id=project_id).values_list("assignment_id", flat=True)
    )
    per_assignment = (
        Ranking.objects.filter(project_id=project_id)
        .values("assignment_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    over = (
        Ranking.objects.filter(project_id=project_id)
        .values("prompt_id")
        .annotate(n=Count("id"))
        .filter(n__gt=overlap)
        .count()
    )
    return {
        "acknowledged": len(tally.acknowledged),
        "stored": len(stored),
        "acknowledged_not_stored": len(tally.acknowledged - stored),
        "stored_not_acknowledged": len(stored - tally.acknowledged),
        "assignments_with_two_rankings": per_assignment,
        "prompts_over_overlap": over,
        "server_errors": sum(n for status, n in tally.statuses.items() if status >= 500),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--raters", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--prompts", type=int, default=1500)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    recreate_database()
    django_setup()
    print(f"machine: {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    project_id, tokens = prepare(args.prompts, args.raters, args.overlap)
    server = start_server(args.workers)
    tally = Tally()
    try:
        load_before = os.getloadavg()
        deadline = time.perf_counter() + args.seconds
        threads = [
            threading.Thread(target=rater, args=(project_id, token, deadline, tally, index))
            for index, token in enumerate(tokens)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait()
        flush_bench_queue()
    figures = verify(project_id, args.overlap, tally)
    print(
        f"{args.raters} raters, {args.seconds:g} s, {args.workers} gunicorn workers x 4 threads; "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
    )
    print(
        f"loops {tally.loops}, doubled submits {tally.doubled}, timed-out + retried "
        f"{tally.retried}; p50 {percentile(tally.latencies, 0.5):.0f} ms, "
        f"p95 {percentile(tally.latencies, 0.95):.0f} ms"
    )
    print("statuses:", dict(sorted(tally.statuses.items())))
    for name, value in figures.items():
        print(f"{name}: {value}")
    if tally.errors:
        print(f"client errors ({len(tally.errors)}):", *Counter(tally.errors).most_common(5))
    failed = (
        figures["acknowledged_not_stored"]
        or figures["stored_not_acknowledged"]
        or figures["assignments_with_two_rankings"]
        or figures["prompts_over_overlap"]
        or figures["server_errors"]
        or tally.errors
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
