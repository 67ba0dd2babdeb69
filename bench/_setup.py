"""Shared bench setup: a dedicated PostgreSQL database, migrated, and Django configured."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranklab_bench"
)


def recreate_database(url: str = BENCH_DATABASE_URL) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def django_setup(url: str = BENCH_DATABASE_URL, migrate: bool = True) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    sys.path.insert(0, str(ROOT))
    if migrate:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
            cwd=ROOT,
            check=True,
            env=os.environ,
        )
    import django

    django.setup()


def machine() -> str:
    cores = os.cpu_count()
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(handle.readline().split()[1])
            memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return f"{platform.machine()}, {cores} cores{memory}, Python {platform.python_version()}"


def calibration() -> str:
    """This machine's speed today on two fixed loads (one core each), to compare runs made on
    different days: the host's speed varies."""
    import numpy as np

    started = time.perf_counter()
    total = 0
    for value in range(10_000_000):
        total += value
    python = time.perf_counter() - started
    values = np.random.default_rng(0).random(20_000_000)
    started = time.perf_counter()
    np.sort(values)
    numpy = time.perf_counter() - started
    return f"calibration: 10M Python additions {python:.2f} s, numpy sort of 20M {numpy:.2f} s"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def cpu_seconds_by_role(server_pid: int | None = None) -> dict[str, float]:
    """CPU seconds (user + system) used so far by this machine's processes, by role: the web
    server (`server_pid` and its children), PostgreSQL, Redis, this process, everything else.
    Two readings around a run say where its CPU went (Linux /proc; empty elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    totals: dict[str, float] = {}
    try:
        entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return totals
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        parent, used = int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks
        pid = int(entry)
        if pid == os.getpid():
            role = "load generator"
        elif server_pid is not None and server_pid in (pid, parent):
            role = "web server"
        elif name.startswith("postgres"):
            role = "PostgreSQL"
        elif name.startswith("redis"):
            role = "Redis"
        else:
            role = "other"
        totals[role] = totals.get(role, 0.0) + used
    return totals


def core_ticks() -> dict[str, int]:
    """The machine's cores' time so far by state, in clock ticks (Linux /proc/stat; empty
    elsewhere): two readings around a run say whether it was bound by the cores (little
    idle) or by waiting, and how much the host took back (stolen)."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(value) for value in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return {}
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return {
        "busy": user + nice + system + irq + softirq,
        "idle": idle + iowait,
        "stolen": steal,
    }


def core_share_line(before: dict[str, int], after: dict[str, int]) -> str:
    """'cores: busy 93%, idle 6%, stolen 1%' between two `core_ticks` readings."""
    used = {state: after[state] - before[state] for state in after if state in before}
    total = sum(used.values())
    if not total:
        return ""
    return "cores: " + ", ".join(
        f"{state} {100 * ticks / total:.0f}%" for state, ticks in used.items()
    )


def cpu_share_line(before: dict[str, float], after: dict[str, float], per: int, unit: str) -> str:
    """'web server 6.1 ms, PostgreSQL 3.9 ms, …' of CPU per `unit` between two readings."""
    if not per:
        return ""
    used = {role: after.get(role, 0.0) - before.get(role, 0.0) for role in after}
    parts = [
        f"{role} {seconds * 1000 / per:.1f} ms"
        for role, seconds in sorted(used.items(), key=lambda item: -item[1])
        if seconds > 0
    ]
    return f"CPU a {unit}: " + ", ".join(parts)
