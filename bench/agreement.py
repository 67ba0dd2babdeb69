"""Agreement run speed past one machine's memory: 10M rankings (K=4) in PostgreSQL, one run
computed by one process and fanned out across Celery workers, beside the old in-memory path.

Builds a synthetic crowd's work in the database with INSERT ... SELECT over generate_series
(no Python rows): prompts with four responses of varied length, three raters per prompt
(careful, random clickers, first clickers, position biased, too fast), gold prompts ranked
by every rater, repeats; shown orders, ties and seconds. Two projects: the large one and a
small one (``--baseline-rankings``) the old path can hold. Then, each in a fresh process so
its peak RSS is its own:

- the run end to end as a worker does it (``agreement_run_compute``: parts read and
  computed one after another, the reliability fit over all of them, prompt rows, rater
  rows, findings), on the large project;
- the same run fanned out: ``--workers`` Celery worker processes (prefork, one child each)
  on a Redis database and queue of the bench's own; the run's worker and the others share
  the parts; time, and the peak RSS of every worker child;
- the old path (every ranking in memory: ``agreement_data`` + ``agreement_maths``) and the
  run, on the small project.

    .venv/bin/python bench/agreement.py [--rankings 10000000] [--workers 2] [--reuse]

``--reuse`` skips the build when the bench database already holds the data. ``--fit``
measures the reliability fit on each project's labels against its maximum: the passes the
run's fit takes and how far from the maximum it stops, and the first pass within 1e-2,
1e-3 and 1e-4 of it, accelerated and by plain EM.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import ROOT, calibration, django_setup, machine, recreate_database

DATABASE_URL = os.environ.get(
    "BENCH_AGREEMENT_DATABASE_URL",
    os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranklab_bench_agreement"
    ),
)
BROKER_URL = os.environ.get(
    "BENCH_AGREEMENT_BROKER_URL", os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
)
K = 4
RATERS = 200
GOLD_PROMPTS = 50
REPEAT_SHARE = 0.02
OVERLAP = 3
PROJECT_NAME = "agreement bench"
BASELINE_NAME = "agreement bench (baseline size)"


# Building the data ----------------------------------------------------------------------------


def plan(total_rankings: int) -> tuple[int, int]:
    """(normal prompts, repeats) so that normal + gold + repeat rankings make the total."""
    repeats = int(total_rankings * REPEAT_SHARE)
    normal_rankings = total_rankings - repeats - GOLD_PROMPTS * RATERS
    return normal_rankings // OVERLAP, repeats + normal_rankings % OVERLAP


# A pseudo-random number in [0, 1) from an integer and a salt, the same in every run.
_RANDOM = "((hashint8(({x})::bigint * 1000003 + {salt}) & 2147483647)::float8 / 2147483648.0)"
# The 24 orders of four slots, flattened: order k is _ORDERS[4k + 1 .. 4k + 4].
_ORDERS = (
    "ARRAY["
    + ",".join(
        str(slot) for order in __import__("itertools").permutations(range(K)) for slot in order
    )
    + "]::int[]"
)


_STRIDE = 1_000_003  # a prime


def _random(x: str, salt: int) -> str:
    return _RANDOM.format(x=x, salt=salt)


LOADED_TABLES = ("labeling_prompt", "labeling_response", "labeling_assignment", "rankings_ranking")


def build_projects(projects: list[tuple[str, int, str]]) -> None:
    """Every (name, rankings, lead) project's rows, loaded the fast way: the tables' secondary
    indexes and unique constraints dropped during the load and built once after it, foreign
    key triggers off (the generated ids are consistent by construction), then one
    ``VACUUM ANALYZE`` per table (hint bits and the visibility map set here, not by the
    first measured read)."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
        cursor.execute("SET maintenance_work_mem TO '256MB'")
        recreate = _drop_secondary_indexes(cursor, LOADED_TABLES)
        cursor.execute("SET session_replication_role TO replica")  # no FK triggers
        try:
            for name, total_rankings, lead_name in projects:
                build_project(name, total_rankings, lead_name)
        finally:
            cursor.execute("SET session_replication_role TO DEFAULT")
        indexed = time.perf_counter()
        for statement in recreate:
            cursor.execute(statement)
        print(f"  indexes and constraints rebuilt in {time.perf_counter() - indexed:.1f} s")
        analysed = time.perf_counter()
        for table in LOADED_TABLES:
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        print(
            f"  VACUUM ANALYZE in {time.perf_counter() - analysed:.1f} s; whole build "
            f"{time.perf_counter() - started:.1f} s; load {load_average()}",
            flush=True,
        )


