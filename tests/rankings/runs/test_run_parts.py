"""A run computed in parts (``runs.parts``): the same run as every ranking read and computed
at once (``maths.agreement_maths`` over ``agreement_data``), however many parts and
whichever worker computes which part; a part is computed once; a failing part fails the run
and leaves nothing of it behind."""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest

from core import jobs
from core.jobs import JobStatus
from labeling import services as labeling_services
from rankings.models import AgreementRun, AgreementRunPart, PromptAgreement, Ranking, RaterScore
from rankings.runs import data as run_data
from rankings.runs import maths, parts, payloads, services, storage, streamed
from rankings.runs.streamed import FirstSums, RunState
from rankings.stats.registry import RATER_STATISTICS
from tests.helpers import sample_records
from tests.rankings.agreement_helpers import rank_again_as_repeat, rank_in_turns

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


@pytest.fixture
def crowd(make_crowd):
    return make_crowd(4)


@pytest.fixture
def ranked(project, crowd) -> list[Ranking]:
    """Twelve prompts and two gold prompts of four responses, three raters each out of
    four; repeats; seconds on most rankings."""
    labeling_services.project_update(project=project, overlap=3, gold_rate=0.5)
    records = sample_records(12, responses=4)
    gold = sample_records(2, responses=4, prefix="gold")
    for record in gold:
        record["gold_ranking"] = [[2], [0, 1], [3]]
    labeling_services.prompts_import(project=project, raw=json.dumps(records + gold))
    rankings = rank_in_turns(project, crowd, seed=13)
    repeats = [rank_again_as_repeat(ranking) for ranking in rankings[::5]]
    for index, ranking in enumerate([*rankings, *repeats]):
        if index % 4:
            Ranking.objects.filter(pk=ranking.pk).update(seconds=8.0 + (index * 5) % 17)
    return rankings + repeats


@pytest.fixture
def small_parts(settings):
    settings.AGREEMENT_PART_PROMPTS = 3  # 14 prompts: five parts


def in_memory(project):
    """The reference: every ranking read and computed at once."""
    data = run_data.agreement_data(project=project)
    return data, maths.agreement_maths(data)


def close(value, expected) -> bool:
    if expected is None:
        return value is None
    if isinstance(expected, list):
        return value == pytest.approx(expected, rel=1e-7, abs=1e-9)
    if isinstance(expected, float) and math.isnan(expected):
        return value is None
    return value == pytest.approx(expected, rel=1e-7, abs=1e-9)


def assert_same_as_in_memory(run: AgreementRun) -> None:
    data, expected = in_memory(run.project)
    assert run.status == JobStatus.DONE, run.error
    assert run.metrics.keys() == expected.summary.keys()
    for key, value in expected.summary.items():
        assert close(run.metrics[key], value), key
    scores = {score.rater_id: score for score in RaterScore.objects.filter(run=run)}
    reference = storage.rater_score_rows(run_id=run.pk, data=data, maths=expected)
    assert scores.keys() == {row.rater_id for row in reference}
    for row in reference:
        for stat in RATER_STATISTICS:
            assert close(getattr(scores[row.rater_id], stat.column), getattr(row, stat.column)), (
                row.rater_id,
                stat.name,
            )
    stored = {row.prompt_id: row for row in PromptAgreement.objects.filter(run=run)}
    rows = storage.prompt_agreement_rows(
        run_id=run.pk, data=data, prompts=expected.prompts, result=expected.consensus
    )
    n_rows = 0
    for _, prompt_id, n_rankings, agreement, groups, scores_of, method in rows:
        n_rows += 1
        prompt_row = stored[prompt_id]
        assert (prompt_row.n_rankings, prompt_row.consensus, prompt_row.method) == (
            n_rankings,
            groups,
            method,
        )
        assert close(prompt_row.agreement, agreement)
        assert prompt_row.scores == pytest.approx(scores_of, abs=1e-4)
    assert len(stored) == n_rows == run.n_prompts


def run_now(project, django_capture_on_commit_callbacks) -> AgreementRun:
    with django_capture_on_commit_callbacks(execute=True):
        run = services.agreement_run_request(project=project, trigger="manual")
    run.refresh_from_db()
    return run


