"""Many raters at once against `ranklab serve` (gunicorn, as in production) + PostgreSQL,
the load generator on the same cores: throughput, latency per call, and the invariants.

Scenarios (each on a project of its own, prompt ~40 words, K=4 responses ~120 words):

- `unpaced`: 20 raters loop next-task → submit with no pause until a 2,000-prompt queue is
  empty (overlap 3): submits/s, p50/p95 of each call; beside it, the naive lease (count
  free slots, then insert, no row lock) under the same 20 raters.
- `paced`: 200 raters who spend ~20 s on each task (uniform 10 to 30 s), as people do, for
  `--paced-seconds` (shorten it to save time; the pattern stays): p50/p95 of each call.
- `retries`: 150 raters; 15% of submits are sent twice at once (a double click, two tabs)
  and 10% are "timed out" (the client hangs up before the answer and sends it again).

Each prints where the CPU went per submit (web server, PostgreSQL, the load generator) and
the cores' busy, idle and stolen shares over the run: near 100% busy, the run was bound by
the cores; idle left over, by waiting (a worker with too many connections, locks).

After each: no prompt has more rankings than its overlap, every acknowledged submit (201,
or 200 "same ranking already stored") is stored exactly once, nothing is stored that no
client was told about (beyond the answers lost to a simulated time-out), no 5xx.

    .venv/bin/python bench/concurrency.py [--scenario all|unpaced|paced|retries]
        [--paced-seconds 120]

Uses its own database (ranklab_bench_conc) and Redis db 2 (agreement runs wait there, no
worker). Exits non-zero only when it cannot run; broken invariants are printed as such.
"""

from __future__ import annotations

import argparse
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
from _setup import (
    core_share_line,
    core_ticks,
    cpu_seconds_by_role,
    cpu_share_line,
    django_setup,
    machine,
    percentile,
    recreate_database,
)
from rater_loop import (
    PORT,
    Rater,
    add_rater,
    create_project,
    fill_project,
    flush_bench_queue,
    start_server,
    stop_server,
)

