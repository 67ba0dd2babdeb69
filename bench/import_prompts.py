"""Import speed: N prompts x 4 responses over HTTP (gunicorn) and through the command.

1. The service in-process: parse + validate, then the write (COPY), with the queries it
   runs; beside it the naive baseline, the ORM's bulk_create on the same PostgreSQL.
2. `POST /api/projects/{id}/prompts/` with a JSON Lines body against gunicorn, end to end
   as a client sees it (upload, parse, validate, write, commit, answer).
3. `manage.py import_prompts` on JSON Lines files of each --command-sizes, each in its own
   process, with each --command-writers (1: one transaction; more: writer processes into a
   stage published in one transaction): wall time, prompts/s, the time a prompt once the
   command has started beside the API's median, and the peak RSS of the command or its
   largest writer (flat memory: the 1M file should peak where the 100k one does).

The prompt browser's search index is built after an import commits, by a job: with
CELERY_BROKER_URL set, a Celery worker is started beside gunicorn and each import prints
how long after its answer every prompt was indexed (searchable through the index; the
search finds them the slow way before). CPU seconds are read from /proc for the client,
the web workers, the Celery worker and the database's backends, per phase (import; index),
so the figures mean something on a shared machine. Without a broker the job runs
in-process at commit, inside the import's request.

Text is drawn from a seeded vocabulary (~40-word prompts, ~120-word responses), so every
row has its own words, as the prompt browser's trigram index sees real data.

    CELERY_BROKER_URL=redis://127.0.0.1:6379/N .venv/bin/python bench/import_prompts.py
        [--prompts 10000] [--repeat 3] [--command-sizes 100000,1000000] [--skip-http]
        [--command-writers 1,2] [--keep-database]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from django.contrib.auth.models import User

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import BENCH_DATABASE_URL, ROOT, django_setup, machine, recreate_database

PORT = int(os.environ.get("BENCH_PORT", "8797"))
PROMPT_WORDS, RESPONSE_WORDS, RESPONSES = 40, 120, 4
POOL = 512  # distinct texts per slot; each record combines them with its own number


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def text_pool(words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = [
        "".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(5000)
    ]
    return [" ".join(rng.choices(vocabulary, k=words)) for _ in range(POOL)]


def lorem_pool(words: int) -> list[str]:
    """The repeated filler of earlier runs: a handful of distinct trigrams per text."""
    filler = ("lorem ipsum dolor sit amet consectetur " * words).split()[:words]
    return [" ".join(filler)] * POOL


def records(count: int, prefix: str = "p", text: str = "varied") -> Iterator[bytes]:
    """One JSON Lines record per prompt (bytes, newline-terminated)."""
    if text == "lorem":
        prompts, answers = lorem_pool(PROMPT_WORDS), [lorem_pool(RESPONSE_WORDS)] * RESPONSES
    else:
        prompts = text_pool(PROMPT_WORDS, 1)
        answers = [text_pool(RESPONSE_WORDS, 2 + slot) for slot in range(RESPONSES)]
    for index in range(count):
        yield orjson.dumps(
            {
                "external_id": f"{prefix}{index}",
                "prompt": f"Prompt {index}: {prompts[index % POOL]}",
                "responses": [
                    {
                        "text": f"Response {slot} to {index}: {pool[(index * 7 + slot) % POOL]}",
                        "model": f"model-{slot}",
                    }
                    for slot, pool in enumerate(answers)
                ],
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def database_backends() -> list[int]:
    """The PostgreSQL backends connected to the bench database (this process's too)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [row[0] for row in cursor.fetchall()]


class CpuMeter:
    """CPU seconds per group of processes between two readings: the client (this process),
    the web server's workers, the Celery worker's, and the database backends."""

    def __init__(self, server: int | None = None, worker: int | None = None) -> None:
        self.server, self.worker = server, worker
        self.last = self.reading()

    def groups(self) -> dict[str, list[int]]:
        return {
            "client": [os.getpid()],
            "web": child_pids(self.server) if self.server else [],
            "worker": [self.worker, *child_pids(self.worker)] if self.worker else [],
            "database": database_backends(),
        }

    def reading(self) -> dict[str, dict[int, float]]:
        return {
            name: {pid: process_cpu(pid) for pid in pids} for name, pids in self.groups().items()
        }

    def lap(self) -> dict[str, float]:
        """CPU seconds of each group since the last lap (a new process counts from 0)."""
        now = self.reading()
        used = {
            name: sum(cpu - self.last[name].get(pid, 0.0) for pid, cpu in pids.items())
            for name, pids in now.items()
        }
        self.last = now
        return used


def cpu_text(used: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in used.items() if seconds)


def broker_url() -> str:
    return os.environ.get("CELERY_BROKER_URL", "")


def wait_until_searchable(project_id: int, timeout: float = 600.0) -> float:
    """Seconds until no prompt of the project waits for the search index."""
    from labeling.models import PromptSearchText

    unindexed = PromptSearchText.objects.filter(project_id=project_id, indexed=False)
    started = time.perf_counter()
    while unindexed.exists():
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"project {project_id} still not indexed after {timeout} s")
        time.sleep(0.02)
    return time.perf_counter() - started


