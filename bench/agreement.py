"""Agreement run speed: 1M rankings (K=4) in PostgreSQL, one run end to end and the maths alone.

Builds a synthetic crowd's work straight into the database with COPY (prompts, responses,
assignments with their shown order, rankings with seconds, gold prompts ranked by every rater,
repeats), then times in a fresh process, so peak RSS is the run's own:

- the run end to end, as the worker does it: ``agreement_run_compute`` (claim, selector,
  maths, storing rater scores and prompt rows, quality findings), as the project's first
  run and again as its second (a run adds a row per prompt, so the tables grow);
- its parts: the selector alone, and the maths alone on arrays already in memory.

    .venv/bin/python bench/agreement.py [--rankings 1000000] [--reuse]

``--reuse`` skips the build when the bench database already holds the data.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, machine, recreate_database

DATABASE_URL = os.environ.get(
    "BENCH_AGREEMENT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranklab_bench_agreement"
)
K = 4
RATERS = 200
GOLD_PROMPTS = 50
REPEAT_SHARE = 0.02
OVERLAP = 3
PROJECT_NAME = "agreement bench"


# Building the data ----------------------------------------------------------------------------


def plan(total_rankings: int) -> tuple[int, int]:
    """(normal prompts, repeats) so that normal + gold + repeat rankings make the total."""
    repeats = int(total_rankings * REPEAT_SHARE)
    normal_rankings = total_rankings - repeats - GOLD_PROMPTS * RATERS
    return normal_rankings // OVERLAP, repeats + normal_rankings % OVERLAP


def distinct_raters(rng: np.random.Generator, prompts: int) -> np.ndarray:
    """(prompts, 3) rater indices, distinct within each row."""
    first = rng.integers(0, RATERS, size=prompts)
    step_one = rng.integers(1, RATERS, size=prompts)
    step_two = rng.integers(1, RATERS - 1, size=prompts)
    step_two = np.where(step_two >= step_one, step_two + 1, step_two)
    return np.stack([first, (first + step_one) % RATERS, (first + step_two) % RATERS], axis=1)


def simulate_rankings(
    rng: np.random.Generator,
    prompt_row: np.ndarray,
    rater: np.ndarray,
    quality: np.ndarray,
    lengths: np.ndarray,
    rater_kind: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shown order, best-to-worst slot order, tie-with-previous flags and seconds per ranking.

    Careful raters rank true quality with noise; random clickers rank noise; first clickers
    rank in shown order; position-biased raters favour what they saw first; fast raters are
    careful but take a fifth of the time.
    """
    n = len(prompt_row)
    shown = np.argsort(rng.random((n, K)), axis=1)  # shown[r, i] = slot shown at position i
    shown_position = np.argsort(shown, axis=1)  # position of each slot
    kind = rater_kind[rater]
    noise = rng.normal(0.0, 1.0, size=(n, K))
    score = quality[prompt_row] + 0.6 * noise
    score = np.where((kind == 1)[:, None], noise, score)
    score = np.where((kind == 2)[:, None], -shown_position.astype(float), score)
    score = np.where((kind == 3)[:, None], score + 0.8 * (K - 1 - shown_position) / (K - 1), score)
    order = np.argsort(-score, axis=1)
    ties = (rng.random((n, K - 1)) < 0.08) & (kind != 2)[:, None]
    total_length = lengths[prompt_row].sum(axis=1)
    seconds = np.exp(rng.normal(np.log(8 + total_length / 40), 0.35))
    seconds = np.where(kind == 4, seconds * 0.2, seconds)
    return shown, order, ties, np.round(seconds, 1)


