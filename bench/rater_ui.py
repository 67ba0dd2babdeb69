"""Rater page in the browser: time from pressing submit to the next task being interactive.

Starts gunicorn (DEBUG off, static files collected) against a PostgreSQL database of its
own, opens the ranking page in Debian's Chromium signed in as a rater, and ranks tasks
with the keyboard (K=4 responses, the helpful/honest/harmless rubric on each). The page
records `performance.now()` from the submit key press to the frame in which the next task
is painted with its handlers attached (`window.__ranklab.timings`), and to the moment the
server's answer for the submit arrived (`saves`). It runs once as shipped (the next task
preloaded) and once with the preload ignored, which waits for the server like a page that
swaps the next task in from the submit's answer.

    .venv/bin/python bench/rater_ui.py [--submits 50] [--workers 2]
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import ROOT, django_setup, machine, percentile, recreate_database

DATABASE_URL = os.environ.get(
    "BENCH_UI_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranklab_bench_ui"
)
PORT = int(os.environ.get("BENCH_UI_PORT", "8798"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WARM_UP = 3

RESPONSE = (
    "Here is one way to do it:\n\n"
    "```python\ndef reverse_words(text: str) -> str:\n"
    "    return ' '.join(reversed(text.split()))\n```\n\n"
    "- it splits on whitespace\n- it keeps punctuation attached to words\n\n"
)


def prepare(prompts: int) -> tuple[int, str]:
    from django.contrib.auth.models import User
    from django.test import Client

    from labeling import services
    from labeling.models import Membership
    from labeling.rubric import HHH_PRESET

    lead = User.objects.create_user("bench-lead", password="x")
    rater = User.objects.create_user("bench-rater", password="x")
    project = services.project_create(
        creator=lead, name="bench ui", overlap=1, gold_rate=0, rubric=list(HHH_PRESET)
    )
    Membership.objects.create(project=project, user=rater)
    records = [
        {
            "messages": [
                {"role": "system", "content": "You are a careful assistant."},
                {"role": "user", "content": f"Task {index}: reverse the words of a sentence."},
            ],
            "responses": [
                {"text": RESPONSE + f"Variant {slot}. " + "More detail follows. " * 40}
                for slot in range(4)
            ],
        }
        for index in range(prompts)
    ]
    services.prompts_import(project=project, raw=json.dumps(records))
    client = Client()
    client.force_login(rater)
    return project.pk, client.cookies["sessionid"].value


def start_server(workers: int, static_root: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_CONN_MAX_AGE": "600",
        "STATIC_ROOT": static_root,
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"127.0.0.1:{PORT}", "--workers", str(workers), "--threads", "4",
            "--log-level", "warning",
        ],
        cwd=ROOT,
        env=env,
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


def rank_and_submit(page: Any, count: int, *, preload: bool) -> tuple[list[dict], list[float]]:
    """Submit `count` tasks; returns the page's timings and save round trips (ms)."""
    page.evaluate(f"window.__ranklab.preload = {'true' if preload else 'false'}")
    start_timings = page.evaluate("window.__ranklab.timings.length")
    start_saves = page.evaluate("window.__ranklab.saves.length")
    for done in range(count):
        # A rater reads for a while: the previous answer and the next preload are in.
        page.wait_for_function("() => window.__ranklab.pending === 0")
        page.wait_for_timeout(150)
        for key in ("2", "1", "4", "3"):
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        page.wait_for_function(
            f"() => window.__ranklab.timings.length >= {start_timings + done + 1}", timeout=15_000
        )
    page.wait_for_function("() => window.__ranklab.pending === 0")
    timings = page.evaluate(f"window.__ranklab.timings.slice({start_timings})")
    saves = page.evaluate(f"window.__ranklab.saves.slice({start_saves})")
    return timings, saves


def report(label: str, timings: list[dict], saves: list[float]) -> None:
    shown = [timing["shownMs"] for timing in timings]
    swap = [timing["swapMs"] for timing in timings]
    preloaded = sum(1 for timing in timings if timing["preloaded"])
    print(
        f"{label}: {len(shown)} submits ({preloaded} from the preload)\n"
        f"  submit → next task interactive (painted): p50 {percentile(shown, 0.5):.1f} ms, "
        f"p95 {percentile(shown, 0.95):.1f} ms, max {max(shown):.1f} ms\n"
        f"  submit → next task in the DOM:            p50 {percentile(swap, 0.5):.1f} ms, "
        f"p95 {percentile(swap, 0.95):.1f} ms\n"
        f"  submit → answer saved (server round trip): p50 {percentile(saves, 0.5):.1f} ms, "
        f"p95 {percentile(saves, 0.95):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--submits", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    recreate_database(DATABASE_URL)
    django_setup(DATABASE_URL)
    print(f"machine: {machine()}")
    project_id, session = prepare(prompts=2 * (args.submits + WARM_UP) + 10)
    with tempfile.TemporaryDirectory() as static_root:
        server = start_server(args.workers, static_root)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_cookies(
                    [{"name": "sessionid", "value": session, "url": f"http://127.0.0.1:{PORT}"}]
                )
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{PORT}/rate/{project_id}/")
                page.wait_for_selector("#task-slot [data-task]")
                rank_and_submit(page, WARM_UP, preload=True)
                timings, saves = rank_and_submit(page, args.submits, preload=True)
                report("preloaded next task (as shipped)", timings, saves)
                rank_and_submit(page, WARM_UP, preload=False)
                timings, saves = rank_and_submit(page, args.submits, preload=False)
                report("baseline: wait for the server's answer", timings, saves)
                browser.close()
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