def search_job_text(project_id: int, timeout: float = 60.0) -> str:
    """The project's last search job, once it finished (after its rows, it refreshes the
    planner's statistics)."""
    from labeling.models import PromptSearchJob

    started = time.perf_counter()
    while True:
        job = PromptSearchJob.objects.filter(project_id=project_id).order_by("-pk").first()
        finished = job is not None and job.finished_at is not None
        if finished or time.perf_counter() - started > timeout:
            break
        time.sleep(0.02)
    if job is None or job.started_at is None or job.finished_at is None:
        return "no finished job"
    seconds = (job.finished_at - job.started_at).total_seconds()
    return f"job {job.status}, {job.prompts_indexed} prompts in {seconds:.2f} s"


def start_worker() -> subprocess.Popen | None:
    """A Celery worker for the search jobs (one process), if a broker is configured."""
    if not broker_url():
        return None
    from config.celery import app

    app.control.purge()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", "1",
         "--loglevel", "warning", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_CONN_MAX_AGE": "600"},
    )  # fmt: skip
    for _ in range(300):
        if app.control.ping(timeout=0.5):
            return worker
        if worker.poll() is not None:
            break
    worker.kill()
    raise RuntimeError("the Celery worker did not start")


def timed_service_import(lead: User, body: bytes, name: str) -> tuple[float, float, int]:
    """The API's service in-process: (parse + validate seconds, total seconds, queries)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from core.memory import cycles_collected_rarely
    from labeling import services
    from labeling.importing import parse_import_body, validate_records

    project = services.project_create(creator=lead, name=name)
    started = time.perf_counter()
    with cycles_collected_rarely():
        validate_records(parse_import_body(body))
    validated = time.perf_counter() - started
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        services.prompts_import(project=project, raw=body)
        total = time.perf_counter() - started
    wait_until_searchable(project.pk)  # the worker's job must not run into the next import
    return validated, total, len(queries)


def timed_orm_baseline(lead: User, body: bytes, name: str) -> float:
    """Naive baseline: the same validated records written with the ORM's bulk_create."""
    from django.db import transaction

    from labeling import services
    from labeling.importing import parse_import_body, validate_records
    from labeling.services.prompts import _prompts_bulk_create

    project = services.project_create(creator=lead, name=name)
    started = time.perf_counter()
    records_ = validate_records(parse_import_body(body))
    with transaction.atomic():
        for start in range(0, len(records_), 2000):
            _prompts_bulk_create(project=project, records=records_[start : start + 2000])
    return time.perf_counter() - started


