"""Export speed and memory: 100k and 1M pairs from PostgreSQL to JSONL and to Parquet.

Builds two projects with COPY (K=4 responses, 3 raters per prompt, all_pairs: 18 pairs a
prompt), then runs each export job in a fresh process and reports pairs/s and the process's
peak resident memory, next to a naive baseline (dict rows through `json.dumps`, one line at a
time) on the same data.

Wall-clock pairs/s depend on what else the machine runs; "pairs/CPU s" divides by the export
process's own CPU time (all its threads; PostgreSQL's work is not counted) and is the
steadier figure on a busy machine. Where the wall clock goes is printed beside it: the CPU
seconds of the PostgreSQL backends serving the export (sampled from /proc while it runs),
the CPU seconds everything else on the machine used meanwhile, and the load average at the
start and end of each run. Peak RSS at the two sizes shows whether memory stays flat.

    .venv/bin/python bench/export.py [--sizes 100000,1000000] [--skip-setup]
        [--containers jsonl,parquet] [--no-extras] [--soft-labels off|on|both]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, machine, recreate_database

DATABASE_URL = os.environ.get(
    "BENCH_EXPORT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranklab_bench_exports"
)
RESPONSES = 4
RATERS = 3
PAIRS_PER_PROMPT = RATERS * RESPONSES * (RESPONSES - 1) // 2
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "it",
    "for",
    "on",
    "with",
    "as",
    "was",
    "be",
    "by",
    "this",
    "are",
    "or",
    "at",
    "from",
]


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def build_project(name: str, pairs: int, lead: Any, raters: list[Any]) -> int:
    """A project with enough rankings for `pairs` all_pairs rows, inserted with COPY."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from core.db import copy_rows, reserve_ids
    from labeling import services
    from labeling.models import Assignment, Membership, Prompt, Response
    from rankings.models import Ranking

    project = services.project_create(creator=lead, name=name, overlap=RATERS)
    for rater in raters:
        Membership.objects.create(project=project, user=rater, role="rater")
    rng = random.Random(name)
    count = -(-pairs // PAIRS_PER_PROMPT)
    now = timezone.now()
    batch = 5000
    for start in range(0, count, batch):
        size = min(batch, count - start)
        with transaction.atomic():
            prompt_ids = reserve_ids(Prompt, size)
            response_ids = reserve_ids(Response, size * RESPONSES)
            assignment_ids = reserve_ids(Assignment, size * RATERS)
            ranking_ids = reserve_ids(Ranking, size * RATERS)
            copy_rows(
                Prompt,
                *columns(
                    Prompt,
                    [
                        {
                            "id": prompt_id,
                            "project": project.pk,
                            "external_id": f"{name}-{start + index}",
                            "messages": [{"role": "user", "content": text(rng, 40)}],
                            "is_complete": True,
                            "created_at": now,
                        }
                        for index, prompt_id in enumerate(prompt_ids)
                    ],
                ),
            )
            copy_rows(
                Response,
                *columns(
                    Response,
                    [
                        {
                            "id": response_ids[index * RESPONSES + slot],
                            "prompt": prompt_id,
                            "position": slot,
                            "text": text(rng, 80),
                            "model_name": f"model-{slot}",
                        }
                        for index, prompt_id in enumerate(prompt_ids)
                        for slot in range(RESPONSES)
                    ],
                ),
            )
            assignments, rankings = [], []
            for index, prompt_id in enumerate(prompt_ids):
                ids = response_ids[index * RESPONSES : (index + 1) * RESPONSES]
                for slot, rater in enumerate(raters):
                    order = ids[:]
                    rng.shuffle(order)
                    position = index * RATERS + slot
                    assignments.append(
                        {
                            "id": assignment_ids[position],
                            "project": project.pk,
                            "prompt": prompt_id,
                            "rater": rater.pk,
                            "status": "submitted",
                            "shown_order": ids,
                            "leased_at": now,
                            "expires_at": now + timedelta(minutes=10),
                            "finished_at": now,
                        }
                    )
                    rankings.append(
                        {
                            "id": ranking_ids[position],
                            "assignment": assignment_ids[position],
                            "project": project.pk,
                            "prompt": prompt_id,
                            "rater": rater.pk,
                            "groups": [[response_id] for response_id in order],
                            "created_at": now,
                        }
                    )
            copy_rows(Assignment, *columns(Assignment, assignments))
            copy_rows(Ranking, *columns(Ranking, rankings))
    return project.pk


def columns(model: Any, rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Every stored column, from the row or the field's default (robust to new fields);
    generated columns are left to the database."""
    fields = [field for field in model._meta.concrete_fields if not field.generated]
    names = [field.name for field in fields]
    defaults = {
        field.name: None if field.null and not field.has_default() else field.get_default()
        for field in fields
    }
    return names, [[row.get(name, defaults[name]) for name in names] for row in rows]


def setup(sizes: list[int]) -> dict[int, int]:
    from django.contrib.auth.models import User
    from django.db import connection

    lead = User.objects.create_user("bench-export-lead", is_staff=True)
    raters = [User.objects.create_user(f"bench-export-rater{index}") for index in range(RATERS)]
    projects = {}
    for size in sizes:
        started = time.perf_counter()
        projects[size] = build_project(f"export-{size}", size, lead, raters)
        print(f"built {size:,} pairs' worth of rankings in {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return projects


def naive_rows(job: Any) -> Iterator[dict[str, Any]]:
    """Dict rows of the job, one prompt at a time: the reference rendering."""
    from exports.formats import rows_for_pairs
    from exports.services.batches import ExportRequest, export_batches

    request = ExportRequest.for_job(job)
    shape = request.shape()
    for batch in export_batches(request):
        for prompt, prompt_pairs, split in batch:
            yield from rows_for_pairs(job.format, prompt_pairs, prompt, split, **shape)


def run_one(project_id: int, container: str, naive: bool, soft_labels: bool) -> dict[str, Any]:
    """In a fresh process: one export job, its speed and this process's peak memory."""
    from django.contrib.auth.models import User

    from exports import services
    from exports.models import ExportJob
    from labeling.models import Project

    project = Project.objects.get(pk=project_id)
    lead = User.objects.get(username="bench-export-lead")
    load_before = os.getloadavg()[0]
    machine_before = machine_busy_seconds()
    before = resource.getrusage(resource.RUSAGE_SELF)
    baseline_kib = before.ru_maxrss
    started = time.perf_counter()
    if naive:
        # The obvious implementation: dict rows, one json.dumps per line.
        params = services.export_params_clean({"soft_labels": soft_labels})
        job = ExportJob.objects.create(project=project, created_by=lead, params=params)
        rows = 0
        with tempfile.TemporaryFile() as handle:
            for row in naive_rows(job):
                handle.write(
                    (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                )
                rows += 1
            size = handle.tell()
        timings: dict[str, float] = {}
    else:
        job = services.export_job_create(
            project=project,
            created_by=lead,
            container=container,
            params={"soft_labels": soft_labels},
        )
        if job.status == "queued":
            services.export_job_run(job_id=job.pk)
        job.refresh_from_db()
        assert job.status == "done", job.error
        rows, size, timings = job.rows, job.size_bytes, job.timings
        services.export_job_delete_file(job=job, deleted_by=lead)  # leave no files behind
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    machine_cpu = machine_busy_seconds() - machine_before
    peak_kib = after.ru_maxrss
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {
        "rows": rows,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "bytes": size,
        "baseline_mib": baseline_kib / 1024,
        "peak_mib": peak_kib / 1024,
        # every core's busy time while the job ran (this process's included)
        "machine_cpu_seconds": machine_cpu,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "timings": timings,
    }


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat; 0 where there is none)."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(value) for value in handle.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_measured(command: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run one export process; the CPU seconds its PostgreSQL backends used."""
    import psycopg

    backends: dict[int, float] = {}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
    )
    with psycopg.connect(DATABASE_URL, autocommit=True) as watcher:
        own = watcher.info.backend_pid
        while process.poll() is None:
            pids = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s",
                [own],
            ).fetchall()
            for (pid,) in pids:
                seconds = process_cpu_seconds(pid)
                if seconds is not None:
                    backends[pid] = seconds
            time.sleep(0.1)
    stdout, stderr = process.communicate()
    finished = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    return finished, sum(backends.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--skip-setup", action="store_true")
    parser.add_argument(
        "--containers",
        default="jsonl,parquet",
        help="containers to export at every size (default jsonl,parquet)",
    )
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="skip the jsonl.gz run and the naive baseline (both at the first size)",
    )
    parser.add_argument(
        "--soft-labels",
        choices=["off", "on", "both"],
        default="off",
        help="export without the vote columns (default), with them, or both ways",
    )
    parser.add_argument("--run", help=argparse.SUPPRESS)  # project_id:container:naive:soft
    args = parser.parse_args()
    if args.run:
        django_setup(DATABASE_URL, migrate=False)
        project_id, container, naive, soft = args.run.split(":")
        print(json.dumps(run_one(int(project_id), container, naive == "1", soft == "1")))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    os.environ.setdefault("EXPORT_ROOT", tempfile.mkdtemp(prefix="ranklab-bench-exports-"))
    os.environ.pop("CELERY_BROKER_URL", None)  # run jobs in-process
    if not args.skip_setup:
        recreate_database(DATABASE_URL)
    django_setup(DATABASE_URL, migrate=not args.skip_setup)
    from labeling.models import Project

    if args.skip_setup:
        projects = {size: Project.objects.get(name=f"export-{size}").pk for size in sizes}
    else:
        projects = setup(sizes)
    print(f"machine: {machine()}")
    print(f"data: K={RESPONSES} responses, {RATERS} raters per prompt, all_pairs, metadata on")
    print("soft: with the vote columns (soft_labels: chosen_votes, tie_votes, total_votes)")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print(
        f"{'export':<22}{'pairs':>11}{'seconds':>9}{'pairs/s':>11}{'CPU s':>8}{'pairs/CPU s':>13}"
        f"{'MB':>8}{'RSS before':>12}{'peak RSS':>10}{'PG CPU s':>10}{'other CPU s':>13}"
        f"{'load':>11}"
    )
    containers = args.containers.split(",")
    softs = {"off": [False], "on": [True], "both": [False, True]}[args.soft_labels]
    runs = [
        (size, container, False, soft)
        for size in sizes
        for container in containers
        for soft in softs
    ]
    if not args.no_extras:
        runs += [(sizes[0], "jsonl.gz", False, soft) for soft in softs]
        runs += [(sizes[0], "jsonl", True, softs[0])]
    for size, container, naive, soft in runs:
        label = (
            f"{container} {size // 1000}k" + (" soft" if soft else "") + (" naive" if naive else "")
        )
        spec = f"{projects[size]}:{container}:{int(naive)}:{int(soft)}"
        finished, postgres_cpu = run_measured([sys.executable, __file__, "--run", spec])
        if finished.returncode:
            print(f"{label:<22}failed: {finished.stderr.strip().splitlines()[-3:]}")
            continue
        result = json.loads(finished.stdout.strip().splitlines()[-1])
        other_cpu = result["machine_cpu_seconds"] - postgres_cpu - result["cpu_seconds"]
        print(
            f"{label:<22}{result['rows']:>11,}{result['seconds']:>9.2f}"
            f"{result['rows'] / result['seconds']:>11,.0f}{result['cpu_seconds']:>8.2f}"
            f"{result['rows'] / result['cpu_seconds']:>13,.0f}{result['bytes'] / 1e6:>8.0f}"
            f"{result['baseline_mib']:>10.0f} M{result['peak_mib']:>8.0f} M"
            f"{postgres_cpu:>10.2f}"
            f"{other_cpu:>13.2f}"
            f"{result['load_before']:>6.1f}→{result['load_after']:<4.1f}"
        )
        if result["timings"]:
            phases = ", ".join(f"{key} {value:.2f}" for key, value in result["timings"].items())
            print(f"{'':<22}phases (s): {phases}")


if __name__ == "__main__":
    main()