def _drop_secondary_indexes(cursor, tables: tuple[str, ...]) -> list[str]:  # type: ignore[no-untyped-def]
    """Drop the tables' unique constraints and non-primary-key indexes; the statements that
    build them again (in the order that restores constraints before plain indexes)."""
    cursor.execute(
        """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.conindid
        FROM pg_constraint c
        WHERE c.conrelid::regclass::text = ANY(%s) AND c.contype IN ('u', 'x')
        """,
        [list(tables)],
    )
    constraints = cursor.fetchall()
    backing = {row[3] for row in constraints}
    cursor.execute(
        """
        SELECT i.indexrelid, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid::regclass::text = ANY(%s) AND NOT i.indisprimary
        """,
        [list(tables)],
    )
    indexes = [row for row in cursor.fetchall() if row[0] not in backing]
    recreate = []
    for table, name, definition, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        recreate.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for _, name, definition in indexes:
        cursor.execute(f"DROP INDEX {name}")
        recreate.append(definition)
    return recreate


def vacuum_loaded_tables() -> None:
    """``VACUUM ANALYZE`` the loaded tables: after a migration rewrote one, its visibility
    map is empty and index-only scans would read the table; quick when there is nothing to
    do."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in LOADED_TABLES:
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s", flush=True)


def build_project(name: str, total_rankings: int, lead_name: str) -> None:
    """One project's prompts, responses, assignments and rankings, generated by the server.

    Ids continue each table's sequence: a block is taken from it first.
    """
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from labeling import services
    from labeling.models import Membership

    started = time.perf_counter()
    lead = User.objects.create_user(lead_name)
    project = services.project_create(creator=lead, name=name, overlap=OVERLAP)
    users = User.objects.bulk_create(
        [User(username=f"{lead_name}-rater-{index}") for index in range(RATERS)]
    )
    Membership.objects.bulk_create([Membership(project=project, user=user) for user in users])
    first_user = min(user.pk for user in users)
    assert max(user.pk for user in users) == first_user + RATERS - 1
    normal, repeats = plan(total_rankings)
    n_prompts = normal + GOLD_PROMPTS
    n = normal * OVERLAP + GOLD_PROMPTS * RATERS + repeats
    with transaction.atomic(), connection.cursor() as cursor:
        bases = {}
        for table, count in (
            ("labeling_prompt", n_prompts),
            ("labeling_response", n_prompts * K),
            ("labeling_assignment", n),
            ("rankings_ranking", n),
        ):
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [table])
            base = cursor.fetchone()[0]
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, base + count]
            )
            bases[table] = base - 1  # row i (from 1) gets id base + i
        values = {
            "project": project.pk,
            "prompt0": bases["labeling_prompt"],
            "response0": bases["labeling_response"],
            "assignment0": bases["labeling_assignment"],
            "ranking0": bases["rankings_ranking"],
            "user0": first_user,
            "normal": normal,
            "prompts": n_prompts,
            "n": n,
        }
        for statement in _statements(**values):
            cursor.execute(statement)
    print(
        f"built {name!r}: {n:,} rankings ({repeats:,} repeats, {GOLD_PROMPTS} gold prompts x "
        f"{RATERS} raters) over {n_prompts:,} prompts x {K} responses in "
        f"{time.perf_counter() - started:.1f} s (rows only)",
        flush=True,
    )


def _statements(
    *,
    project: int,
    prompt0: int,
    response0: int,
    assignment0: int,
    ranking0: int,
    user0: int,
    normal: int,
    prompts: int,
    n: int,
) -> list[str]:
    """The SQL that generates a project's rows (ids: the block above each ``*0``)."""
    filler = "lorem ipsum dolor sit amet consectetur adipiscing elit " * 8
    gold_rankings = (prompts - normal) * RATERS
    repeats = n - normal * OVERLAP - gold_rankings
    # Distinct originals (one repeat per prompt and rater): a stride prime to their count.
    assert (normal * OVERLAP) % _STRIDE and repeats < normal * OVERLAP

    def order_of(key: str) -> str:
        """The order (four slots) picked by a hash of ``key``."""
        start = f"(hashint8({key}) & 2147483647) % 24 * 4"
        return f"_o[{start} + 1:{start} + 4]"

    def response(slot: str) -> str:
        return f"{response0} + (p - 1) * {K} + {slot} + 1"

    def groups(ordered: str, tie: bool) -> str:
        ids = [response(f"{ordered}[{position}]") for position in range(1, K + 1)]
        listed = [[ids[0]], [ids[1]], [ids[2], ids[3]]] if tie else [[one] for one in ids]
        return (
            "jsonb_build_array("
            + ", ".join("jsonb_build_array(" + ", ".join(group) + ")" for group in listed)
            + ")"
        )

    orders = f"(SELECT {_ORDERS} AS _o) orders"
    return [
        f"""
        INSERT INTO labeling_prompt (id, project_id, external_id, messages, metadata,
            gold_ranking, is_gold, is_complete, extra_raters, extra_reason, created_at,
            n_responses)
        SELECT {prompt0} + p, {project}, 'p' || p,
               jsonb_build_array(jsonb_build_object('role', 'user', 'content',
                                                    'Question ' || p)),
               '{{}}'::jsonb,
               CASE WHEN p > {normal} THEN {groups("truth", False)} END,
               p > {normal}, true, 0, '', now(), {K}
        FROM generate_series(1::bigint, {prompts}) p,
             LATERAL (SELECT {order_of("p * 7919")} AS truth FROM {orders}) truths
        """,
        f"""
        INSERT INTO labeling_response (id, prompt_id, external_id, position, text,
            model_name, metadata)
        SELECT {response0} + (p - 1) * {K} + s + 1, {prompt0} + p, '', s,
               left('{filler}', 40 + ((hashint8(p * 31 + s) & 2147483647) % 360)::int),
               'model-' || s, '{{}}'::jsonb
        FROM generate_series(1::bigint, {prompts}) p, generate_series(0::bigint, {K - 1}) s
        """,
        # Who ranks what: three distinct raters per normal prompt (a start and a step below
        # half the raters), every rater on every gold prompt, then repeats of random normal
        # rankings by the same rater.
        f"""
        CREATE TEMP TABLE bench_draw ON COMMIT DROP AS
        SELECT i, (i - 1) / {OVERLAP} + 1 AS p,
               (((hashint8(((i - 1) / {OVERLAP} + 1) * 17) & 2147483647) % {RATERS})
                + ((i - 1) % {OVERLAP})
                  * (1 + (hashint8(((i - 1) / {OVERLAP} + 1) * 29) & 2147483647)
                     % (({RATERS} - 1) / 2))) % {RATERS} AS r,
               false AS repeat
        FROM generate_series(1::bigint, {normal * OVERLAP}) i
        UNION ALL
        SELECT {normal * OVERLAP} + g, {normal} + (g - 1) / {RATERS} + 1, (g - 1) % {RATERS},
               false
        FROM generate_series(1::bigint, {gold_rankings}) g
        """,
        "ANALYZE bench_draw",
        f"""
        INSERT INTO bench_draw
        SELECT {normal * OVERLAP + gold_rankings} + j, original.p, original.r, true
        FROM generate_series(1::bigint, {repeats}) j
        JOIN bench_draw original
          ON original.i = 1 + (j * {_STRIDE}) % {normal * OVERLAP}
        """,
        # 0 careful, 1 random clicker, 2 first clicker, 3 position biased, 4 too fast.
        f"""
        CREATE TEMP TABLE bench_ranked ON COMMIT DROP AS
        SELECT i, p, r, repeat, shown, seconds, tie AND kind <> 2 AS tie,
               CASE kind
                 WHEN 1 THEN random_order
                 WHEN 2 THEN shown
                 WHEN 3 THEN CASE WHEN u < 0.5 THEN shown ELSE truth END
                 ELSE CASE WHEN u < 0.3
                   THEN truth[1:swap - 1] || truth[swap + 1] || truth[swap]
                        || truth[swap + 2:4]
                   ELSE truth END
               END AS ordered
        FROM (
          SELECT d.*,
                 CASE WHEN r < 10 THEN 1 WHEN r < 18 THEN 2 WHEN r < 24 THEN 3
                      WHEN r < 30 THEN 4 ELSE 0 END AS kind,
                 {order_of("i * 13")} AS shown,
                 {order_of("p * 7919")} AS truth,
                 {order_of("i * 37")} AS random_order,
                 {_random("i", 1)} AS u,
                 (1 + (hashint8(i * 41) & 2147483647) % 3)::int AS swap,
                 {_random("i", 2)} < 0.08 AS tie,
                 round((exp(ln(10.0) + 0.6 * ({_random("i", 3)} - 0.5))
                        * CASE WHEN r >= 24 AND r < 30 THEN 0.2 ELSE 1 END)::numeric, 1)
                   ::float8 AS seconds
          FROM bench_draw d, {orders}
        ) drawn
        """,
        f"""
        INSERT INTO labeling_assignment (id, project_id, prompt_id, rater_id, status,
            shown_order, is_repeat, leased_at, expires_at, finished_at, skip_reason)
        SELECT {assignment0} + i, {project}, {prompt0} + p, {user0} + r, 'submitted',
               jsonb_build_array({", ".join(response(f"shown[{k}]") for k in range(1, K + 1))}),
               repeat, now(), now() + interval '10 minutes', now(), ''
        FROM bench_ranked
        """,
        f"""
        INSERT INTO rankings_ranking (id, assignment_id, project_id, prompt_id, rater_id,
            groups, ratings, rationale, seconds, is_repeat, created_at, revisions)
        SELECT {ranking0} + i, {assignment0} + i, {project}, {prompt0} + p, {user0} + r,
               CASE WHEN tie THEN {groups("ordered", True)} ELSE {groups("ordered", False)} END,
               '{{}}'::jsonb, '', seconds, repeat, now(), '[]'::jsonb
        FROM bench_ranked
        """,
    ]


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


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def run_seconds(run) -> float:  # type: ignore[no-untyped-def]
    """From the run's claim to its finish, as its row records them."""
    assert run.started_at is not None and run.finished_at is not None
    return float((run.finished_at - run.started_at).total_seconds())