def test_prompt_ranges_cover_the_projects_prompts_in_parts_of_the_size(project, ranked):
    ranges = parts.prompt_ranges(project=project, part_prompts=3)
    ids = sorted(project.prompts.values_list("id", flat=True))
    assert len(ranges) == 5
    assert ranges[0][0] == ids[0] - 1 and ranges[-1][1] == ids[-1]
    assert all(high - low <= 3 for low, high in ranges)
    covered = [pid for pid in ids if any(low < pid <= high for low, high in ranges)]
    assert covered == ids


def test_a_run_in_parts_stores_the_run_of_every_ranking_at_once(
    project, ranked, small_parts, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)

    assert_same_as_in_memory(run)
    computed = AgreementRunPart.objects.filter(run=run).exclude(phase=0)
    assert computed.count() == 10  # five parts in each of the two passes
    assert set(computed.values_list("status", "attempts")) == {(JobStatus.DONE, 1)}
    # Nothing of their sums is kept once the run is stored.
    assert not AgreementRunPart.objects.filter(run=run, payload__isnull=False).exists()


def test_parts_another_worker_computed_are_merged_into_the_same_run(
    project, ranked, small_parts, monkeypatch, django_capture_on_commit_callbacks
):
    """Odd parts are taken by another worker (their sums travel in their rows)."""
    real = parts.claimable_part
    taken_elsewhere: list[tuple[int, int, bool]] = []

    def another_worker_first(*, run_id, attempt, phase):
        for part in AgreementRunPart.objects.filter(
            run_id=run_id, attempt=attempt, phase=phase, status=JobStatus.QUEUED, index__in=(1, 3)
        ):
            parts.part_compute(part_id=part.pk)
            stored = AgreementRunPart.objects.get(pk=part.pk)
            taken_elsewhere.append((phase, part.index, stored.payload is not None))
        return real(run_id=run_id, attempt=attempt, phase=phase)

    monkeypatch.setattr(parts, "claimable_part", another_worker_first)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert_same_as_in_memory(run)
    assert {(phase, index) for phase, index, _ in taken_elsewhere} == {
        (phase, index) for phase in (1, 2) for index in (1, 3)
    }
    assert all(had_payload for _, _, had_payload in taken_elsewhere)


def test_a_part_is_computed_once_however_often_its_message_arrives(project, ranked, small_parts):
    run = AgreementRun.objects.create(project=project, trigger="manual")
    assert jobs.job_claim(AgreementRun, job_id=run.pk)
    scope = parts.run_scope(project=project, up_to_id=max(r.pk for r in ranked))
    AgreementRunPart.objects.create(
        run=run, attempt=1, phase=0, index=0, prompt_low=0, prompt_high=0,
        status=JobStatus.DONE, payload=payloads.to_bytes(scope=scope),
    )  # fmt: skip
    low, high = parts.prompt_ranges(project=project)[0]
    part = AgreementRunPart.objects.create(
        run=run, attempt=1, phase=1, index=0, prompt_low=low, prompt_high=high
    )

    first = parts.part_compute(part_id=part.pk)
    again = parts.part_compute(part_id=part.pk)

    assert first["status"] == JobStatus.DONE
    assert again == {"part_id": part.pk, "skipped": True}
    part.refresh_from_db()
    assert part.attempts == 1 and part.payload is not None and part.worker


def test_a_failing_part_fails_the_run_and_leaves_none_of_its_rows(
    project, ranked, small_parts, monkeypatch, django_capture_on_commit_callbacks
):
    real = streamed.second_pass
    calls = []

    def fail_the_fourth(block, state):
        calls.append(1)
        if len(calls) == 4:
            raise ValueError("a part broke")
        return real(block, state)

    monkeypatch.setattr(streamed, "second_pass", fail_the_fourth)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == JobStatus.FAILED
    assert run.error == "ValueError: a part broke"
    assert not PromptAgreement.objects.filter(run=run).exists()
    assert not AgreementRunPart.objects.filter(run=run).exists()
    assert not RaterScore.objects.filter(run=run).exists()


