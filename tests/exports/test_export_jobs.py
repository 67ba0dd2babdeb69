"""Export jobs over hand-made rankings in the database: strategies, filters, splits,
determinism, incremental exports, progress, failures, file deletion and streaming."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from datetime import timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.utils import timezone

from core import jobs as core_jobs
from core.errors import Conflict, InvalidInput
from exports import selectors, services
from exports.formats import split_for_prompt
from exports.models import ExportJob
from exports.params import PARAMS
from exports.services import batches, jobs, reading
from labeling.models import Membership, Prompt
from rankings.models import Flag
from tests.helpers import import_prompts, response_ids, sample_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def prompts(project) -> list[Prompt]:
    """Four prompts of three responses (positions 0, 1, 2)."""
    return import_prompts(project, sample_records(4))


@pytest.fixture
def rater3(make_user, add_member):
    return add_member(make_user("rater3"))


def run(project, user, **kwargs) -> ExportJob:
    job = services.export_job_create(project=project, created_by=user, **kwargs)
    services.export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    return job


def rows_of(job: ExportJob, export_folder, name: str | None = None) -> list[dict]:
    data = (export_folder / (name or job.file.name)).read_bytes()
    if job.container == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    if job.container == "jsonl.gz":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines()]


def file_sha256(job: ExportJob, export_folder) -> str:
    return hashlib.sha256((export_folder / job.file.name).read_bytes()).hexdigest()


# --- strategies -------------------------------------------------------------------------


@pytest.fixture
def three_raters_with_ties(prompts, rater, rater2, rater3, make_ranking):
    """Prompt 0: r1 says 0>1>2, r2 says 1>0>2, r3 ties 0 and 1 above 2."""
    prompt = prompts[0]
    make_ranking(prompt, rater, [[0], [1], [2]])
    make_ranking(prompt, rater2, [[1], [0], [2]])
    make_ranking(prompt, rater3, [[0, 1], [2]])
    return prompt


def pairs_by_position(rows: list[dict], prompt: Prompt) -> list[tuple[int, int, float]]:
    position = {response_id: index for index, response_id in enumerate(response_ids(prompt))}
    return [
        (position[row["chosen_id"]], position[row["rejected_id"]], row["margin"]) for row in rows
    ]


def test_all_pairs_strategy_exports_every_decided_pair_of_every_ranking(
    project, lead, three_raters_with_ties, export_folder
):
    job = run(project, lead)

    rows = rows_of(job, export_folder)
    assert pairs_by_position(rows, three_raters_with_ties) == [
        (0, 1, 1.0), (0, 2, 2.0), (1, 2, 1.0),
        (1, 0, 1.0), (1, 2, 2.0), (0, 2, 1.0),
        (0, 2, 1.0), (1, 2, 1.0),
    ]  # fmt: skip
    assert [row["agreement"] for row in rows[:2]] == [pytest.approx(1 / 3), 1.0]
    assert {row["n_raters"] for row in rows} == {3}
    assert len({row["rater_keys"][0] for row in rows}) == 3
    assert job.prompts == 1 and job.rows == 8


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (
            "best_vs_rest",
            [(0, 1, 1.0), (0, 2, 2.0), (1, 0, 1.0), (1, 2, 2.0), (0, 2, 1.0), (1, 2, 1.0)],
        ),
        ("best_vs_worst", [(0, 2, 2.0), (1, 2, 2.0), (0, 2, 1.0), (1, 2, 1.0)]),
    ],
)
def test_best_vs_rest_and_best_vs_worst_strategies(
    project, lead, three_raters_with_ties, export_folder, strategy, expected
):
    job = run(project, lead, strategy=strategy)

    assert pairs_by_position(rows_of(job, export_folder), three_raters_with_ties) == expected


def test_include_ties_exports_tied_pairs_with_zero_margin(
    project, lead, three_raters_with_ties, export_folder
):
    job = run(project, lead, params={"include_ties": True})

    ties = [row for row in rows_of(job, export_folder) if row["margin"] == 0.0]
    assert pairs_by_position(ties, three_raters_with_ties) == [(0, 1, 0.0)]
    assert ties[0]["agreement"] == pytest.approx(1 / 3)


def test_consensus_strategy_gives_one_row_per_response_pair_with_score_gap_margin(
    project, lead, three_raters_with_ties, export_folder
):
    job = run(project, lead, strategy="consensus")

    rows = rows_of(job, export_folder)
    # Borda or Bradley-Terry alike: 0 and 1 are level above 2, so only the decided pairs.
    assert sorted(pairs[:2] for pairs in pairs_by_position(rows, three_raters_with_ties)) == [
        (0, 2),
        (1, 2),
    ]
    assert all(row["margin"] > 0 for row in rows)
    assert all(row["agreement"] == 1.0 and row["n_raters"] == 3 for row in rows)
    assert all(len(row["rater_keys"]) == 3 for row in rows)


def test_consensus_strategy_orders_pairs_by_the_majority(
    project, lead, prompts, rater, rater2, rater3, make_ranking, export_folder
):
    make_ranking(prompts[1], rater, [[2], [1], [0]])
    make_ranking(prompts[1], rater2, [[2], [0], [1]])
    make_ranking(prompts[1], rater3, [[2], [1], [0]])

    rows = rows_of(run(project, lead, strategy="consensus"), export_folder)

    assert pairs_by_position(rows, prompts[1])[0][:2] == (2, 1)
    assert len(rows) == 3
    [one_over_zero] = [row for row in pairs_by_position(rows, prompts[1]) if row[:2] == (1, 0)]
    assert one_over_zero[2] > 0


def test_margin_comes_from_the_strength_label_where_collected(
    project, lead, rater, rater2, make_ranking, export_folder
):
    [prompt] = import_prompts(project, sample_records(1, responses=2))
    make_ranking(prompt, rater, [[1], [0]], strength=3)
    make_ranking(prompt, rater2, [[1], [0]])

    rows = rows_of(run(project, lead, format="trl-reward"), export_folder)

    assert [row["margin"] for row in rows] == [3.0, 1.0]


# --- filters ----------------------------------------------------------------------------


@pytest.fixture
def spread(prompts, rater, rater2, rater3, make_ranking):
    """Prompt 0: three raters agree; prompt 1: two raters disagree; prompt 2: one rater."""
    for user in (rater, rater2, rater3):
        make_ranking(prompts[0], user, [[0], [1], [2]])
    make_ranking(prompts[1], rater, [[0], [1], [2]])
    make_ranking(prompts[1], rater2, [[2], [1], [0]])
    make_ranking(prompts[2], rater3, [[1], [0], [2]])
    return prompts


def exported_prompts(job, export_folder) -> set[int]:
    return {row["prompt_id"] for row in rows_of(job, export_folder)}


def test_min_raters_keeps_prompts_with_enough_rankings(project, lead, spread, export_folder):
    job = run(project, lead, params={"min_raters": 2})

    assert exported_prompts(job, export_folder) == {spread[0].pk, spread[1].pk}


def test_min_agreement_drops_pairs_raters_disagree_on(project, lead, spread, export_folder):
    rows = rows_of(run(project, lead, params={"min_agreement": 0.75}), export_folder)

    assert {row["prompt_id"] for row in rows} == {spread[0].pk, spread[2].pk}
    assert all(row["agreement"] >= 0.75 for row in rows)


def test_excluded_raters_are_left_out_by_default_and_on_request_kept(
    project, lead, rater3, spread, export_folder
):
    Membership.objects.filter(project=project, user=rater3).update(excluded=True)

    default = rows_of(run(project, lead), export_folder)
    kept = rows_of(run(project, lead, params={"exclude_excluded_raters": False}), export_folder)

    assert spread[2].pk not in {row["prompt_id"] for row in default}
    assert {row["n_raters"] for row in default if row["prompt_id"] == spread[0].pk} == {2}
    assert spread[2].pk in {row["prompt_id"] for row in kept}


def test_flagged_raters_are_left_out_when_asked(project, lead, rater, spread, export_folder):
    Flag.objects.create(project=project, rater=rater, code="LOW_AGREEMENT", status="open")
    Flag.objects.create(project=project, rater=rater, code="TOO_FAST", status="dismissed")

    kept = rows_of(run(project, lead), export_folder)
    left_out = rows_of(run(project, lead, params={"exclude_flagged_raters": True}), export_folder)

    assert {row["n_raters"] for row in kept if row["prompt_id"] == spread[0].pk} == {3}
    assert {row["n_raters"] for row in left_out if row["prompt_id"] == spread[0].pk} == {2}


def test_dismissed_flags_do_not_leave_raters_out(project, lead, rater, spread, export_folder):
    Flag.objects.create(project=project, rater=rater, code="TOO_FAST", status="dismissed")

    rows = rows_of(run(project, lead, params={"exclude_flagged_raters": True}), export_folder)

    assert {row["n_raters"] for row in rows if row["prompt_id"] == spread[0].pk} == {3}


def test_gold_prompts_are_out_by_default_and_in_on_request(
    project, lead, rater, spread, export_folder
):
    Prompt.objects.filter(pk=spread[0].pk).update(is_gold=True, gold_ranking=[[1], [2], [3]])

    assert spread[0].pk not in exported_prompts(run(project, lead), export_folder)
    with_gold = run(project, lead, params={"include_gold": True})
    assert spread[0].pk in exported_prompts(with_gold, export_folder)


def test_repeats_are_never_exported(project, lead, rater, prompts, make_ranking, export_folder):
    make_ranking(prompts[3], rater, [[0], [1], [2]])
    make_ranking(prompts[3], rater, [[2], [1], [0]], is_repeat=True)

    rows = rows_of(run(project, lead), export_folder)

    assert len(rows) == 3 and {row["n_raters"] for row in rows} == {1}


def test_only_complete_keeps_prompts_with_full_overlap(project, lead, spread, export_folder):
    Prompt.objects.filter(pk__in=[spread[1].pk]).update(is_complete=True)

    assert exported_prompts(run(project, lead, params={"only_complete": True}), export_folder) == {
        spread[1].pk
    }


def test_created_after_and_before_select_rankings_by_time(
    project, lead, rater, rater2, prompts, make_ranking, export_folder
):
    now = timezone.now()
    make_ranking(prompts[0], rater, [[0], [1], [2]], created_at=now - timedelta(days=10))
    make_ranking(prompts[1], rater, [[0], [1], [2]], created_at=now - timedelta(days=1))
    make_ranking(prompts[1], rater2, [[0], [1], [2]], created_at=now - timedelta(hours=1))

    recent = run(project, lead, params={"created_after": (now - timedelta(days=2)).isoformat()})
    window = run(
        project,
        lead,
        params={
            "created_after": now - timedelta(days=2),
            "created_before": now - timedelta(hours=2),
        },
    )

    assert exported_prompts(recent, export_folder) == {prompts[1].pk}
    assert {row["n_raters"] for row in rows_of(window, export_folder)} == {1}


def test_incremental_export_leaves_out_prompts_of_earlier_exports(
    project, lead, rater, prompts, make_ranking, export_folder
):
    make_ranking(prompts[0], rater, [[0], [1], [2]])
    first = run(project, lead)
    make_ranking(prompts[1], rater, [[0], [1], [2]])
    second = run(project, lead, params={"since_export": first.pk})
    make_ranking(prompts[2], rater, [[0], [1], [2]])
    third = run(project, lead, params={"since_export": second.pk})
    everything = run(project, lead)

    assert exported_prompts(first, export_folder) == {prompts[0].pk}
    assert exported_prompts(second, export_folder) == {prompts[1].pk}
    # An incremental export continues the whole chain, not only its direct parent.
    assert exported_prompts(third, export_folder) == {prompts[2].pk}
    assert exported_prompts(everything, export_folder) == {p.pk for p in prompts[:3]}
    assert set(services.unpack_prompt_ids(third.exported_prompt_ids)) == {p.pk for p in prompts[:3]}


def test_incremental_export_needs_a_finished_export_of_the_same_project(project, lead, make_user):
    other = services.export_job_create(project=project, created_by=lead)  # still queued
    with pytest.raises(InvalidInput) as queued:
        services.export_job_create(
            project=project, created_by=lead, params={"since_export": other.pk}
        )
    with pytest.raises(InvalidInput) as missing:
        services.export_job_create(project=project, created_by=lead, params={"since_export": 99999})

    assert queued.value.field == missing.value.field == "since_export"


def test_snapshot_leaves_out_rankings_newer_than_the_job_start_and_repeats_exactly(
    project, lead, rater, rater2, prompts, make_ranking, export_folder
):
    make_ranking(prompts[0], rater, [[0], [1], [2]])
    first = run(project, lead)
    make_ranking(prompts[0], rater2, [[2], [1], [0]])

    again = run(project, lead, params={"until_ranking_id": first.last_ranking_id})
    latest = run(project, lead)

    assert first.last_ranking_id > 0
    assert again.sha256 == first.sha256
    assert latest.sha256 != first.sha256 and latest.rows == 6


# --- split ------------------------------------------------------------------------------


@pytest.fixture
def many_prompts(project, rater, rater2, make_ranking):
    prompts = import_prompts(project, sample_records(40, prefix="many"))
    for prompt in prompts:
        make_ranking(prompt, rater, [[0], [1], [2]])
        make_ranking(prompt, rater2, [[1], [0], [2]])
    return prompts


@pytest.mark.parametrize("container", ["jsonl", "jsonl.gz", "parquet"])
def test_split_writes_disjoint_train_and_test_files_with_row_counts(
    project, lead, many_prompts, export_folder, container
):
    job = run(project, lead, container=container, params={"test_fraction": 0.25, "seed": 11})

    everything = rows_of(job, export_folder)
    train = rows_of(job, export_folder, job.splits["train"]["file"])
    test = rows_of(job, export_folder, job.splits["test"]["file"])
    assert {row["prompt_id"] for row in train}.isdisjoint({row["prompt_id"] for row in test})
    assert {row["split"] for row in train} == {"train"} and {row["split"] for row in test} == {
        "test"
    }
    assert len(train) == job.splits["train"]["rows"] and len(test) == job.splits["test"]["rows"]
    assert len(train) + len(test) == len(everything) == job.rows
    assert 0 < len(test) < len(train)
    for row in everything:
        assert row["split"] == split_for_prompt(row["prompt_id"], 11, 0.25)
    for name in ("train", "test"):
        path = export_folder / job.splits[name]["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == job.splits[name]["sha256"]
        assert path.stat().st_size == job.splits[name]["size_bytes"]


def test_unsplit_export_counts_every_row_as_train_and_writes_one_file(
    project, lead, many_prompts, export_folder
):
    job = run(project, lead)

    assert job.splits == {"train": {"rows": job.rows}, "test": {"rows": 0}}
    assert len([path for path in export_folder.rglob("*") if path.is_file()]) == 1


def test_split_changes_with_the_seed_but_never_puts_a_prompt_on_both_sides(
    project, lead, many_prompts, export_folder
):
    one = run(project, lead, params={"test_fraction": 0.5, "seed": 1})
    two = run(project, lead, params={"test_fraction": 0.5, "seed": 2})

    def test_prompts(job):
        return {row["prompt_id"] for row in rows_of(job, export_folder, job.splits["test"]["file"])}

    assert test_prompts(one) != test_prompts(two)


# --- determinism, progress, timings -----------------------------------------------------


@pytest.mark.parametrize("container", ["jsonl", "jsonl.gz", "parquet"])
@pytest.mark.parametrize("strategy", ["all_pairs", "consensus"])
def test_same_parameters_over_same_data_give_byte_identical_files(
    project, lead, many_prompts, export_folder, container, strategy
):
    params = {"test_fraction": 0.2, "seed": 5, "include_ties": True}
    first = run(project, lead, container=container, strategy=strategy, params=params)
    second = run(project, lead, container=container, strategy=strategy, params=params)

    assert first.sha256 == second.sha256 == file_sha256(first, export_folder)
    assert first.size_bytes == second.size_bytes > 0
    assert first.splits["test"]["sha256"] == second.splits["test"]["sha256"]
    assert first.file.name != second.file.name


def test_a_finished_job_records_progress_counts_and_timings(
    project, lead, many_prompts, export_folder
):
    job = run(project, lead)

    assert job.rows == 40 * 2 * 3 and job.prompts == 40
    assert job.rows_estimated == job.rows  # no ties, K=3 everywhere: the estimate is exact
    assert job.progress == 1.0
    assert set(job.timings) >= {"read", "pairs", "encode", "write", "store", "total"}
    assert job.started_at and job.finished_at and job.started_at <= job.finished_at
    assert job.size_bytes == (export_folder / job.file.name).stat().st_size


def test_progress_is_written_after_every_batch(
    project, lead, many_prompts, export_folder, monkeypatch
):
    seen = []
    heartbeat = core_jobs.job_heartbeat

    def watch(model, **values):
        beat = heartbeat(model, **values)
        if "rows" in values:  # what the job page shows while the export runs
            seen.append(ExportJob.objects.get(pk=values["job_id"]).rows)
        return beat

    monkeypatch.setattr(selectors, "PROMPT_BATCH_SIZE", 10)
    monkeypatch.setattr(jobs, "job_heartbeat", watch)
    job = services.export_job_create(project=project, created_by=lead)
    services.export_job_run(job_id=job.pk)

    assert seen == [60, 120, 180, 240]


def test_progress_while_running_stays_below_one():
    job = ExportJob(status="running", rows=500, rows_estimated=400)

    assert job.progress == 0.99
    assert ExportJob(status="queued").progress == 0.0


def test_a_failed_job_keeps_its_error_and_no_file(
    project, lead, spread, export_folder, monkeypatch
):
    def broken(*args, **kwargs):
        raise ValueError("consensus exploded")

    monkeypatch.setattr(batches, "consensus_ranking", broken)
    job = services.export_job_create(project=project, created_by=lead, strategy="consensus")

    summary = services.export_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert summary["status"] == job.status == "failed"
    assert job.error == "ValueError: consensus exploded"
    assert not job.file and job.finished_at


# --- parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"params": {"min_agreement": 1.5}}, "min_agreement"),
        ({"params": {"min_raters": 0}}, "min_raters"),
        ({"params": {"test_fraction": 1}}, "test_fraction"),
        ({"params": {"created_after": "last tuesday"}}, "created_after"),
        ({"params": {"include_gold": "yes"}}, "include_gold"),
        ({"params": {"colour": "blue"}}, "colour"),
        ({"format": "trl-unpaired", "params": {"include_ties": True}}, "include_ties"),
        ({"params": {"include_ties": True, "with_metadata": False}}, "include_ties"),
        ({"strategy": "random"}, "strategy"),
        ({"container": "csv"}, "container"),
        (
            {"params": {"created_after": "2026-02-01", "created_before": "2026-01-01"}},
            "created_before",
        ),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(project, lead, kwargs, field):
    with pytest.raises(InvalidInput) as error:
        services.export_job_create(project=project, created_by=lead, **kwargs)

    assert error.value.field == field
    assert not ExportJob.objects.exists()


def test_ties_in_trl_reward_need_no_metadata(project, lead):
    job = services.export_job_create(
        project=project,
        created_by=lead,
        format="trl-reward",
        params={"include_ties": True, "with_metadata": False},
    )

    assert job.params["include_ties"] is True


def test_stored_parameters_are_complete_and_canonical(project, lead):
    job = services.export_job_create(
        project=project, created_by=lead, params={"created_after": "2026-01-02T03:04:05"}
    )

    assert set(job.params) == {param.name for param in PARAMS if param.stored}
    assert job.params["created_after"] == "2026-01-02T03:04:05+00:00"


# --- delete file ------------------------------------------------------------------------


def test_deleting_files_keeps_the_job_record(
    project, lead, many_prompts, export_folder, django_capture_on_commit_callbacks
):
    job = run(project, lead, params={"test_fraction": 0.3})
    names = [job.file.name, job.splits["train"]["file"], job.splits["test"]["file"]]
    assert all((export_folder / name).exists() for name in names)

    with django_capture_on_commit_callbacks(execute=True):
        services.export_job_delete_file(job=job, deleted_by=lead)

    job.refresh_from_db()
    assert not job.file and job.file_deleted_at and job.file_deleted_by == lead
    assert job.sha256 and job.rows and job.splits["test"]["rows"]
    assert all("file" not in split for split in job.splits.values())
    assert not any((export_folder / name).exists() for name in names)
    with pytest.raises(Conflict):
        services.export_job_delete_file(job=job, deleted_by=lead)


# --- streaming --------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["jsonl", "jsonl.gz"])
def test_stream_sends_the_same_bytes_as_a_job(
    project, lead, many_prompts, export_folder, container
):
    job = run(project, lead, container=container, format="openai")

    streamed = b"".join(
        services.export_stream_open(
            project=project,
            format="openai",
            container=container,
            params={"until_ranking_id": job.last_ranking_id},
        )
    )

    assert hashlib.sha256(streamed).hexdigest() == job.sha256


def test_stream_limit_and_split_select_rows(project, lead, many_prompts):
    limited = b"".join(services.export_stream_open(project=project, limit=7))
    tested = b"".join(
        services.export_stream_open(
            project=project, params={"test_fraction": 0.5, "seed": 3}, split="test"
        )
    )
    unpaired = b"".join(
        services.export_stream_open(project=project, format="trl-unpaired", limit=5)
    )

    assert len(limited.splitlines()) == 7
    assert {json.loads(line)["split"] for line in tested.splitlines()} == {"test"}
    assert len(unpaired.splitlines()) == 4  # whole pairs only


def test_stream_refuses_big_exports_and_parquet(project, lead, many_prompts, monkeypatch):
    monkeypatch.setattr(reading, "STREAM_MAX_ROWS", 100)

    with pytest.raises(services.TooLarge):
        services.export_stream_open(project=project)
    with pytest.raises(InvalidInput) as parquet:
        services.export_stream_open(project=project, container="parquet")

    assert parquet.value.field == "container"
    assert len(b"".join(services.export_stream_open(project=project, limit=50)).splitlines()) == 50


# --- prompt id packing ------------------------------------------------------------------


def test_prompt_ids_pack_small_and_unpack_sorted_unique():
    ids = np.array([5, 3, 3, 1_000_000, 4, 2**40], dtype=np.int64)

    packed = services.pack_prompt_ids(ids)

    assert list(services.unpack_prompt_ids(packed)) == [3, 4, 5, 1_000_000, 2**40]
    assert len(services.pack_prompt_ids(np.arange(1, 100_001))) < 2000
    assert len(services.unpack_prompt_ids(b"")) == 0
    membership = services.PromptIdSet(services.unpack_prompt_ids(packed))
    assert 4 in membership and 6 not in membership and "4" not in membership


@pytest.mark.django_db(transaction=True)
def test_reading_ahead_on_another_connection_writes_the_same_file(
    project, lead, many_prompts, export_folder, monkeypatch
):
    """Outside a transaction (as in a worker) the next batch is read on a background thread
    with its own connection; the file must equal the one read batch by batch inline."""
    monkeypatch.setattr(selectors, "PROMPT_BATCH_SIZE", 7)  # several batches
    threads_used = []
    original = selectors.prefetched

    def spy(batches, **kwargs):
        threads_used.append(True)
        return original(batches, **kwargs)

    monkeypatch.setattr(selectors, "prefetched", spy)
    ahead = run(project, lead, params={"test_fraction": 0.25, "seed": 3})
    assert threads_used, "the job did not read ahead outside a transaction"
    monkeypatch.setattr(selectors, "prefetched", lambda batches, **kwargs: batches)
    inline = run(project, lead, params={"test_fraction": 0.25, "seed": 3})
    assert ahead.sha256 == inline.sha256 == file_sha256(ahead, export_folder)
    assert ahead.rows == inline.rows == 40 * 2 * 3


# --- UltraFeedback ------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["jsonl", "jsonl.gz", "parquet"])
def test_ultrafeedback_exports_are_byte_identical_and_score_from_the_rankings(
    project, lead, many_prompts, export_folder, container
):
    params = {"test_fraction": 0.2, "seed": 5}
    first = run(project, lead, format="ultrafeedback", container=container, params=params)
    second = run(project, lead, format="ultrafeedback", container=container, params=params)

    assert first.sha256 == second.sha256 == file_sha256(first, export_folder)
    rows = rows_of(first, export_folder)
    assert len(rows) == first.rows == 40 * 2 * 3
    # Both raters put position 2 last; they disagree on 0 and 1 (each wins 3 of 4).
    by_position = {}
    for row in rows:
        for side in ("chosen", "rejected"):
            answer = row[side][-1]["content"]
            by_position[answer.split()[1]] = row[f"score_{side}"]
    assert by_position == {"0": 7.75, "1": 7.75, "2": 1.0}


def test_ultrafeedback_stream_sends_the_same_bytes_as_a_job(
    project, lead, many_prompts, export_folder
):
    job = run(project, lead, format="ultrafeedback")

    streamed = b"".join(
        services.export_stream_open(
            project=project,
            format="ultrafeedback",
            params={"until_ranking_id": job.last_ranking_id},
        )
    )

    assert hashlib.sha256(streamed).hexdigest() == job.sha256