def vacuum_earlier_runs() -> None:
    """What autovacuum does between runs in production (this machine's PostgreSQL runs with
    it off): a run deletes the per-prompt rows of the runs before the newest two, millions
    of dead rows at 10M, which would otherwise slow every later run of the bench."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) rankings_promptagreement")
    print(f"  (earlier runs' rows vacuumed in {time.perf_counter() - started:.1f} s)", flush=True)


def measure(part: str) -> None:
    """One measurement in this (fresh) process, so its peak RSS is the measured work's own."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from labeling.models import Project
    from rankings.models import AgreementRun
    from rankings.runs import maths, services
    from rankings.runs.data import agreement_data

    name = BASELINE_NAME if part.startswith("baseline") else PROJECT_NAME
    project = Project.objects.get(name=name)
    baseline = peak_rss_mb()
    if part.endswith("profile"):
        profile_run(project)
        return
    if part.endswith("timeline"):
        timeline_run(project)
        return
    if part.endswith("fit"):
        fit_convergence(project)
        return
    if part in ("run", "baseline run"):
        vacuum_earlier_runs()
        run = AgreementRun.objects.create(project=project, trigger="bench")
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            summary = services.agreement_run_compute(run_id=run.pk)
        elapsed = time.perf_counter() - started
        assert summary["status"] == "done", summary
        run.refresh_from_db()
        report_run(f"{part}, 1 process", run, elapsed)
        print(
            f"  claimed to done {run_seconds(run):.1f} s; "
            f"then {summary['pruned_prompt_rows']:,} per-prompt rows of the run before "
            f"the newest two deleted (the rest of the {elapsed:.1f} s)",
            flush=True,
        )
        print(
            f"  peak RSS {peak_rss_mb():.0f} MB (Django loaded: {baseline:.0f} MB); "
            f"{len(queries)} queries on the run's connection (readers use their own); "
            f"load {load_average()}",
            flush=True,
        )
        return
    started = time.perf_counter()
    data = agreement_data(project=project)
    maths.agreement_maths(data)
    elapsed = time.perf_counter() - started
    print(
        f"{part}: old in-memory path (agreement_data + agreement_maths, no storing): "
        f"{elapsed:.2f} s for {data.table.n_rankings:,} rankings "
        f"({data.table.n_rankings / elapsed:,.0f} rankings/s), peak RSS {peak_rss_mb():.0f} MB; "
        f"load {load_average()}",
        flush=True,
    )