def test_a_part_failed_on_another_worker_fails_the_run_with_its_reason(
    project, ranked, small_parts, monkeypatch, django_capture_on_commit_callbacks
):
    real = parts.claimable_part

    def another_worker_fails(*, run_id, attempt, phase):
        part = AgreementRunPart.objects.filter(
            run_id=run_id, attempt=attempt, phase=phase, status=JobStatus.QUEUED, index=2
        ).first()
        if part is not None:
            assert jobs.job_claim(AgreementRunPart, job_id=part.pk)
            jobs.job_fail(AgreementRunPart, job_id=part.pk, reason="MemoryError: out of memory")
        return real(run_id=run_id, attempt=attempt, phase=phase)

    monkeypatch.setattr(parts, "claimable_part", another_worker_fails)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == JobStatus.FAILED
    assert "MemoryError: out of memory" in run.error
    assert not PromptAgreement.objects.filter(run=run).exists()


def test_a_retaken_run_starts_over_without_the_rows_of_the_lost_attempt(
    project, ranked, small_parts, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)
    # As if an earlier attempt had stored prompt rows and parts before its worker was lost.
    AgreementRun.objects.filter(pk=run.pk).update(status=JobStatus.QUEUED)
    left = AgreementRunPart.objects.create(
        run=run, attempt=run.attempts, phase=1, index=99, prompt_low=0, prompt_high=1
    )

    result = services.agreement_run_compute(run_id=run.pk)

    run.refresh_from_db()
    assert result["status"] == JobStatus.DONE and run.attempts == 2
    assert not AgreementRunPart.objects.filter(pk=left.pk).exists()
    assert_same_as_in_memory(run)


def test_a_runs_shared_numbers_survive_their_trip_through_a_row(project, ranked):
    data, _ = in_memory(project)
    first, labels = streamed.first_pass(data)
    state = streamed.run_state(first, streamed.fit_blocks([labels], data.table.n_raters))
    stored = payloads.to_bytes(first=first, state=state)

    back = payloads.from_bytes(stored, first=FirstSums, state=RunState)

    assert payloads.to_bytes(first=back["first"], state=back["state"]) == stored
    np.testing.assert_array_equal(back["first"].project.types.rows, first.project.types.rows)
    assert back["first"].quality.keys() == first.quality.keys()
    assert back["state"].typical == state.typical
    assert back["state"].fit.iterations == state.fit.iterations


def record_threads(monkeypatch, module, name: str, threads: list[str]) -> None:
    real = getattr(module, name)

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, recorded)


@pytest.mark.postgresql("the side thread reads and writes on its own connection")
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_database_work_runs_beside_the_computing(
    project, ranked, small_parts, monkeypatch, django_capture_on_commit_callbacks
):
    reads: list[str] = []
    stores: list[str] = []
    record_threads(monkeypatch, parts, "read_block", reads)
    record_threads(monkeypatch, parts, "store_prompt_rows", stores)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert_same_as_in_memory(run)
    # Every part's block was read, and its prompt rows stored, on the side thread.
    assert len(reads) == len(stores) == 5
    assert all(name.startswith("agreement-side") for name in reads + stores), reads + stores