def build(total_rankings: int, seed: int = 20) -> None:
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.utils import timezone

    from core import db
    from labeling import services
    from labeling.models import Assignment, Membership, Prompt, Response
    from rankings.models import Ranking

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    lead = User.objects.create_user("bench-agreement-lead")
    project = services.project_create(creator=lead, name=PROJECT_NAME, overlap=OVERLAP)
    users = User.objects.bulk_create(
        [User(username=f"bench-agreement-rater-{index}") for index in range(RATERS)]
    )
    Membership.objects.bulk_create([Membership(project=project, user=user) for user in users])
    user_ids = np.array([user.pk for user in users])
    # 0 careful, 1 random clicker, 2 first clicker, 3 position biased, 4 too fast
    rater_kind = np.zeros(RATERS, dtype=np.int64)
    rater_kind[:10], rater_kind[10:18], rater_kind[18:24], rater_kind[24:30] = 1, 2, 3, 4

    normal_prompts, repeats = plan(total_rankings)
    n_prompts = normal_prompts + GOLD_PROMPTS
    lengths = rng.integers(40, 400, size=(n_prompts, K))
    quality = rng.normal(0.0, 1.0, size=(n_prompts, K)) + 0.003 * (lengths - 220)
    prompt_ids = np.array(db.reserve_ids(Prompt, n_prompts))
    response_ids = np.array(db.reserve_ids(Response, n_prompts * K)).reshape(n_prompts, K)
    gold_order = np.argsort(-quality[normal_prompts:], axis=1)
    now = timezone.now()
    filler = "lorem ipsum dolor sit amet consectetur adipiscing elit " * 8

    with transaction.atomic():
        db.copy_rows(
            Prompt,
            ["id", "project", "external_id", "messages", "metadata", "gold_ranking", "is_gold",
             "is_complete", "extra_raters", "extra_reason", "created_at"],
            (
                (
                    int(prompt_ids[row]), project.pk, f"p{row}",
                    [{"role": "user", "content": f"Question {row}"}], {},
                    [[int(response_ids[row, slot])] for slot in gold_order[row - normal_prompts]]
                    if row >= normal_prompts else None,
                    row >= normal_prompts, True, 0, "", now,
                )
                for row in range(n_prompts)
            ),
        )  # fmt: skip
        db.copy_rows(
            Response,
            ["id", "prompt", "position", "external_id", "text", "model_name", "metadata"],
            (
                (int(response_ids[row, slot]), int(prompt_ids[row]), slot, "",
                 filler[: lengths[row, slot]], f"model-{slot}", {})
                for row in range(n_prompts)
                for slot in range(K)
            ),
        )  # fmt: skip

        # Who ranks what: three raters per normal prompt, every rater on every gold prompt,
        # then repeats of random normal rankings by the same rater.
        normal_raters = distinct_raters(rng, normal_prompts)
        prompt_row = np.concatenate(
            [np.repeat(np.arange(normal_prompts), OVERLAP),
             np.repeat(np.arange(normal_prompts, n_prompts), RATERS)]
        )  # fmt: skip
        rater = np.concatenate(
            [normal_raters.reshape(-1), np.tile(np.arange(RATERS), GOLD_PROMPTS)]
        )
        repeated = rng.choice(normal_prompts * OVERLAP, size=repeats, replace=False)
        prompt_row = np.concatenate([prompt_row, prompt_row[repeated]])
        rater = np.concatenate([rater, rater[repeated]])
        is_repeat = np.zeros(len(prompt_row), dtype=bool)
        is_repeat[-repeats:] = True
        shown, order, ties, seconds = simulate_rankings(
            rng, prompt_row, rater, quality, lengths, rater_kind
        )
        n = len(prompt_row)
        assignment_ids = db.reserve_ids(Assignment, n)
        ranking_ids = db.reserve_ids(Ranking, n)
        responses_of = response_ids[prompt_row]
        shown_ids = np.take_along_axis(responses_of, shown, axis=1).tolist()
        ordered_ids = np.take_along_axis(responses_of, order, axis=1).tolist()
        tie_flags = ties.tolist()
        lease_end = now + timedelta(minutes=10)
        finished = now + timedelta(minutes=1)
        db.copy_rows(
            Assignment,
            ["id", "project", "prompt", "rater", "status", "shown_order", "is_repeat",
             "leased_at", "expires_at", "finished_at", "skip_reason"],
            (
                (assignment_ids[row], project.pk, int(prompt_ids[prompt_row[row]]),
                 int(user_ids[rater[row]]), "submitted", shown_ids[row], bool(is_repeat[row]),
                 now, lease_end, finished, "")
                for row in range(n)
            ),
        )  # fmt: skip
        db.copy_rows(
            Ranking,
            ["id", "assignment", "project", "prompt", "rater", "groups", "ratings", "rationale",
             "seconds", "is_repeat", "created_at", "revisions"],
            (
                (ranking_ids[row], assignment_ids[row], project.pk,
                 int(prompt_ids[prompt_row[row]]), int(user_ids[rater[row]]),
                 tie_groups(ordered_ids[row], tie_flags[row]), {}, "", float(seconds[row]),
                 bool(is_repeat[row]), finished, [])
                for row in range(n)
            ),
        )  # fmt: skip
    with connection.cursor() as cursor:
        for table in ("labeling_prompt", "labeling_response", "labeling_assignment",
                      "rankings_ranking"):  # fmt: skip
            cursor.execute(f"VACUUM ANALYZE {table}")
    print(
        f"built {n:,} rankings ({repeats:,} repeats, {GOLD_PROMPTS} gold prompts x {RATERS} "
        f"raters) over {n_prompts:,} prompts x {K} responses in "
        f"{time.perf_counter() - started:.1f} s"
    )