# Where a run's time goes: (phase, module, function or Class.method). `--profile` sums each
# function's cumulative CPU under cProfile, `--timeline` wraps it with a wall clock.
PHASES = (
    ("reading (a part's rows, assembled)", "rankings.runs.parts", "read_block"),
    ("pass one (sums, labels)", "rankings.runs.streamed", "first_pass"),
    ("reliability fit (EM, labels read)", "rankings.runs.parts", "RunParts._fit"),
    ("pass two (consensus, sums)", "rankings.runs.streamed", "second_pass"),
    ("storing prompt rows", "rankings.runs.parts", "store_prompt_rows"),
    ("merging pass one", "rankings.runs.parts", "RunParts._merged_first"),
    ("merging pass two", "rankings.runs.parts", "RunParts._merged_second"),
    ("part files written", "rankings.runs.parts", "_write"),
    ("part files read", "rankings.runs.parts", "_read"),
    ("both passes, end to end", "rankings.runs.parts", "RunParts._pass"),
    ("the run's scope (raters, responses)", "rankings.runs.parts", "run_scope"),
    ("clearing earlier attempts", "rankings.runs.parts", "clear_parts"),
    ("extension metrics", "rankings.runs.extensions", "extension_metrics"),
    ("forgetting part sums", "rankings.runs.parts", "forget_parts"),
)


