"""One rater's loop over HTTP: GET next-task, POST the ranking, against `ranklab serve`
(gunicorn, as in production) and PostgreSQL.

A 10k-prompt project and a 1M-prompt project (prompt ~40 words, K=4 responses ~120 words;
the 1M project's responses are shorter by default to spare the disk, which the queue never
reads), and on each a rater who has done 0, 1k and 10k prompts that are still open (the
worst case: every prompt they did still waits for other raters, so a scan from the queue's
start would walk all of them). Planner statistics are taken once after the import and
autovacuum is off for the bench tables, so the lease must not rely on fresh statistics.

For each case: p50/p95 per call over HTTP, and the queries per call (counted in-process on
the same data). Beside it, the naive baseline: the same lease scan started at the queue's
first prompt, as before the rater's frontier existed, timed in-process.

    .venv/bin/python bench/rater_loop.py [--loops 300] [--skip-large] [--large-words 20]

Uses its own database (BENCH_DATABASE_URL, default ranklab_bench) and Redis db 13 for the
queued agreement runs (no worker; flushed at the end).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import ROOT, django_setup, machine, percentile, recreate_database

PORT = int(os.environ.get("BENCH_PORT", "8799"))
BENCH_BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
PROMPT_WORDS = 40
RESPONSE_WORDS = 120
HISTORIES = (0, 1_000, 10_000)


# Data ---------------------------------------------------------------------------------------


def create_project(name: str, overlap: int = 3) -> int:
    from django.contrib.auth.models import User

    from labeling import services

    lead, _ = User.objects.get_or_create(username="bench-lead")
    project = services.project_create(
        creator=lead, name=name, overlap=overlap, gold_rate=0.0, repeat_rate=0.0
    )
    return project.pk


def fill_project(project_id: int, prompts: int, response_words: int = RESPONSE_WORDS) -> float:
    """`prompts` prompts with 4 responses each, written by PostgreSQL itself (the import's
    speed is measured elsewhere); returns the seconds it took."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO labeling_prompt (project_id, external_id, messages, metadata,
                is_gold, is_complete, extra_raters, extra_reason, n_responses, created_at)
            SELECT %s, 'p' || n, jsonb_build_array(jsonb_build_object('role', 'user',
                    'content', 'Prompt ' || n || ': ' || repeat('lorem ipsum ', %s))),
                '{}'::jsonb, false, false, 0, '', 4, now()
            FROM generate_series(1, %s) AS n
            """,
            [project_id, PROMPT_WORDS // 2, prompts],
        )
        cursor.execute(
            """
            INSERT INTO labeling_response (prompt_id, external_id, position, text,
                model_name, metadata)
            SELECT p.id, '', slot, 'Response ' || slot || ' to ' || p.id || ': '
                    || repeat('dolor sit amet ', %s), 'model-' || slot, '{}'::jsonb
            FROM labeling_prompt p CROSS JOIN generate_series(0, 3) AS slot
            WHERE p.project_id = %s
            """,
            [response_words // 3, project_id],
        )
    return time.perf_counter() - started


def add_rater(project_id: int, username: str) -> tuple[int, str]:
    from django.contrib.auth.models import User

    from labeling.accounts.services import api_token_create
    from labeling.models import Membership

    user = User.objects.create_user(username)
    Membership.objects.create(project_id=project_id, user=user)
    return user.pk, api_token_create(user=user, name="bench").secret


def give_history(project_id: int, rater_id: int, done: int) -> None:
    """The rater submitted the project's first `done` prompts; the prompts stay open."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO labeling_assignment (project_id, prompt_id, rater_id, status,
                shown_order, is_repeat, leased_at, expires_at, finished_at, skip_reason)
            SELECT %s, id, %s, 'submitted', '[]'::jsonb, false, now() - interval '1 hour',
                now() - interval '50 minutes', now() - interval '55 minutes', ''
            FROM labeling_prompt WHERE project_id = %s ORDER BY id LIMIT %s
            """,
            [project_id, rater_id, project_id, done],
        )
        # Their frontier, as the queue leaves it: the furthest prompt they were leased.
        cursor.execute(
            """
            UPDATE labeling_membership SET queue_frontier = COALESCE((SELECT max(prompt_id)
                FROM labeling_assignment WHERE project_id = %s AND rater_id = %s), 0)
            WHERE project_id = %s AND user_id = %s
            """,
            [project_id, rater_id, project_id, rater_id],
        )


def freeze_statistics() -> None:
    """Statistics once, then never again: the lease must not depend on them being fresh."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("labeling_prompt", "labeling_response", "labeling_assignment"):
            cursor.execute(f"ANALYZE {table}")
            cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")


