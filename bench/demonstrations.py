"""The demonstration kind's rater loop, in-process against PostgreSQL: a writer's
GET next-task + POST demonstration, and a reviewer's GET next-task + POST review decision,
on a 10k-prompt project (write mode, every demonstration routed to review).

Prints p50/p95 per call (Django's test client through the whole middleware and DRF stack,
without the HTTP server), the queries per call and the machine's load average. Exits
non-zero only when it cannot run.

    .venv/bin/python bench/demonstrations.py [--prompts 10000] [--loops 200]

Uses its own database (BENCH_DATABASE_URL, default ranklab_bench; recreated).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import BENCH_DATABASE_URL, django_setup, machine, percentile, recreate_database


def build(prompts: int) -> tuple[int, list[Any], list[Any]]:
    import orjson
    from django.contrib.auth.models import User
    from django.utils import timezone

    from labeling import services
    from labeling.models import Membership, TaskKind

    lead = User.objects.create(username="bench-lead", is_staff=True)
    project = services.project_create(
        creator=lead,
        name="bench demonstrations",
        overlap=1,
        gold_rate=0.0,
        task_kind=TaskKind.DEMONSTRATION,
        task_options={"mode": "write", "review_rate": 1.0},
    )
    records = [
        {"prompt": f"Prompt {n}: " + "lorem ipsum " * 20, "responses": []} for n in range(prompts)
    ]
    services.prompts_import(project=project, raw=orjson.dumps(records))
    writers = [User.objects.create(username=f"writer{n}") for n in range(2)]
    reviewers = [User.objects.create(username=f"reviewer{n}") for n in range(2)]
    for user in writers + reviewers:
        Membership.objects.create(project=project, user=user, guidelines_seen_at=timezone.now())
    return project.pk, writers, reviewers


def client_for(user: Any) -> Any:
    from rest_framework.test import APIClient

    from labeling.accounts.services import api_token_create

    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='bench').secret}"
    )
    return client


def timed(call: Callable[[], Any]) -> tuple[float, int, Any]:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()  # the query log is capped: a full one would count nothing
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - started
    return seconds * 1000, len(queries), result


def loop(
    project_id: int, client: Any, loops: int, answer: Callable[[Any], dict[str, Any]]
) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"next": [], "submit": [], "next_q": [], "submit_q": []}
    for _ in range(loops):
        ms, queries, response = timed(lambda: client.get(f"/api/projects/{project_id}/next-task/"))
        if response.status_code != 200:
            break
        figures["next"].append(ms)
        figures["next_q"].append(queries)
        body = response.json()
        ms, queries, done = timed(
            partial(client.post, body["submit_url"], answer(body), format="json")
        )
        assert done.status_code == 201, done.content
        figures["submit"].append(ms)
        figures["submit_q"].append(queries)
    return figures


def report(name: str, figures: dict[str, list[float]]) -> None:
    for call in ("next", "submit"):
        values = figures[call]
        print(
            f"{name:9} {call:7} n={len(values):4}  p50 {percentile(values, 0.5):6.1f} ms  "
            f"p95 {percentile(values, 0.95):6.1f} ms  "
            f"queries {max(figures[call + '_q'], default=0)}"
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--loops", type=int, default=200)
    args = parser.parse_args()
    try:
        recreate_database(BENCH_DATABASE_URL)
        django_setup(BENCH_DATABASE_URL)
    except Exception as error:  # no PostgreSQL to bench against
        print(f"cannot run: {error}", file=sys.stderr)
        return 1
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    project_id, writers, reviewers = build(args.prompts)
    print(f"{args.prompts} prompts imported in {time.perf_counter() - started:.1f} s")
    writer = client_for(writers[0])
    written = loop(project_id, writer, args.loops, lambda body: {"text": "An ideal **reply**."})
    report("write", written)
    reviewer = client_for(reviewers[0])
    reviewed = loop(project_id, reviewer, args.loops, lambda body: {"decision": "accept"})
    report("review", reviewed)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