def profile_run(project) -> None:  # type: ignore[no-untyped-def]
    """A run end to end under cProfile with a CPU clock (every thread of the process counts
    while the main thread is in a phase), and its CPU seconds per phase."""
    import cProfile
    import pstats

    from rankings.models import AgreementRun
    from rankings.runs import services

    run = AgreementRun.objects.create(project=project, trigger="bench")
    profiler = cProfile.Profile(time.process_time)
    started, cpu = time.perf_counter(), time.process_time()
    profiler.enable()
    summary = services.agreement_run_compute(run_id=run.pk)
    profiler.disable()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert summary["status"] == "done", summary
    stats = pstats.Stats(profiler)
    totals = {
        (file, function): cumulative
        for (file, _, function), (_, _, _, cumulative, _) in stats.stats.items()  # type: ignore[attr-defined]
    }
    run.refresh_from_db()
    print(
        f"profile: {run.n_rankings:,} rankings, {elapsed:.1f} s wall, {cpu:.1f} s CPU "
        f"({cpu / run.n_rankings * 1e6:.1f} us CPU per ranking), peak RSS {peak_rss_mb():.0f} MB; "
        f"load {load_average()}"
    )
    for label, module_name, attribute in PHASES:
        file, function = module_name.replace(".", "/") + ".py", attribute.rsplit(".", 1)[-1]
        seconds = sum(value for (path, name), value in totals.items()
                      if name == function and path.endswith(file))  # fmt: skip
        print(f"  {label:40} {seconds:7.1f} s CPU")
    if os.environ.get("BENCH_PROFILE_TOP"):
        stats.sort_stats("tottime").print_stats(int(os.environ["BENCH_PROFILE_TOP"]))


