"""A newcomer's first run, driven as they would: `ranklab demo` serves the demo on a fresh
database, and the README's API block, pasted into bash, runs end to end against it —
import, rank, export, poll, download — on the database this test run uses (SQLite with
tasks in-process, or PostgreSQL with a real Celery worker on Redis). `./dev` refuses too
old a Python and unknown commands with a non-zero exit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.helpers import unused_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SERVER_START_SECONDS = 90
BLOCK_TIMEOUT_SECONDS = 120
BASH = shutil.which("bash") or "/bin/bash"


def readme_api_block() -> str:
    """The bash block of the README's API section, exactly as a reader would paste it."""
    text = README.read_text()
    section = text[text.index("## The API, end to end") :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, "the README's API section has no bash block"
    return match.group(1)


def wait_for_page(url: str, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ranklab demo exited {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise AssertionError(
        f"no login page at {url} after {SERVER_START_SECONDS} s:\n{log.read_text()}"
    )


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """A database of the kind this test run uses, empty, dropped afterwards."""
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'ranklab.sqlite3'}"
        return
    settings = connection.settings_dict
    name = f"ranklab_first_run_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:"
            f"{settings['PORT'] or 5432}/{name}"
        )
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def demo_env(tmp_path: Path, fresh_database_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST_", "CELERY_"))
    }
    env.update(
        DATABASE_URL=fresh_database_url,
        RANKLAB_DATA_DIR=str(tmp_path / "data"),
        EXPORT_ROOT=str(tmp_path / "exports"),
        CELERY_BROKER_URL="",
        PYTHONUNBUFFERED="1",
    )
    if connection.vendor == "postgresql":
        # Production shape: exports go through Redis to a real worker, on a queue of this
        # test's own so no other worker can take them.
        env["CELERY_BROKER_URL"] = os.environ.get("CELERY_BROKER_URL") or (
            "redis://127.0.0.1:6379/15"
        )
        env["CELERY_TASK_DEFAULT_QUEUE"] = f"ranklab-first-run-{uuid.uuid4().hex[:10]}"
    return env


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=log.parent,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def served_demo(tmp_path: Path, demo_env: dict[str, str]) -> Iterator[str]:
    port = unused_port()
    processes: list[subprocess.Popen[str]] = []
    ranklab = [sys.executable, "-m", "core.cli"]
    env = {**demo_env, "PYTHONPATH": str(ROOT)}
    try:
        if env["CELERY_BROKER_URL"]:
            processes.append(
                _spawn([*ranklab, "worker", "--pool", "solo"], env, tmp_path / "worker.log")
            )
        log = tmp_path / "demo.log"
        processes.append(_spawn([*ranklab, "demo", "--port", str(port)], env, log))
        url = f"http://127.0.0.1:{port}"
        wait_for_page(f"{url}/login/", processes[-1], log)
        yield url
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.e2e
def test_readme_api_block_runs_as_pasted_against_the_demo(served_demo, tmp_path: Path):
    workdir = tmp_path / "reader"
    shutil.copytree(ROOT / "examples", workdir / "examples")
    script = "set -euo pipefail\n" + readme_api_block()
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=workdir,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "RANKLAB": served_demo},
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert re.search(r"export \d+: done", result.stdout), result.stdout
    rows = [
        json.loads(line)
        for line in (workdir / "preferences.jsonl").read_text().splitlines()
        if line.strip()
    ]
    # One prompt ranked by one rater: its K responses give K·(K-1)/2 pairs, all from the
    # sample file (the demo projects' data never leaks into the new project's export).
    samples = [
        json.loads(line) for line in (ROOT / "examples" / "prompts.jsonl").read_text().splitlines()
    ]
    sample_prompts = {record.get("prompt") for record in samples}
    assert rows
    assert all(row["prompt"] in sample_prompts or "prompt" not in row for row in rows)
    assert {"chosen", "rejected"} <= set(rows[0])


def run_dev(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    copy = tmp_path / "checkout"
    copy.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dev", copy / "dev")
    return subprocess.run(
        [BASH, str(copy / "dev"), *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_dev_with_too_old_a_python_says_so_in_one_line_and_fails(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    old_python = bin_dir / "python3"
    old_python.write_text("#!/bin/sh\nexit 1\n")  # fails the version check, like Python 3.11
    old_python.chmod(0o755)
    for tool in ("dirname", "sed", "cat", "touch"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    result = run_dev(["demo"], env, tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Python 3.12 or newer" in lines[0], result.stderr
    assert not (tmp_path / "checkout" / ".venv").exists()


def test_dev_refuses_an_unknown_command(tmp_path: Path):
    result = run_dev(["demoo"], {"PATH": os.environ["PATH"]}, tmp_path)
    assert result.returncode == 2
    assert "unknown command 'demoo'" in result.stderr


def test_dev_help_lists_the_commands(tmp_path: Path):
    result = run_dev(["help"], {"PATH": os.environ["PATH"]}, tmp_path)
    assert result.returncode == 0
    for command in ("demo", "test", "lint", "screenshots"):
        assert f"./dev {command}" in result.stdout
