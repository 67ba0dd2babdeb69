"""Prompt browser speed: the list and each filter on a 1M-prompt project in PostgreSQL.

Builds a project straight into the database with COPY: 1M prompts with 3 responses each
(from 6 common models and one rare one), a third of them ranked by two raters (complete),
a tenth by one (in progress), skips on 2 %, gold, reopened and archived prompts, a
finished agreement run with a row per ranked prompt (agreement takes only four values with
two raters and three responses, so its order is full of ties), and two flagged raters.
Then times `GET /api/projects/{id}/prompts/?…` in-process (Django's test client, as the
lead: middleware, auth, validation, queries and JSON — everything but the network), each
query repeated, and prints p50/p95 per query.

    .venv/bin/python bench/prompt_browser.py [--prompts 1000000] [--reuse] [--repeat 40]
        [--pending 10000]

The search is timed twice: every prompt indexed, then with ``--pending`` new prompts
not indexed yet, as right after an import whose search job has not run.

``--reuse`` skips the build when the bench database already holds the data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, machine, percentile, recreate_database

DATABASE_URL = os.environ.get(
    "BENCH_BROWSE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranklab_bench_browse"
)
PROJECT_NAME = "prompt browser bench"
K = 3
RATERS = 50
FLAGGED_RATERS = 2
MODELS = ["gpt-4o", "llama-3-70b", "mistral-large", "qwen-2-72b", "gemma-2-27b", "claude-3"]
RARE_MODEL = "tiny-experimental"  # on 0.5 % of prompts
TOPICS = [
    "python decorators", "sourdough bread", "tax returns", "quantum computing",
    "rust lifetimes", "marathon training", "french grammar", "kubernetes networking",
    "roman history", "tomato plants", "sql indexes", "jazz harmony", "climate policy",
    "baby sleep", "chess openings", "linear algebra", "wedding speech", "home insurance",
    "css grid", "vegan protein",
]  # fmt: skip
RARE_WORD = "zanzibar"  # in 0.1 % of prompts
SHARES = {"complete": 0.30, "in_progress": 0.10, "skipped": 0.02}
GOLD, REOPENED, ARCHIVED = 500, 2000, 1000
AGREEMENT_VALUES = np.array([0.0, 1 / 3, 2 / 3, 1.0])


def build(n_prompts: int, seed: int = 7) -> None:
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.utils import timezone

    from core import db
    from core.jobs import JobStatus
    from labeling import services
    from labeling.models import Assignment, Membership, Prompt, Response
    from rankings.models import AgreementRun, Flag, FlagCode, PromptAgreement, Ranking

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    lead = User.objects.create_user("bench-browse-lead")
    project = services.project_create(creator=lead, name=PROJECT_NAME, overlap=2)
    users = User.objects.bulk_create(
        [User(username=f"bench-browse-rater-{index}") for index in range(RATERS)]
    )
    Membership.objects.bulk_create([Membership(project=project, user=user) for user in users])
    user_ids = np.array([user.pk for user in users])
    now = timezone.now()

    state = rng.random(n_prompts)
    complete = state < SHARES["complete"]
    in_progress = (state >= SHARES["complete"]) & (
        state < SHARES["complete"] + SHARES["in_progress"]
    )
    ranked_rows = np.flatnonzero(complete | in_progress)
    gold_rows = set(rng.choice(np.flatnonzero(~(complete | in_progress)), GOLD, replace=False))
    reopened_rows = set(rng.choice(np.flatnonzero(complete), REOPENED, replace=False).tolist())
    archived_rows = set(rng.choice(n_prompts, ARCHIVED, replace=False).tolist()) - gold_rows
    skipped_rows = np.flatnonzero(rng.random(n_prompts) < SHARES["skipped"])
    topic = rng.integers(0, len(TOPICS), n_prompts)
    rare_word = rng.random(n_prompts) < 0.001
    model_sets = np.argsort(rng.random((n_prompts, len(MODELS))), axis=1)[:, :K]
    rare_model = rng.random(n_prompts) < 0.005
    prompt_ids = np.array(db.reserve_ids(Prompt, n_prompts))
    response_ids = np.array(db.reserve_ids(Response, n_prompts * K)).reshape(n_prompts, K)

    def text_of(row: int) -> str:
        extra = f" I am writing from {RARE_WORD}." if rare_word[row] else ""
        return f"Question {row} about {TOPICS[topic[row]]}: what should I know first?{extra}"

    with connection.cursor() as cursor:
        # Built after the load: maintaining a trigram index row by row is the slow way.
        cursor.execute("DROP INDEX IF EXISTS prompt_search_trigram")
    with transaction.atomic():
        db.copy_rows(
            Prompt,
            ["id", "project", "external_id", "messages", "metadata", "gold_ranking", "is_gold",
             "is_complete", "extra_raters", "extra_reason", "created_at", "archived_at",
             "n_responses"],
            (
                (
                    int(prompt_ids[row]), project.pk, f"p{row}",
                    [{"role": "user", "content": text_of(row)}], {},
                    [[int(pk)] for pk in response_ids[row]] if row in gold_rows else None,
                    row in gold_rows, bool(complete[row]) and row not in reopened_rows,
                    1 if row in reopened_rows else 0,
                    "low agreement" if row in reopened_rows else "", now,
                    now if row in archived_rows else None, K,
                )
                for row in range(n_prompts)
            ),
        )  # fmt: skip
        db.copy_rows(
            Response,
            ["id", "prompt", "position", "external_id", "text", "model_name", "metadata"],
            (
                (int(response_ids[row, slot]), int(prompt_ids[row]), slot, "",
                 f"Answer {slot} to question {row}.",
                 RARE_MODEL if slot == 0 and rare_model[row] else MODELS[model_sets[row, slot]],
                 {})
                for row in range(n_prompts)
                for slot in range(K)
            ),
        )  # fmt: skip
        # Rankings: two distinct raters per complete prompt, one per prompt in progress.
        first = rng.integers(0, RATERS, n_prompts)
        second = (first + rng.integers(1, RATERS, n_prompts)) % RATERS
        pairs = [(row, first[row]) for row in ranked_rows] + [
            (row, second[row]) for row in np.flatnonzero(complete)
        ]
        n_rankings = len(pairs)
        assignment_ids = db.reserve_ids(Assignment, n_rankings + len(skipped_rows))
        ranking_ids = db.reserve_ids(Ranking, n_rankings)
        lease_end = now + timedelta(minutes=10)
        orders = np.argsort(rng.random((n_rankings, K)), axis=1)
        # A skipper who did not rank the prompt (one assignment per prompt and rater).
        skip_rater = np.where(
            (second + 1) % RATERS == first, (second + 2) % RATERS, (second + 1) % RATERS
        )
        db.copy_rows(
            Assignment,
            ["id", "project", "prompt", "rater", "status", "shown_order", "is_repeat",
             "leased_at", "expires_at", "finished_at", "skip_reason"],
            [
                (assignment_ids[index], project.pk, int(prompt_ids[row]), int(user_ids[rater]),
                 "submitted", response_ids[row].tolist(), False, now, lease_end, now, "")
                for index, (row, rater) in enumerate(pairs)
            ]
            + [
                (assignment_ids[n_rankings + index], project.pk, int(prompt_ids[row]),
                 int(user_ids[skip_rater[row]]), "skipped", response_ids[row].tolist(), False,
                 now, lease_end, now, "I can't judge this")
                for index, row in enumerate(skipped_rows)
            ],
        )  # fmt: skip
        db.copy_rows(
            Ranking,
            ["id", "assignment", "project", "prompt", "rater", "groups", "ratings", "rationale",
             "seconds", "is_repeat", "created_at", "revisions"],
            (
                (ranking_ids[index], assignment_ids[index], project.pk, int(prompt_ids[row]),
                 int(user_ids[rater]), [[int(response_ids[row, slot])] for slot in orders[index]],
                 {}, "", 30.0, False, now, [])
                for index, (row, rater) in enumerate(pairs)
            ),
        )  # fmt: skip
        run = AgreementRun.objects.create(
            project=project, status=JobStatus.DONE, finished_at=now, trigger="bench"
        )
        complete_rows = np.flatnonzero(complete)
        agreement = rng.choice(AGREEMENT_VALUES, len(complete_rows), p=[0.1, 0.3, 0.35, 0.25])
        db.copy_rows(
            PromptAgreement,
            ["run", "prompt", "n_rankings", "agreement", "consensus", "scores", "method"],
            (
                (run.pk, int(prompt_ids[row]), 2, float(value),
                 [[int(pk)] for pk in response_ids[row]], {}, "bradley_terry")
                for row, value in zip(complete_rows, agreement, strict=True)
            ),
        )  # fmt: skip
        Flag.objects.bulk_create(
            Flag(project=project, rater=users[index], code=FlagCode.TOO_FAST)
            for index in range(FLAGGED_RATERS)
        )
    with connection.cursor() as cursor:
        # What the search jobs would have done, in bulk: the loaded prompts' text (written
        # by the prompt table's trigger) marked indexed, then the index built once.
        cursor.execute(
            "UPDATE labeling_promptsearchtext SET indexed = true WHERE project_id = %s",
            [project.pk],
        )
        cursor.execute("VACUUM labeling_promptsearchtext")
        cursor.execute(
            "CREATE INDEX prompt_search_trigram ON labeling_promptsearchtext "
            "USING gin (text gin_trgm_ops) WHERE indexed"
        )
        for table in ("labeling_prompt", "labeling_response", "labeling_assignment",
                      "rankings_ranking", "rankings_promptagreement",
                      "labeling_promptsearchtext"):  # fmt: skip
            cursor.execute(f"VACUUM ANALYZE {table}")
    print(
        f"built {n_prompts:,} prompts x {K} responses, {n_rankings:,} rankings, "
        f"{len(skipped_rows):,} skips, {len(complete_rows):,} agreement rows in "
        f"{time.perf_counter() - started:.1f} s"
    )


def add_pending_prompts(count: int, seed: int = 8) -> None:
    """`count` new prompts written as an import leaves them before its search job ran:
    their text in the search table (by the prompt table's trigger), not indexed."""
    from django.db import transaction
    from django.utils import timezone

    from core import db
    from labeling.models import Project, Prompt

    project = Project.objects.get(name=PROJECT_NAME)
    Prompt.objects.filter(project=project, external_id__startswith="pending-").delete()
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, len(TOPICS), count)
    rare_word = rng.random(count) < 0.001
    now = timezone.now()
    with transaction.atomic():
        db.copy_rows(
            Prompt,
            ["id", "project", "external_id", "messages", "metadata", "is_gold", "is_complete",
             "extra_raters", "extra_reason", "created_at", "n_responses"],
            (
                (
                    prompt_id, project.pk, f"pending-{row}",
                    [{"role": "user", "content": (
                        f"Fresh question {row} about {TOPICS[topic[row]]}?"
                        + (f" Sent from {RARE_WORD}." if rare_word[row] else "")
                    )}],
                    {}, False, False, 0, "", now, 0,
                )
                for row, prompt_id in enumerate(db.reserve_ids(Prompt, count))
            ),
        )  # fmt: skip