@dataclass
class RecordedFit:
    """One call of the run's reliability fit: its label blocks, raters and result."""

    blocks: list[Any]  # empty unless asked for
    n_raters: int
    fit: Any


def fits_recorded(*, with_blocks: bool = False) -> list[RecordedFit]:
    """Record every reliability fit the runs of this process make (``streamed.fit_blocks``
    wrapped): the list fills as they are made. The label blocks are kept only when asked
    for, since keeping them outlives the run's own use of them (and its peak RSS would
    show it)."""
    from rankings.runs import streamed

    fits: list[RecordedFit] = []
    fit_blocks = streamed.fit_blocks

    def recorded(blocks, n_raters):  # type: ignore[no-untyped-def]
        kept = list(blocks) if with_blocks else []
        fits.append(RecordedFit(kept, n_raters, fit_blocks(blocks, n_raters)))
        return fits[-1].fit

    streamed.fit_blocks = recorded
    return fits


def timeline_run(project) -> None:  # type: ignore[no-untyped-def]
    """A run end to end with each phase's wall time, the CPU the process spent in it (every
    thread, so phases that overlap on the side thread count each other's) and the CPU of the
    phase's own thread: where a run waits, and where it is bound by its own CPU."""
    import functools
    import importlib

    from rankings.models import AgreementRun
    from rankings.runs import services

    spent: dict[str, list[float]] = {label: [0.0, 0.0, 0.0, 0] for label in (t[0] for t in PHASES)}

    def timed(label: str, function: Any) -> Any:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            wall, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label][0] += time.perf_counter() - wall
                spent[label][1] += time.process_time() - cpu
                spent[label][2] += time.thread_time() - own
                spent[label][3] += 1

        return wrapper

    for label, module_name, attribute in PHASES:
        owner = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for step in path:
            owner = getattr(owner, step)
        setattr(owner, name, timed(label, getattr(owner, name)))
    fits = fits_recorded()
    vacuum_earlier_runs()
    run = AgreementRun.objects.create(project=project, trigger="bench")
    started, cpu = time.perf_counter(), time.process_time()
    summary = services.agreement_run_compute(run_id=run.pk)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert summary["status"] == "done", summary
    run.refresh_from_db()
    print(
        f"timeline: {run.n_rankings:,} rankings, {elapsed:.1f} s wall "
        f"(claimed to done {run_seconds(run):.1f} s), {cpu:.1f} s CPU of this process, "
        f"peak RSS {peak_rss_mb():.0f} MB; load {load_average()}"
    )
    fit = fits[0].fit
    print(f"  reliability fit: {fit.iterations} passes, converged {fit.converged}")
    print(f"  {'phase':40} {'wall':>8} {'CPU':>8} {'thread':>8} {'calls':>6}")
    for label, (wall, used, own, calls) in spent.items():
        print(f"  {label:40} {wall:7.1f}s {used:7.1f}s {own:7.1f}s {calls:6}")