@pytest.mark.postgresql("the side thread reads and writes on its own connection")
@pytest.mark.django_db(transaction=True)
def test_a_store_failing_on_the_side_thread_fails_the_run_and_leaves_none_of_its_rows(
    project, ranked, small_parts, monkeypatch, django_capture_on_commit_callbacks
):
    real = parts.store_prompt_rows
    calls = []

    def fail_the_third(**kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise ValueError("the disk is full")
        return real(**kwargs)

    monkeypatch.setattr(parts, "store_prompt_rows", fail_the_third)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == JobStatus.FAILED
    assert run.error == "ValueError: the disk is full"
    assert calls[2].startswith("agreement-side")
    assert not PromptAgreement.objects.filter(run=run).exists()
    assert not AgreementRunPart.objects.filter(run=run).exists()


def test_a_runs_raters_are_those_with_a_ranking_up_to_its_last_id(
    project, ranked, crowd, lead, add_member
):
    # Another project the same raters rank, its rankings' ids after this project's.
    other = labeling_services.project_create(creator=lead, name="Another")
    for rater in crowd:
        add_member(rater, target=other)
    labeling_services.prompts_import(project=other, raw=json.dumps(sample_records(3)))
    rank_in_turns(other, crowd[2:], seed=3)
    rankings = list(Ranking.objects.filter(project=project).order_by("id"))
    raters = sorted({ranking.rater_id for ranking in rankings})
    excluded = [raters[1]]
    sizes = set()
    for ranking in rankings:
        expected = sorted(
            {r.rater_id for r in rankings if r.id <= ranking.id and r.rater_id not in excluded}
        )
        got = parts.counted_rater_ids(project=project, up_to_id=ranking.id, excluded=excluded)
        assert got == expected, ranking.id
        sizes.add(len(got))
    # Scopes of one rater up to all but the excluded one.
    assert sizes >= {1, len(raters) - 1}
    last = Ranking.objects.order_by("-id").values_list("id", flat=True)[0]
    assert parts.counted_rater_ids(project=other, up_to_id=last, excluded=[]) == sorted(
        rater.pk for rater in crowd[2:]
    )
    assert parts.counted_rater_ids(project=other, up_to_id=rankings[-1].id, excluded=[]) == []


def backend_of_this_thread() -> dict[str, np.ndarray]:
    """A reader fetch: the server process of its connection and its jit setting."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_setting('jit')")
        pid, jit = cursor.fetchone()
    return {"pid": np.array(pid), "jit": np.array(jit)}


def record_reader_backends(monkeypatch) -> list[int]:
    """The server process of each read the PostgreSQL reader makes, in order."""
    from rankings.runs import postgresql as reader

    pids: list[int] = []
    real = reader._in_transaction

    def recorded(fetch):
        pids.append(int(real(backend_of_this_thread)["pid"]))
        return real(fetch)

    monkeypatch.setattr(reader, "_in_transaction", recorded)
    return pids


def live_backends(pids: set[int]) -> set[int]:
    """Those of ``pids`` the server still runs, once closed ones have had 5 s to end."""
    from django.db import connection

    deadline = time.monotonic() + 5.0
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", [sorted(pids)])
            live = {pid for (pid,) in cursor.fetchall()}
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.05)


@pytest.mark.postgresql("the reader's threads read on connections of their own")
@pytest.mark.django_db(transaction=True)
def test_the_readers_keep_a_connection_per_stream_without_jit_until_closed():
    from django.db import connection

    from rankings.runs import postgresql as reader

    fetches = {"rankings": backend_of_this_thread, "shown": backend_of_this_thread}
    readers = reader.Readers()
    try:
        first, second = readers.read(fetches), readers.read(fetches)
    finally:
        readers.close()

    assert {str(part["jit"]) for part in [*first.values(), *second.values()]} == {"off"}
    pids = {name: int(part["pid"]) for name, part in first.items()}
    assert len(set(pids.values())) == 2  # a connection per stream
    assert {name: int(part["pid"]) for name, part in second.items()} == pids  # kept
    assert live_backends(set(pids.values())) == set()  # and closed by ``close``
    # jit is off in the readers' transactions only.
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.postgresql("the reader's threads read on connections of their own")
@pytest.mark.django_db(transaction=True)
def test_a_run_reads_every_part_on_the_same_connections_and_closes_them(
    project, ranked, small_parts, monkeypatch, django_capture_on_commit_callbacks
):
    pids = record_reader_backends(monkeypatch)

    run = run_now(project, django_capture_on_commit_callbacks)
    run_pids = list(pids)

    assert_same_as_in_memory(run)
    assert len(run_pids) == 3 * 5  # three streams, five parts
    assert len(set(run_pids)) == 3  # one connection per stream for the whole run
    assert live_backends(set(run_pids)) == set()


@pytest.mark.postgresql("the reader's threads read on connections of their own")
@pytest.mark.django_db(transaction=True)
def test_a_read_without_kept_readers_closes_its_connections(project, ranked, monkeypatch):
    pids = record_reader_backends(monkeypatch)

    data = run_data.agreement_data(project=project)

    assert data.table.n_rankings == len(ranked)
    assert len(set(pids)) == 3
    assert live_backends(set(pids)) == set()


@pytest.mark.postgresql("PostgreSQL plans")
def test_the_readers_response_query_is_answered_from_the_index_alone(ranked):
    from django.db import connection

    from rankings.runs import postgresql as reader

    with connection.cursor() as cursor:
        # The test's few rows would be read by a sequential scan; forbid it, and the plan
        # shows whether the index holds every column the query reads.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {reader._RESPONSES_SQL}", [0, 10**12])
        plan = json.dumps(cursor.fetchone()[0])

    assert '"Index Only Scan"' in plan
    assert '"response_unique_position"' in plan
