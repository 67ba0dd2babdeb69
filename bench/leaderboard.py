"""Model leaderboard speed: ``GET /api/projects/{id}/leaderboard/`` on 100k rankings.

Builds a synthetic project (K=4 responses per prompt from 8 models of known strength, three
raters per prompt, a few excluded raters) with ``bulk_create``, then times the API answer in
this process (server time: the request through Django's test client, no network) for every
option, and its parts: the bulk read and the maths.

    .venv/bin/python bench/leaderboard.py [--rankings 100000] [--sqlite] [--reuse]

PostgreSQL by default (database ``ranklab_bench_leaderboard``); ``--sqlite`` uses
``/tmp/ranklab_bench_leaderboard.sqlite3``, the embedded default's portable path.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, machine, recreate_database

POSTGRESQL_URL = os.environ.get(
    "BENCH_LEADERBOARD_DATABASE_URL",
    "postgres://postgres@127.0.0.1:5432/ranklab_bench_leaderboard",
)
SQLITE_PATH = "/tmp/ranklab_bench_leaderboard.sqlite3"
K = 4
OVERLAP = 3
RATERS = 200
EXCLUDED = 10
STRENGTHS = np.linspace(-1.2, 1.2, 8)
PROJECT_NAME = "leaderboard bench"
REPEATS = 5


def build(total_rankings: int, seed: int = 30) -> None:
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.utils import timezone

    from labeling import services
    from labeling.models import Assignment, Membership, Prompt, Response
    from rankings.models import Ranking

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    lead = User.objects.create_user("bench-board-lead")
    project = services.project_create(creator=lead, name=PROJECT_NAME, overlap=OVERLAP)
    users = User.objects.bulk_create(
        [User(username=f"bench-board-rater-{index}") for index in range(RATERS)]
    )
    Membership.objects.bulk_create(
        [
            Membership(project=project, user=user, excluded=index < EXCLUDED)
            for index, user in enumerate(users)
        ]
    )
    n_prompts = total_rankings // OVERLAP
    models = np.argsort(rng.random((n_prompts, len(STRENGTHS))), axis=1)[:, :K]
    lengths = (300 * np.exp(rng.normal(0, 0.5, (n_prompts, K)))).astype(int) + 20
    quality = STRENGTHS[models] + rng.normal(0, 0.5, (n_prompts, K)) + 0.002 * lengths
    now = timezone.now()
    filler = "lorem ipsum dolor sit amet " * 200
    batch = 20_000
    with transaction.atomic():
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(
                    project=project,
                    external_id=f"p{row}",
                    messages=[{"role": "user", "content": f"Question {row}"}],
                    is_complete=True,
                    created_at=now,
                )
                for row in range(n_prompts)
            ],
            batch_size=batch,
        )
        responses = Response.objects.bulk_create(
            [
                Response(
                    prompt=prompts[row],
                    position=slot,
                    text=filler[: lengths[row, slot]],
                    model_name=f"model-{models[row, slot]}",
                )
                for row in range(n_prompts)
                for slot in range(K)
            ],
            batch_size=batch,
        )
        response_ids = np.array([response.pk for response in responses]).reshape(n_prompts, K)
        first = rng.integers(0, RATERS, n_prompts)
        raters = (first[:, None] + np.array([0, 67, 134])) % RATERS
        assignments, rankings = [], []
        for row, column in itertools.product(range(n_prompts), range(OVERLAP)):
            perceived = quality[row] + rng.gumbel(0, 0.7, K)
            order = response_ids[row, np.argsort(-perceived)].tolist()
            rater = users[int(raters[row, column])]
            assignment = Assignment(
                project=project,
                prompt=prompts[row],
                rater=rater,
                status="submitted",
                shown_order=rng.permutation(response_ids[row]).tolist(),
                leased_at=now,
                expires_at=now + timedelta(minutes=10),
                finished_at=now,
            )
            assignments.append(assignment)
            rankings.append(
                Ranking(
                    assignment=assignment,
                    project=project,
                    prompt=prompts[row],
                    rater=rater,
                    groups=[[response_id] for response_id in order],
                    seconds=30.0,
                    created_at=now,
                )
            )
        Assignment.objects.bulk_create(assignments, batch_size=batch)
        for ranking in rankings:
            ranking.assignment_id = ranking.assignment.pk
        Ranking.objects.bulk_create(rankings, batch_size=batch)
    print(
        f"built {len(rankings):,} rankings over {n_prompts:,} prompts x {K} responses from "
        f"{len(STRENGTHS)} models in {time.perf_counter() - started:.1f} s"
    )


def measure() -> None:
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.test import Client

    from labeling.models import Project
    from rankings.leaderboard import selectors
    from rankings.stats.leaderboard import model_leaderboard

    project = Project.objects.get(name=PROJECT_NAME)
    client = Client()
    client.force_login(User.objects.get(username="bench-board-lead"))
    url = f"/api/projects/{project.pk}/leaderboard/"
    print(
        f"{'source':<10} {'excluded':<9} {'length':<7} {'median':>8} {'worst':>8} "
        f"{'cpu':>8} {'cached':>8}"
    )
    for source, include_excluded, length_control in itertools.product(
        ("rankings", "consensus"), (False, True), (False, True)
    ):
        query = (
            f"?source={source}&include_excluded={str(include_excluded).lower()}"
            f"&length_control={str(length_control).lower()}"
        )
        times, cpu = [], []
        for _ in range(REPEATS):
            cache.clear()  # cold: computed, not read from the cache
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(url + query)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            assert response.status_code == 200, response.content
        started = time.perf_counter()
        assert client.get(url + query).status_code == 200
        warm = time.perf_counter() - started
        body = response.json()
        print(
            f"{source:<10} {include_excluded!s:<9} {length_control!s:<7} "
            f"{statistics.median(times) * 1000:>6.0f} ms {max(times) * 1000:>5.0f} ms "
            f"{statistics.median(cpu) * 1000:>5.0f} ms {warm * 1000:>5.1f} ms  "
            f"({body['n_rankings']:,} rankings; order "
            f"{' > '.join(row['name'][-1] for row in body['models'])})"
        )
    for source in selectors.Source:
        loaded, read = timed(
            selectors.leaderboard_input, project=project, source=source, include_excluded=False
        )
        arrays = (loaded.table, loaded.model_index, loaded.model_names, loaded.response_length)
        _, plain = timed(model_leaderboard, *arrays)
        _, controlled = timed(model_leaderboard, *arrays, length_control=True)
        print(
            f"parts, {source.value} (wall / cpu): read {read}, maths {plain}, "
            f"length-controlled maths {controlled}"
        )


def timed(work: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str]:
    started, started_cpu = time.perf_counter(), time.process_time()
    result = work(*args, **kwargs)
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    return result, f"{wall * 1000:.0f} / {cpu * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rankings", type=int, default=100_000)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep the data already built")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.sqlite:
        url = f"sqlite:///{SQLITE_PATH}"
        if not args.reuse and os.path.exists(SQLITE_PATH):
            os.remove(SQLITE_PATH)
    else:
        url = POSTGRESQL_URL
        if not args.reuse:
            recreate_database(url)
    os.environ["CELERY_BROKER_URL"] = ""
    django_setup(url, migrate=not args.reuse)
    if not args.reuse:
        build(args.rankings)
    measure()


if __name__ == "__main__":
    main()