WITHIN = (1e-2, 1e-3, 1e-4)
"""Distances from the maximum (the farthest weight) at which ``--fit`` reports the passes."""
TRACED_PASSES = 300
"""Passes ``--fit`` traces plain EM for (the accelerated fit: half as many)."""


def fit_convergence(project) -> None:  # type: ignore[no-untyped-def]
    """The reliability fit over the labels a run fits, against the maximum: the run's fit
    (its passes, seconds and distance from the maximum, the fit to 1e-10 standing for it),
    and the first pass at which the accelerated fit's updated point is within each of
    ``WITHIN`` of it, beside plain EM's."""
    from core import memory
    from rankings.models import AgreementRun
    from rankings.runs import services
    from rankings.stats import em_acceleration, label_blocks
    from rankings.stats import reliability as model

    fits = fits_recorded(with_blocks=True)
    vacuum_earlier_runs()
    run = AgreementRun.objects.create(project=project, trigger="bench")
    summary = services.agreement_run_compute(run_id=run.pk)
    assert summary["status"] == "done", summary
    blocks, n_raters = fits[0].blocks, fits[0].n_raters
    print(f"fit: {sum(b.n_labels for b in blocks):,} labels, {n_raters} raters", flush=True)
    with memory.large_buffers_kept():  # as in a run: the E step's temporaries reused
        started = time.perf_counter()
        fit = model.fit_reliability_blocks(blocks, n_raters)
        seconds = time.perf_counter() - started
    best = model.fit_reliability_blocks(blocks, n_raters, max_iterations=2000, tolerance=1e-10)
    gap = float(np.abs(fit.weights - best.weights).max())
    print(
        f"  the run's fit: {fit.iterations} passes in {seconds:.1f} s, converged "
        f"{fit.converged}; farthest weight {gap:.1e} from the maximum "
        f"({best.iterations} passes to 1e-10)",
        flush=True,
    )
    with ThreadPoolExecutor(max_workers=model.FIT_THREADS) as pool:
        e_step, totals = label_blocks.blocks_e_step(blocks, n_raters, pool)
        em = model._EMMap(e_step, totals)
        start = model._start(n_raters)
        accepted = em_acceleration.accepted_points(
            em, start, model.Parameters.from_vector, max_iterations=TRACED_PASSES // 2
        )
        accelerated = [(em.passes, point.updated.weights) for point in accepted]
        plain, params = [], start
        em.passes = 0
        while em.passes < TRACED_PASSES:
            params = em.em_update(params)
            plain.append((em.passes, params.weights))
    for name, path in (("accelerated", accelerated), ("plain EM", plain)):
        firsts, traced = [], path[-1][0]
        for within in WITHIN:
            passes = next(
                (n for n, weights in path if np.abs(weights - best.weights).max() < within), None
            )
            firsts.append(f"{within:.0e}: {passes if passes is not None else f'> {traced}'}")
        print(f"  {name:12} first pass within " + ", ".join(firsts), flush=True)


def report_run(label: str, run, elapsed: float) -> None:  # type: ignore[no-untyped-def]
    metrics = run.metrics
    print(
        f"{label}: {elapsed:.2f} s, {run.n_rankings:,} rankings counted "
        f"({run.n_rankings / elapsed:,.0f} rankings/s), {run.n_prompts:,} prompts; "
        f"pairwise agreement {metrics['pairwise_agreement']:.4f} "
        f"(95% CI {metrics['pairwise_agreement_ci'][0]:.4f}-"
        f"{metrics['pairwise_agreement_ci'][1]:.4f}), kappa {metrics['kappa']:.4f}, "
        f"alpha {metrics['alpha_ordinal']:.4f}, W {metrics['kendall_w']:.4f}",
        flush=True,
    )


