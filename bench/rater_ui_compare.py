"""Rater page, paired: submit → next task painted for two source trees under the same load.

On a shared machine single runs of `rater_ui.py` move by more than a change does. This
serves each tree (e.g. the committed one, from `git archive HEAD | tar -x -C /tmp/before`,
and the working tree) from its own gunicorn and database with the same bench data, opens
both rater pages in one Chromium and alternates keyboard submits between them, in random
order per round, so both see the same load.

    .venv/bin/python bench/rater_ui_compare.py before=/tmp/before after=. [--submits 100]
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
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import machine, percentile

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FIRST_PORT = int(os.environ.get("BENCH_UI_PORT", "8816"))
DATABASE_PREFIX = os.environ.get(
    "BENCH_UI_DATABASE_PREFIX", "postgres://postgres@127.0.0.1:5432/ranklab_bench_ui_"
)
WARM_UP = 5
# Run inside each tree: its own migrations and its own `rater_ui.prepare`.
PREPARE = """
import json, sys
sys.path.insert(0, "bench")
from _setup import django_setup, recreate_database
recreate_database(sys.argv[1])
django_setup(sys.argv[1])
import rater_ui
print("PREPARED" + json.dumps(rater_ui.prepare(prompts=int(sys.argv[2]))))
"""


def serve(name: str, tree: Path, port: int, prompts: int) -> tuple[subprocess.Popen, int, str]:
    database = f"{DATABASE_PREFIX}{name}"
    env = {**os.environ, "CELERY_BROKER_URL": ""}
    done = subprocess.run(
        [sys.executable, "-c", PREPARE, database, str(prompts)],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(line for line in done.stdout.splitlines() if line.startswith("PREPARED"))
    project_id, session = json.loads(line.removeprefix("PREPARED"))
    env.update(
        DATABASE_URL=database, ALLOWED_HOSTS="127.0.0.1", DATABASE_CONN_MAX_AGE="600",
        STATIC_ROOT=tempfile.mkdtemp(prefix=f"bench-static-{name}-"), DEBUG="false",
        SECRET_KEY="bench-only", DJANGO_SETTINGS_MODULE="config.settings",
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=tree, env=env, check=True,
    )  # fmt: skip
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
            "--log-level", "warning",
        ],
        cwd=tree, env=env,
    )  # fmt: skip
    for _ in range(100):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/login/")
            connection.getresponse().read()
            return server, project_id, session
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"gunicorn for {name} did not start")


def submit_once(page: Any) -> dict:
    """One keyboard submit after a short read; the page's timing of the swap."""
    page.wait_for_function("() => window.__ranklab.pending === 0")
    page.wait_for_timeout(150)
    before = page.evaluate("() => window.__ranklab.timings.length")
    for key in ("2", "1", "4", "3", "Enter"):
        page.keyboard.press(key)
    page.wait_for_function(f"() => window.__ranklab.timings.length > {before}", timeout=15_000)
    timing: dict = page.evaluate("() => window.__ranklab.timings.at(-1)")
    return timing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs="+", help="name=path of a source tree")
    parser.add_argument("--submits", type=int, default=100)
    args = parser.parse_args()
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.trees)}
    from playwright.sync_api import sync_playwright

    print(f"machine: {machine()}, load {os.getloadavg()[0]:.1f}")
    prompts = 2 * (args.submits + WARM_UP) + 10
    served = {
        name: serve(name, tree, FIRST_PORT + index, prompts)
        for index, (name, tree) in enumerate(trees.items())
    }
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            pages = {}
            for index, (name, (_, project_id, session)) in enumerate(served.items()):
                url = f"http://127.0.0.1:{FIRST_PORT + index}"
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_cookies([{"name": "sessionid", "value": session, "url": url}])
                pages[name] = context.new_page()
                pages[name].goto(f"{url}/rate/{project_id}/")
                pages[name].wait_for_selector("#task-slot [data-task]")
            timings: dict[str, list[dict]] = {name: [] for name in trees}
            order = list(trees)
            for round_number in range(WARM_UP + args.submits):
                random.shuffle(order)
                for name in order:
                    timing = submit_once(pages[name])
                    if round_number >= WARM_UP:
                        timings[name].append(timing)
            browser.close()
    finally:
        for server, _, _ in served.values():
            server.terminate()
            server.wait()
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    for name, rows in timings.items():
        shown = [row["shownMs"] for row in rows]
        swap = [row["swapMs"] for row in rows]
        print(
            f"{name}: {len(rows)} submits, submit → next task painted p50 "
            f"{percentile(shown, 0.5):.1f} ms, p95 {percentile(shown, 0.95):.1f} ms; "
            f"in the DOM p50 {percentile(swap, 0.5):.1f} ms, p95 {percentile(swap, 0.95):.1f} ms"
        )


if __name__ == "__main__":
    main()