# Server and client ----------------------------------------------------------------------------


def start_server() -> subprocess.Popen:
    """`ranklab serve` as production runs it (its worker class and count), on PORT."""
    static_root = tempfile.mkdtemp(prefix="ranklab-bench-static-")
    env = {
        **os.environ,
        "STATIC_ROOT": static_root,  # DEBUG is off: pages need the static manifest
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_CONN_MAX_AGE": "600",
        # Agreement runs go to a queue as in production (no worker: they wait there).
        "CELERY_BROKER_URL": BENCH_BROKER_URL,
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        check=True,
        env=env,
    )
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "core.cli", "serve"),
            *("--host", "127.0.0.1", "--port", str(PORT), "--log-level", "warning"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,  # the access log
    )
    for _ in range(300):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return server
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("ranklab serve did not start")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait()


def flush_bench_queue() -> None:
    import redis

    redis.Redis.from_url(BENCH_BROKER_URL).flushdb()


@dataclass
class Rater:
    """One rater's HTTP client: next-task and submit, each timed."""

    project_id: int
    token: str

    def __post_init__(self) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        self.headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=body, headers=self.headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.connection.close()  # the server closed an idle connection: once more
            self.connection.request(method, path, body=body, headers=self.headers)
            response = self.connection.getresponse()
        payload = response.read()
        return response.status, payload, (time.perf_counter() - started) * 1000

    def next_task(self) -> tuple[dict | None, float]:
        status, payload, ms = self.call("GET", f"/api/projects/{self.project_id}/next-task/")
        if status == 204:
            return None, ms
        if status != 200:
            raise RuntimeError(f"next-task answered {status}: {payload[:200]!r}")
        return json.loads(payload), ms

    def submit(self, task: dict, ranking: list[list[int]] | None = None) -> tuple[int, float]:
        ranking = ranking or [[item["id"]] for item in task["responses"]]
        body = json.dumps({"ranking": ranking, "seconds": 20}).encode()
        status, _, ms = self.call(
            "POST", f"/api/assignments/{task['assignment_id']}/ranking/", body
        )
        return status, ms


# Measurements ---------------------------------------------------------------------------------


def http_loop(rater: Rater, loops: int) -> tuple[list[float], list[float]]:
    nexts: list[float] = []
    submits: list[float] = []
    for _ in range(loops):
        task, ms = rater.next_task()
        nexts.append(ms)
        if task is None:
            break
        status, ms = rater.submit(task)
        if status != 201:
            raise RuntimeError(f"submit answered {status}")
        submits.append(ms)
    return nexts, submits