def tie_groups(ordered: list[int], tied_with_previous: list[bool]) -> list[list[int]]:
    groups = [[ordered[0]]]
    for response_id, tied in zip(ordered[1:], tied_with_previous, strict=True):
        if tied:
            groups[-1].append(response_id)
        else:
            groups.append([response_id])
    return groups


# Measuring ------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` survives ``exec``, so a measuring process
    started by the one that built the data would report the builder's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(part: str) -> None:
    """One measurement in this (fresh) process, so its peak RSS is the measured work's own."""
    from django.db import connection

    from labeling.models import Project
    from rankings.models import AgreementRun
    from rankings.runs import maths, services
    from rankings.runs.data import agreement_data

    project = Project.objects.get(name=PROJECT_NAME)
    baseline = peak_rss_mb()
    if part in ("first run", "second run"):
        if part == "first run":
            # Every run adds a row per prompt: start from none, as a project's first run.
            with connection.cursor() as cursor:
                cursor.execute(
                    "TRUNCATE rankings_promptagreement, rankings_raterscore, rankings_flag, "
                    "rankings_agreementrun"
                )
        run = AgreementRun.objects.create(project=project, trigger="bench")
        started = time.perf_counter()
        summary = services.agreement_run_compute(run_id=run.pk)
        elapsed = time.perf_counter() - started
        assert summary["status"] == "done", summary
        run.refresh_from_db()
        metrics = run.metrics
        print(
            f"{part} end to end: {elapsed:.2f} s, peak RSS {peak_rss_mb():.0f} MB "
            f"(Django loaded: {baseline:.0f} MB); {run.n_rankings:,} rankings counted, "
            f"{summary['n_prompt_rows']:,} prompt rows; pairwise agreement "
            f"{metrics['pairwise_agreement']:.3f} (95% CI {metrics['pairwise_agreement_ci'][0]:.3f}"
            f"-{metrics['pairwise_agreement_ci'][1]:.3f}), kappa {metrics['kappa']:.3f}, "
            f"alpha {metrics['alpha_ordinal']:.3f}, W {metrics['kendall_w']:.3f}"
        )
        return
    started = time.perf_counter()
    data = agreement_data(project=project)
    loaded = time.perf_counter() - started
    print(
        f"selector: {loaded:.2f} s for {data.table.n_rankings:,} rankings, "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )
    started = time.perf_counter()
    maths.agreement_maths(data)
    print(f"maths alone: {time.perf_counter() - started:.2f} s, peak RSS {peak_rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rankings", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the data already built")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        django_setup(DATABASE_URL, migrate=False)
        measure(args.measure)
        return
    print(f"machine: {machine()}")
    if not args.reuse:
        recreate_database(DATABASE_URL)
        django_setup(DATABASE_URL)
        build(args.rankings)
    for part in ("parts", "first run", "second run"):
        subprocess.run([sys.executable, __file__, "--measure", part], check=True)


if __name__ == "__main__":
    main()