def queries(project_id: int) -> list[tuple[str, dict[str, str]]]:
    """(name, parameters) of every timed request; cursors point into the middle."""
    from labeling.models import Prompt
    from rankings.prompts.query import cursor_encode

    ids = Prompt.objects.filter(project_id=project_id).order_by("pk").values_list("pk", flat=True)
    middle = ids[ids.count() // 2]
    return [
        ("list, newest first", {}),
        ("list, page in the middle", {"cursor": cursor_encode(ordering="newest", key=(middle,))}),
        ("list, oldest first", {"ordering": "oldest"}),
        ("list, 200 a page", {"page_size": "200"}),
        *[
            (f"state={state}", {"state": state})
            for state in (
                "untouched",
                "in_progress",
                "complete",
                "gold",
                "reopened",
                "skipped",
                "archived",
            )
        ],
        ("q= common words (5 %)", {"q": "sourdough bread"}),
        ("q= rare word (0.1 %)", {"q": RARE_WORD}),
        ("q= no match", {"q": "xylophone"}),
        ("model= common (50 %)", {"model": MODELS[0]}),
        ("model= rare (0.5 %)", {"model": RARE_MODEL}),
        ("agreement 0.9 to 1 (7.5 %)", {"agreement_min": "0.9"}),
        ("agreement 0.3 to 0.4 (9 %)", {"agreement_min": "0.3", "agreement_max": "0.4"}),
        ("flagged=true", {"flagged": "true"}),
        ("flagged=false", {"flagged": "false"}),
        ("ordering=agreement", {"ordering": "agreement"}),
        (
            "ordering=-agreement, inside a tie",
            {
                "ordering": "-agreement",
                "cursor": cursor_encode(ordering="-agreement", key=(2 / 3, middle)),
            },
        ),
        ("ordering=most_skipped", {"ordering": "most_skipped"}),
        (
            "complete & model & agreement ≤ 0.5",
            {"state": "complete", "model": MODELS[1], "agreement_max": "0.5"},
        ),
        (
            "q & state=complete & agreement order",
            {"q": "python", "state": "complete", "ordering": "agreement"},
        ),
    ]


class DatabaseClock:
    """Milliseconds spent in the database driver (queries sent, waited for, read)."""

    def __init__(self) -> None:
        self.ms = 0.0

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.ms += (time.perf_counter() - started) * 1000


def cpu_ms(pid: int) -> float:
    """CPU time a process has had, in ms (the scheduler's nanosecond count)."""
    with open(f"/proc/{pid}/schedstat") as handle:
        return int(handle.read().split()[0]) / 1e6


def measure(
    repeat: int, search_only: bool = False
) -> list[tuple[str, float, float, float, float, float, int]]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from labeling.models import Project

    project = Project.objects.get(name=PROJECT_NAME)
    client = Client()
    client.force_login(User.objects.get(username="bench-browse-lead"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    results = []
    for name, params in queries(project.pk):
        if search_only and "q" not in params:
            continue
        url = f"/api/projects/{project.pk}/prompts/?{urlencode(params)}"
        response = client.get(url)
        assert response.status_code == 200, (name, response.content[:300])
        rows = len(response.json()["results"])
        timings, database, cpu = [], [], []
        for _ in range(repeat):
            clock = DatabaseClock()
            with connection.execute_wrapper(clock):
                cpu_before = cpu_ms(os.getpid()) + cpu_ms(backend)
                started = time.perf_counter()
                client.get(url)
                timings.append((time.perf_counter() - started) * 1000)
                cpu.append(cpu_ms(os.getpid()) + cpu_ms(backend) - cpu_before)
            database.append(clock.ms)
        results.append(
            (
                name,
                percentile(timings, 0.5),
                percentile(timings, 0.95),
                percentile(database, 0.95),
                percentile(cpu, 0.5),
                percentile(cpu, 0.95),
                rows,
            )
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument(
        "--pending",
        type=int,
        default=10_000,
        help="then search again with this many new prompts not indexed yet (0: skip)",
    )
    args = parser.parse_args()
    if not args.reuse:
        recreate_database(DATABASE_URL)
    django_setup(DATABASE_URL)  # also with --reuse: the code may have new migrations
    if not args.reuse:
        build(args.prompts)
    load_before = os.getloadavg()[0]
    results = measure(args.repeat)
    print(f"\nmachine: {machine()}")
    print(f"load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print("wall: request time; db: of it, in the database driver; cpu: CPU time the")
    print("request took in this process and its PostgreSQL backend (what a quiet machine")
    print("would take: it does not grow with the load average)")
    report(results)
    if args.pending:
        # Right after an import, before its search job ran: those prompts are read the
        # slow way beside the index.
        add_pending_prompts(args.pending)
        load_before = os.getloadavg()[0]
        results = measure(args.repeat, search_only=True)
        print(f"\nsearch with {args.pending:,} new prompts not indexed yet (before their job)")
        print(f"load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
        report(results)


def report(results: list[tuple[str, float, float, float, float, float, int]]) -> None:
    header = ("query", "wall p50", "wall p95", "db p95", "cpu p50", "cpu p95", "rows")
    print(f"{header[0]:<40}" + "".join(f"{h:>9}" for h in header[1:]))
    for name, p50, p95, db_p95, cpu_p50, cpu_p95, rows in results:
        print(f"{name:<40}{p50:9.1f}{p95:9.1f}{db_p95:9.1f}{cpu_p50:9.1f}{cpu_p95:9.1f}{rows:9d}")
    worst_wall = max(row[2] for row in results)
    worst_cpu = max(row[5] for row in results)
    print(f"worst p95: wall {worst_wall:.1f} ms, cpu {worst_cpu:.1f} ms (target ≤ 50 ms)")


if __name__ == "__main__":
    main()