def queries_per_call(project_id: int, token: str) -> tuple[int, int, int, int]:
    """Statements of one next-task (a new lease) and one submit, in-process, the same views;
    each with and without the transaction's BEGIN/COMMIT."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", SERVER_NAME="127.0.0.1")
    with CaptureQueriesContext(connection) as next_queries:
        task = client.get(f"/api/projects/{project_id}/next-task/").json()
    body = json.dumps({"ranking": [[item["id"]] for item in task["responses"]]})
    with CaptureQueriesContext(connection) as submit_queries:
        answer = client.post(
            f"/api/assignments/{task['assignment_id']}/ranking/",
            body,
            content_type="application/json",
        )
    assert answer.status_code == 201, answer.content

    def work(queries: CaptureQueriesContext) -> int:
        return sum(1 for query in queries if query["sql"] not in ("BEGIN", "COMMIT"))

    return (len(next_queries), work(next_queries), len(submit_queries), work(submit_queries))


def scan_ms(project_id: int, rater_id: int, near_frontier: bool, repeats: int = 20) -> float:
    """p50 of the lease scan alone, in-process, rolled back: from just behind the rater's
    frontier (what the queue does) or from the queue's first prompt (the naive baseline)."""
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.utils import timezone

    from labeling.models import Membership
    from labeling.services import leases

    membership = Membership.objects.select_related("project").get(
        project_id=project_id, user_id=rater_id
    )
    rater = User.objects.get(pk=rater_id)
    after = membership.queue_frontier - leases.LOOK_BEHIND_PROMPTS if near_frontier else 0
    timings = []
    for _ in range(repeats):
        with transaction.atomic():
            started = time.perf_counter()
            leases._lock_next_open_prompt(
                project=membership.project, rater=rater, now=timezone.now(), skip=(), after=after
            )
            timings.append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
    return percentile(timings, 0.5)


def run_case(label: str, prompts: int, response_words: int, loops: int) -> list[str]:
    project_id = create_project(f"bench {label}")
    built = fill_project(project_id, prompts, response_words)
    print(f"{label}: {prompts:,} prompts x 4 responses written in {built:.1f} s")
    raters = {}
    for done in HISTORIES:
        if done >= prompts - 2 * loops:
            continue
        rater_id, token = add_rater(project_id, f"bench-{label}-{done}")
        give_history(project_id, rater_id, done)
        raters[done] = (rater_id, token)
    # One more rater (history 0) whose calls are counted in-process.
    _, counter_token = add_rater(project_id, f"bench-{label}-counted")
    freeze_statistics()
    counts = queries_per_call(project_id, counter_token)
    lines = [
        f"{label}: queries per call — next-task {counts[1]} (+ BEGIN/COMMIT = {counts[0]}), "
        f"submit {counts[3]} (+ BEGIN/COMMIT = {counts[2]})"
    ]
    for done, (rater_id, _) in raters.items():
        near = scan_ms(project_id, rater_id, near_frontier=True)
        naive = scan_ms(project_id, rater_id, near_frontier=False)
        lines.append(
            f"{label}, {done:>6,} done: lease scan p50 {near:.2f} ms "
            f"(naive scan from the queue's start: {naive:.2f} ms)"
        )
    server = start_server()
    try:
        for done, (_, token) in raters.items():
            rater = Rater(project_id, token)
            http_loop(rater, 20)  # warm the connection and the workers
            load = os.getloadavg()[0]
            nexts, submits = http_loop(rater, loops)
            lines.append(
                f"{label}, {done:>6,} done: next-task p50 {percentile(nexts, 0.5):.1f} ms, "
                f"p95 {percentile(nexts, 0.95):.1f} ms; submit p50 "
                f"{percentile(submits, 0.5):.1f} ms, p95 {percentile(submits, 0.95):.1f} ms "
                f"({len(submits)} loops, load {load:.2f})"
            )
    finally:
        stop_server(server)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=300, help="next-task + submit per case")
    parser.add_argument("--small", type=int, default=10_000, help="prompts of the small project")
    parser.add_argument("--large", type=int, default=1_000_000, help="prompts of the large one")
    parser.add_argument("--skip-large", action="store_true", help="only the small project")
    parser.add_argument(
        "--large-words", type=int, default=20, help="words per response in the large project"
    )
    args = parser.parse_args()
    try:
        recreate_database()
        django_setup()
    except Exception as error:  # the bench cannot run: say why, exit non-zero
        print(f"cannot run: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start")
    lines = run_case("10k", args.small, RESPONSE_WORDS, args.loops)
    if not args.skip_large:
        lines += run_case("1M", args.large, args.large_words, args.loops)
    flush_bench_queue()
    print(*lines, sep="\n")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
