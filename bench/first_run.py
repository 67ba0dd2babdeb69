"""A newcomer's first run: `./dev demo` from a fresh clone to a served login page, cold (no
virtualenv yet) and warm (the second start), plus the installed size.

.venv/bin/python bench/first_run.py [--repeat 2]

Clones the current commit into a temporary folder, so uncommitted changes are not measured.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import machine

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def time_to_login_page(checkout: Path) -> tuple[float, str]:
    """Seconds from `./dev demo` to a 200 on /login/, and what the command printed."""
    port = free_port()
    log = checkout / f"demo-{port}.log"
    started = time.perf_counter()
    process = subprocess.Popen(
        ["./dev", "demo", "--port", str(port)],
        cwd=checkout,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        while time.perf_counter() - started < TIMEOUT_SECONDS:
            if process.poll() is not None:
                raise SystemExit(f"./dev demo exited {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2) as page:
                    if page.status == 200:
                        return time.perf_counter() - started, log.read_text()
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise SystemExit(f"no login page after {TIMEOUT_SECONDS} s:\n{log.read_text()}")
    finally:
        process.terminate()
        process.wait(timeout=30)


def folder_megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2, help="cold runs (each a fresh clone)")
    args = parser.parse_args()
    print(machine())
    for attempt in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="ranklab-first-run-") as folder:
            checkout = Path(folder) / "ranklab"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(checkout)], check=True)
            cold, output = time_to_login_page(checkout)
            warm, _ = time_to_login_page(checkout)
            steps = [line for line in output.splitlines() if line.startswith("•")]
            print(
                f"run {attempt + 1}: cold {cold:.1f} s to the login page, warm {warm:.1f} s; "
                f".venv {folder_megabytes(checkout / '.venv'):.0f} MB; "
                f"install steps printed: {len(steps)}"
            )
            shutil.rmtree(checkout / ".venv", ignore_errors=True)


if __name__ == "__main__":
    main()