def start_server(workers: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"127.0.0.1:{PORT}", "--workers", str(workers),
            "--log-level", "warning", "--timeout", "120",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_CONN_MAX_AGE": "600",
            "CELERY_BROKER_URL": broker_url(),
        },
    )  # fmt: skip
    for _ in range(200):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def http_import(project_id: int, token: str, body: bytes) -> tuple[float, int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=300)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/jsonl"}
    started = time.perf_counter()
    connection.request("POST", f"/api/projects/{project_id}/prompts/", body=body, headers=headers)
    response = connection.getresponse()
    answer = response.read()
    return time.perf_counter() - started, response.status, answer


def bench_http(
    lead: User, body: bytes, count: int, repeat: int, workers: int, worker: int | None
) -> float:
    """Prints each run and the summary; the median milliseconds a prompt."""
    from labeling import services
    from labeling.accounts.services import api_token_create
    from labeling.models import Prompt

    token = api_token_create(user=lead, name="bench").secret
    server = start_server(workers)
    try:
        # Warm every worker (imports, first connection) with small imports.
        small = b"".join(records(5, prefix="warm"))
        for attempt in range(workers * 2):
            project = services.project_create(creator=lead, name=f"warm {attempt}")
            http_import(project.pk, token, small)
        timings = []
        for attempt in range(repeat):
            project = services.project_create(creator=lead, name=f"http {attempt}")
            wait_until_searchable(project.pk)
            meter = CpuMeter(server=server.pid, worker=worker)
            seconds, status, answer = http_import(project.pk, token, body)
            import_cpu = meter.lap()
            if status != 201:
                raise RuntimeError(f"import answered {status}: {answer[:300]!r}")
            searchable = wait_until_searchable(project.pk)
            index_cpu = meter.lap()
            assert orjson.loads(answer)["created"] == count
            assert Prompt.objects.filter(project=project).count() == count
            timings.append(seconds)
            print(
                f"  HTTP run {attempt + 1}: {seconds:.2f} s, CPU s: {cpu_text(import_cpu)}; "
                f"all indexed {searchable:.2f} s after the answer ({search_job_text(project.pk)}"
                f"; CPU s: {cpu_text(index_cpu)}) ({load()})"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    best, worst, median = min(timings), max(timings), sorted(timings)[len(timings) // 2]
    print(
        f"HTTP POST {count} prompts x {RESPONSES} ({len(body) / 1e6:.1f} MB JSON Lines, "
        f"gunicorn -w {workers}): best {best:.2f} s, median {median:.2f} s, "
        f"worst {worst:.2f} s ({count / best:,.0f} prompts/s); target <= 1.5 s"
    )
    return 1000 * median / count


def command_environment() -> dict[str, str]:
    """The bench's environment, with bytecode cached under var/pycache as ``./dev test`` does:
    where PYTHONDONTWRITEBYTECODE is set, each ``manage.py`` would compile Django and the
    app from source again (about 4 s of CPU on this machine), which no installed tool pays."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(ROOT / "var" / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def command_startup_seconds(env: dict[str, str]) -> float:
    """``manage.py import_prompts --help`` twice (the first fills the bytecode cache): the
    second's wall time is what starting the command costs before it reads a line."""
    seconds = 0.0
    for _ in range(2):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "manage.py", "import_prompts", "--help"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    return seconds


def bench_command(
    lead: User,
    size: int,
    path: Path,
    options: argparse.Namespace,
    writers: int,
    worker: int | None,
    http_ms: float | None,
) -> None:
    from labeling import services
    from labeling.models import Prompt

    megabytes = path.stat().st_size / 1e6
    project = services.project_create(creator=lead, name=f"command {size} x {writers}")
    command = [
        sys.executable, "manage.py", "import_prompts", str(project.pk), str(path),
        "--no-progress", "--batch-size", str(options.batch_size), "--writers", str(writers),
    ]  # fmt: skip
    env = command_environment()
    startup = command_startup_seconds(env)
    meter = CpuMeter(worker=worker)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    meter.lap()
    output = process.stdout.read().decode() if process.stdout else ""
    if status != 0:
        raise RuntimeError(f"the command failed ({status}): {output}")
    searchable = wait_until_searchable(project.pk, timeout=3600)
    index_cpu = meter.lap()
    assert Prompt.objects.filter(project=project).count() == size
    # The command's database backends end with it: only the command's own CPU (its writers'
    # included, as waited-for children) is read here.
    command_cpu = usage.ru_utime + usage.ru_stime
    started_ms = 1000 * (seconds - startup) / size
    beside = f" (the API's median {http_ms:.3f} ms)" if http_ms is not None else ""
    print(
        f"command import {size:,} prompts ({megabytes:,.0f} MB, batches of "
        f"{options.batch_size}, {writers} writer{'s' if writers > 1 else ''}): "
        f"{seconds:.1f} s (of which starting manage.py {startup:.1f} s), "
        f"{size / seconds:,.0f} prompts/s, {started_ms:.3f} ms a prompt once started{beside}, "
        f"peak RSS {usage.ru_maxrss / 1024:.0f} MB, CPU s: command {command_cpu:.2f}; "
        f"all indexed {searchable:.1f} s after it "
        f"({search_job_text(project.pk)}; CPU s: {cpu_text(index_cpu)}) ({load()})"
    )


def drop_database() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    name = BENCH_DATABASE_URL.rsplit("/", 1)[1]
    admin_url = BENCH_DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--command-sizes", default="100000,1000000")
    parser.add_argument("--command-writers", default="1,2", help="--writers of each command run")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument(
        "--text",
        choices=["varied", "lorem"],
        default="varied",
        help="varied: words drawn from a vocabulary (as real data indexes); lorem: the "
        "repeated filler of earlier runs, few distinct trigrams",
    )
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    try:
        recreate_database()
        django_setup()
    except Exception as error:  # no PostgreSQL to bench against: cannot run
        print(f"cannot run: {error}", file=sys.stderr)
        sys.exit(1)
    from django.contrib.auth.models import User

    print(f"machine: {machine()}; {load()}")
    body = b"".join(records(args.prompts, text=args.text))
    print(
        f"payload: {args.prompts} prompts x {RESPONSES}, {len(body) / 1e6:.1f} MB JSON Lines, "
        f"{args.text} text"
    )
    lead = User.objects.create_user("bench-import-lead")
    worker_process = start_worker()
    worker = worker_process.pid if worker_process else None
    print(
        "search index: built by a Celery worker after each import"
        if worker
        else "search index: no broker, so built in-process at each import's commit"
    )
    try:
        runs = [timed_service_import(lead, body, f"service {i}") for i in range(args.repeat)]
        best = min(runs, key=lambda run: run[1])
        print(
            f"service in-process: best {best[1]:.2f} s (parse + validate {best[0]:.2f} s), "
            f"worst {max(run[1] for run in runs):.2f} s; {best[2]} queries per import"
        )
        baseline = min(timed_orm_baseline(lead, body, f"orm {i}") for i in range(args.repeat))
        print(f"baseline, ORM bulk_create on PostgreSQL: best {baseline:.2f} s")
        http_ms = None
        if not args.skip_http:
            http_ms = bench_http(lead, body, args.prompts, args.repeat, args.workers, worker)
        sizes = [int(size) for size in args.command_sizes.split(",") if size.strip()]
        writer_counts = [int(count) for count in args.command_writers.split(",") if count.strip()]
        with tempfile.TemporaryDirectory(prefix="ranklab-import-bench-") as directory:
            for size in sizes:
                path = Path(directory) / f"prompts-{size}.jsonl"
                with path.open("wb") as handle:
                    handle.writelines(records(size, prefix=f"c{size}-", text=args.text))
                for writers in writer_counts:  # the same file into a project of its own each
                    bench_command(lead, size, path, args, writers, worker, http_ms)
                path.unlink()
        print(f"done; {load()}")
    finally:
        if worker_process is not None:
            worker_process.terminate()
            worker_process.wait(timeout=60)
        if not args.keep_database:
            drop_database()


if __name__ == "__main__":
    main()
