"""Rater loop latency: GET next-task + POST ranking over HTTP against gunicorn + PostgreSQL.

Measures one rater alone, N concurrent raters pausing between tasks (people read before
they rank; --think sets the mean pause) and N raters with no pause at all (saturation, the
server's throughput on this machine), then checks that no prompt received more
than `overlap` rankings. Also runs a naive baseline lease (read free prompt, then insert,
without row locks) under the same concurrency and counts the prompts it over-assigns.

    .venv/bin/python bench/rater_loop.py [--prompts 3000] [--raters 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import ROOT, django_setup, machine, percentile, recreate_database

PORT = int(os.environ.get("BENCH_PORT", "8799"))
BENCH_BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")


def prepare(prompts: int, raters: int, overlap: int) -> tuple[int, list[str]]:
    from django.contrib.auth.models import User

    from labeling import services
    from labeling.accounts.services import api_token_create
    from labeling.models import Membership

    lead = User.objects.create_user("bench-lead", password="x")
    project = services.project_create(creator=lead, name="bench", overlap=overlap)
    records = [
        {
            "prompt": f"Prompt {index}: " + "lorem ipsum " * 20,
            "responses": [
                {"text": f"Response {slot} " + "dolor sit amet " * 30} for slot in range(4)
            ],
        }
        for index in range(prompts)
    ]
    started = time.perf_counter()
    services.prompts_import(project=project, raw=json.dumps(records))
    print(f"import: {prompts} prompts x 4 responses in {time.perf_counter() - started:.2f} s")
    users = User.objects.bulk_create([User(username=f"bench-rater-{i}") for i in range(raters)])
    Membership.objects.bulk_create([Membership(project=project, user=user) for user in users])
    tokens = [api_token_create(user=user, name="bench").secret for user in users]
    return project.pk, tokens


def start_server(workers: int) -> subprocess.Popen:
    static_root = tempfile.mkdtemp(prefix="ranklab-bench-static-")
    os.environ["STATIC_ROOT"] = static_root  # DEBUG is off: pages need the static manifest
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        check=True,
        env=os.environ,
    )
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"127.0.0.1:{PORT}", "--workers", str(workers), "--threads", "4",
            "--log-level", "warning", "--keep-alive", "60",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_CONN_MAX_AGE": "600",
            # Background runs go to a queue as in production (no worker: they wait there).
            "CELERY_BROKER_URL": BENCH_BROKER_URL,
        },
    )  # fmt: skip
    for _ in range(100):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
            connection.request("GET", "/login/")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def rater_loop(
    project_id: int, token: str, deadline: float, samples: list[float], think: float = 0.0
) -> None:
    """Next task + submit until the deadline; `think` seconds (mean) pass between tasks."""
    pause = random.Random(token)
    if think:
        time.sleep(pause.uniform(0, think))  # people start at different moments
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        connection.request("GET", f"/api/projects/{project_id}/next-task/", headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status == 204:
            return
        task = json.loads(body)
        ranking = [[item["id"]] for item in task["responses"]]
        connection.request(
            "POST",
            f"/api/assignments/{task['assignment_id']}/ranking/",
            body=json.dumps({"ranking": ranking, "seconds": 20}),
            headers=headers,
        )
        submitted = connection.getresponse()
        submitted.read()
        if submitted.status != 201:
            raise RuntimeError(f"submit answered {submitted.status}")
        samples.append((time.perf_counter() - started) * 1000)
        if think:
            time.sleep(pause.uniform(0.5 * think, 1.5 * think))


def run_raters(
    project_id: int, tokens: list[str], seconds: float, think: float = 0.0
) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=rater_loop, args=(project_id, token, deadline, samples, think))
        for token in tokens
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def report(label: str, samples: list[float], seconds: float) -> None:
    print(
        f"{label}: {len(samples)} loops, {len(samples) / seconds:.0f} loops/s, "
        f"p50 {percentile(samples, 0.5):.1f} ms, p95 {percentile(samples, 0.95):.1f} ms, "
        f"p99 {percentile(samples, 0.99):.1f} ms"
    )


def flush_bench_queue() -> None:
    import redis

    redis.Redis.from_url(BENCH_BROKER_URL).flushdb()


def over_assigned(project_id: int, overlap: int) -> int:
    from django.db.models import Count

    from rankings.models import Ranking

    return (
        Ranking.objects.filter(project_id=project_id)
        .values("prompt_id")
        .annotate(n=Count("id"))
        .filter(n__gt=overlap)
        .count()
    )


def naive_baseline(project_id: int, raters: int, overlap: int, attempts: int) -> int:
    """Lease without locks: count free slots, then insert. Returns over-assigned prompts."""
    from datetime import timedelta

    from django.contrib.auth.models import User
    from django.db import connection
    from django.db.models import Count, Q
    from django.utils import timezone

    from labeling.models import Assignment, Prompt

    users = list(User.objects.filter(username__startswith="bench-rater-")[:raters])
    open_prompts = list(
        Prompt.objects.filter(project_id=project_id, is_complete=False).values_list("id", flat=True)
    )[:attempts]
    barrier = threading.Barrier(len(users))

    def lease(user: Any) -> None:
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
        Assignment.objects.filter(prompt_id__in=open_prompts, status="leased")
        .values("prompt_id")
        .annotate(n=Count("id"))
    )
    return sum(1 for row in counts if row["n"] > overlap)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=3000)
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--think", type=float, default=5.0, help="mean seconds a rater spends between tasks"
    )
    args = parser.parse_args()
    recreate_database()
    django_setup()
    print(f"machine: {machine()}")
    project_id, tokens = prepare(args.prompts, args.raters, args.overlap)
    server = start_server(args.workers)
    try:
        run_raters(project_id, tokens[:1], 2)  # warm up connections and caches
        solo = run_raters(project_id, tokens[:1], args.seconds)
        report("1 rater", solo, args.seconds)
        paced = run_raters(project_id, tokens, args.seconds, think=args.think)
        report(
            f"{args.raters} concurrent raters, {args.think:g} s between tasks", paced, args.seconds
        )
        crowd = run_raters(project_id, tokens, args.seconds)
        report(f"{args.raters} concurrent raters, no pause (saturation)", crowd, args.seconds)
    finally:
        server.terminate()
        server.wait()
        flush_bench_queue()
    print(
        f"prompts with more than {args.overlap} rankings: {over_assigned(project_id, args.overlap)}"
    )
    baseline = naive_baseline(project_id, args.raters, args.overlap, attempts=20)
    print(
        f"naive lease (no row locks), {args.raters} raters at once: "
        f"{baseline} over-assigned prompts"
    )


if __name__ == "__main__":
    main()