def fan_out(workers: int) -> None:
    """The run queued to ``workers`` Celery worker processes on the bench's Redis database."""
    from config.celery import app as celery_app
    from labeling.models import Project
    from rankings.models import AgreementRun, AgreementRunPart
    from rankings.runs import services

    queue = f"ranklab-bench-{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_"))},
        "DATABASE_URL": DATABASE_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only",
        "AGREEMENT_BEAT_SECONDS": "86400",
        "PYTHONPATH": str(ROOT),
    }
    processes = []
    logs = []
    for number in range(workers):
        log = Path(f"/tmp/ranklab-bench-worker-{queue}-{number}.log")
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config.celery", "worker", "-Q", queue,
                 "--pool", "prefork", "--concurrency", "1", "-n", f"bench{number}@%h",
                 "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
                cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not all(" ready." in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise SystemExit("the bench's workers did not start: see " + str(logs[0]))
            time.sleep(0.2)
        celery_app.conf.update(
            broker_url=BROKER_URL, task_always_eager=False, task_default_queue=queue
        )
        project = Project.objects.get(name=PROJECT_NAME)
        started = time.perf_counter()
        run = services.agreement_run_request(project=project, trigger="bench")
        while True:
            run.refresh_from_db()
            if run.status in ("done", "failed"):
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        if run.status != "done":
            raise SystemExit(f"the fanned-out run failed: {run.error}")
        report_run(
            f"run, fanned out to {workers} workers", AgreementRun.objects.get(pk=run.pk), elapsed
        )
        shares: dict[str, list[int]] = {}
        for worker, phase in AgreementRunPart.objects.filter(run=run).values_list(
            "worker", "phase"
        ):
            shares.setdefault(worker, [0, 0])[phase - 1] += 1
        peaks = [f"{peak_of_children(process.pid):.0f} MB" for process in processes]
        print(
            f"  parts per worker (pass one, pass two): {sorted(shares.values())}; "
            f"peak RSS of each worker's child: {', '.join(peaks)}; load {load_average()}",
            flush=True,
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a warm shutdown still finishing a task
                process.kill()
                process.wait()


def peak_of_children(pid: int) -> float:
    """The largest peak RSS among a process's children (a prefork worker's pool)."""
    peaks = [0.0]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rankings", type=int, default=10_000_000)
    parser.add_argument("--baseline-rankings", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="keep the data already built")
    parser.add_argument("--skip", default="", help="comma-separated: run, fan-out, baseline")
    parser.add_argument(
        "--profile", action="store_true", help="CPU seconds per phase of a run, then stop"
    )
    parser.add_argument(
        "--timeline", action="store_true", help="wall and CPU seconds per phase of a run, then stop"
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        help="the reliability fit's passes against its maximum, on a run's labels, then stop",
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        django_setup(DATABASE_URL, migrate=False)
        measure(args.measure)
        return
    print(f"machine: {machine()}; {calibration()}; load {load_average()}", flush=True)
    if not args.reuse:
        recreate_database(DATABASE_URL)
        django_setup(DATABASE_URL)
        build_projects(
            [
                (PROJECT_NAME, args.rankings, "bench-agreement-lead"),
                (BASELINE_NAME, args.baseline_rankings, "bench-baseline-lead"),
            ]
        )
    else:
        django_setup(DATABASE_URL, migrate=True)
        vacuum_loaded_tables()  # a migration may have rewritten one
    for mode in ("profile", "timeline", "fit"):
        if getattr(args, mode):
            for part in (f"baseline {mode}", mode):
                subprocess.run([sys.executable, __file__, "--measure", part], check=True)
            return
    skip = set(filter(None, args.skip.split(",")))
    if "run" not in skip:
        subprocess.run([sys.executable, __file__, "--measure", "run"], check=True)
    if "fan-out" not in skip and args.workers > 0:
        fan_out(args.workers)
    if "baseline" not in skip:
        subprocess.run([sys.executable, __file__, "--measure", "baseline run"], check=True)
        subprocess.run([sys.executable, __file__, "--measure", "baseline in memory"], check=True)


if __name__ == "__main__":
    main()