ACKNOWLEDGED = (200, 201)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: set[int] = field(default_factory=set)  # assignment ids told "stored"
    answer_lost: set[int] = field(default_factory=set)  # submits whose answer was not read
    statuses: Counter[int] = field(default_factory=Counter)
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    doubled: int = 0
    retried: int = 0
    errors: list[str] = field(default_factory=list)

    def note(self, assignment_id: int, status: int, ms: float | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status in ACKNOWLEDGED:
                self.acknowledged.add(assignment_id)
            if ms is not None:
                self.submit_ms.append(ms)


@dataclass(frozen=True)
class Scenario:
    name: str
    raters: int
    prompts: int
    seconds: float  # at most; `unpaced` stops earlier once the queue is empty
    think: float = 0.0  # mean seconds on a task between next-task and submit
    doubled_share: float = 0.0
    timed_out_share: float = 0.0


def _doubled_submit(tally: Tally, rater: Rater, task: dict) -> None:
    """The same submit twice at once on two connections (double click, two tabs)."""
    twins = [Rater(rater.project_id, rater.token) for _ in range(2)]
    answers: list[tuple[int, float]] = []
    threads = [threading.Thread(target=lambda r=r: answers.append(r.submit(task))) for r in twins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for status, ms in answers:
        tally.note(task["assignment_id"], status, ms)
    with tally.lock:
        tally.doubled += 1


def _timed_out_submit(tally: Tally, rater: Rater, task: dict, ranking: list[list[int]]) -> None:
    """Send, hang up before the answer (a client time-out), then retry on a new connection."""
    import json

    body = json.dumps({"ranking": ranking, "seconds": 20}).encode()
    path = f"/api/assignments/{task['assignment_id']}/ranking/"
    raw = socket.create_connection(("127.0.0.1", PORT), timeout=60)
    head = "".join(f"{name}: {value}\r\n" for name, value in rater.headers.items())
    raw.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    raw.close()  # the answer, whatever it was, is lost
    with tally.lock:
        tally.answer_lost.add(task["assignment_id"])
    time.sleep(random.uniform(0.0, 0.3))
    status, ms = Rater(rater.project_id, rater.token).submit(task, ranking)
    tally.note(task["assignment_id"], status, ms)
    with tally.lock:
        tally.retried += 1


def rater_loop(scenario: Scenario, rater: Rater, deadline: float, tally: Tally, seed: int) -> None:
    choose = random.Random(seed)
    try:
        if scenario.think:
            time.sleep(choose.uniform(0, scenario.think))  # people start at different moments
        while time.perf_counter() < deadline:
            task, ms = rater.next_task()
            with tally.lock:
                tally.next_ms.append(ms)
                tally.statuses[200 if task else 204] += 1
            if task is None:
                return
            ids = [item["id"] for item in task["responses"]]
            choose.shuffle(ids)
            ranking = [[item] for item in ids]
            if scenario.think:
                time.sleep(choose.uniform(0.5 * scenario.think, 1.5 * scenario.think))
            draw = choose.random()
            if draw < scenario.doubled_share:
                _doubled_submit(tally, rater, {**task, "responses": [{"id": i} for i in ids]})
            elif draw < scenario.doubled_share + scenario.timed_out_share:
                _timed_out_submit(tally, rater, task, ranking)
            else:
                status, ms = rater.submit(task, ranking)
                tally.note(task["assignment_id"], status, ms)
    except Exception as error:  # recorded and reported: the bench must not hide a failure
        with tally.lock:
            tally.errors.append(f"{type(error).__name__}: {error}")


def verify(project_id: int, overlap: int, tally: Tally) -> dict[str, int]:
    from django.db.models import Count

    from rankings.models import Ranking

    rankings = Ranking.objects.filter(project_id=project_id)
    stored = set(rankings.values_list("assignment_id", flat=True))
    unexplained = stored - tally.acknowledged - tally.answer_lost
    return {
        "acknowledged": len(tally.acknowledged),
        "stored": len(stored),
        "acknowledged_not_stored": len(tally.acknowledged - stored),
        "stored_never_acknowledged": len(unexplained),
        "assignments_with_two_rankings": rankings.values("assignment_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count(),
        "prompts_over_overlap": rankings.filter(is_repeat=False)
        .values("prompt_id")
        .annotate(n=Count("id"))
        .filter(n__gt=overlap)
        .count(),
        "server_errors": sum(n for status, n in tally.statuses.items() if status >= 500),
    }


def naive_baseline(project_id: int, raters: int, overlap: int) -> int:
    """The naive lease (count free slots, then insert; no row lock) with `raters` raters at
    once on the same open prompts; returns the prompts it over-assigns."""
    from datetime import timedelta

    from django.contrib.auth.models import User
    from django.db import connection
    from django.db.models import Count, Q
    from django.utils import timezone

    from labeling.models import Assignment, Prompt

    users = [User.objects.create_user(f"naive-{project_id}-{index}") for index in range(raters)]
    open_prompts = list(
        Prompt.objects.filter(project_id=project_id).order_by("id").values_list("id", flat=True)
    )[:20]
    barrier = threading.Barrier(len(users))

    def lease(user: User) -> None:
        try:
            barrier.wait()
            for prompt_id in open_prompts:
                now = timezone.now()
                taken = Assignment.objects.filter(
                    Q(status="submitted") | Q(status="leased", expires_at__gt=now),
                    prompt_id=prompt_id,
                ).count()
                if (
                    taken < overlap
                    and not Assignment.objects.filter(prompt_id=prompt_id, rater=user).exists()
                ):
                    Assignment.objects.create(
                        project_id=project_id, prompt_id=prompt_id, rater=user,
                        shown_order=[], leased_at=now, expires_at=now + timedelta(minutes=10),
                    )  # fmt: skip
                    return
        finally:
            connection.close()

    threads = [threading.Thread(target=lease, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = (
        Assignment.objects.filter(prompt_id__in=open_prompts, rater__in=users)
        .values("prompt_id")
        .annotate(n=Count("id"))
    )
    return sum(1 for row in counts if row["n"] > overlap)


def run(scenario: Scenario, overlap: int) -> None:
    project_id = create_project(f"bench {scenario.name}", overlap=overlap)
    fill_project(project_id, scenario.prompts)
    tokens = [add_rater(project_id, f"{scenario.name}-{i}")[1] for i in range(scenario.raters)]
    server = start_server()
    tally = Tally()
    try:
        load_before = os.getloadavg()[0]
        cpu_before = cpu_seconds_by_role(server.pid)
        cores_before = core_ticks()
        started = time.perf_counter()
        deadline = started + scenario.seconds
        threads = [
            threading.Thread(
                target=rater_loop,
                args=(scenario, Rater(project_id, token), deadline, tally, index),
            )
            for index, token in enumerate(tokens)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds_by_role(server.pid)
        cores_after = core_ticks()
        load_after = os.getloadavg()[0]
    finally:
        stop_server(server)
    figures = verify(project_id, overlap, tally)
    print(
        f"\n{scenario.name}: {scenario.raters} raters, {scenario.prompts:,} prompts, overlap "
        f"{overlap}, think {scenario.think:g} s; {elapsed:.1f} s; load average "
        f"{load_before:.2f} before, {load_after:.2f} after"
    )
    submits = len(tally.submit_ms)
    print(
        f"  {submits} submits, {submits / elapsed:.1f} submits/s; next-task p50 "
        f"{percentile(tally.next_ms, 0.5):.1f} ms, p95 {percentile(tally.next_ms, 0.95):.1f} ms; "
        f"submit p50 {percentile(tally.submit_ms, 0.5):.1f} ms, "
        f"p95 {percentile(tally.submit_ms, 0.95):.1f} ms"
    )
    print("  " + cpu_share_line(cpu_before, cpu_after, submits, "submit (next-task + submit)"))
    print("  " + core_share_line(cores_before, cores_after))
    if scenario.doubled_share or scenario.timed_out_share:
        print(f"  doubled submits {tally.doubled}, timed out and retried {tally.retried}")
    print("  statuses:", dict(sorted(tally.statuses.items())))
    broken = {
        name: value
        for name, value in figures.items()
        if name not in ("acknowledged", "stored") and value
    }
    print(
        f"  acknowledged {figures['acknowledged']}, stored {figures['stored']}; "
        + ("invariants hold" if not broken and not tally.errors else f"BROKEN: {broken}")
    )
    if tally.errors:
        print(f"  client errors ({len(tally.errors)}):", *Counter(tally.errors).most_common(5))
    if scenario.name == "unpaced":
        naive = naive_baseline(project_id, scenario.raters, overlap)
        print(
            f"  naive lease (no row lock), {scenario.raters} raters at once: {naive} over-assigned"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="all", choices=["all", "unpaced", "paced", "retries"])
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--raters", type=int, default=20, help="unpaced raters")
    parser.add_argument("--prompts", type=int, default=2_000, help="the unpaced queue")
    parser.add_argument("--paced-raters", type=int, default=200)
    parser.add_argument("--paced-seconds", type=float, default=120)
    parser.add_argument("--think", type=float, default=20, help="paced: mean seconds a task")
    args = parser.parse_args()
    scenarios = {
        "unpaced": Scenario("unpaced", args.raters, args.prompts, seconds=900),
        "paced": Scenario(
            "paced", args.paced_raters, 2_000, seconds=args.paced_seconds, think=args.think
        ),
        "retries": Scenario(
            "retries", 150, 1_500, seconds=60, doubled_share=0.15, timed_out_share=0.10
        ),
    }
    chosen = ["unpaced", "paced"] if args.scenario == "all" else [args.scenario]
    try:
        recreate_database()
        django_setup()
    except Exception as error:  # the bench cannot run: say why, exit non-zero
        print(f"cannot run: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"machine: {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    try:
        for name in chosen:
            run(scenarios[name], args.overlap)
    finally:
        flush_bench_queue()


if __name__ == "__main__":
    main()
