"""The agreement job: request, claim, compute, store, schedule; checked against the statistics."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection, transaction
from django.utils import timezone

from core import jobs
from core.jobs import JobStatus
from labeling import services as labeling_services
from labeling.models import Assignment, Project, Prompt, Response
from rankings.models import AgreementRun, AgreementRunPart, PromptAgreement, Ranking, RaterScore
from rankings.quality import findings
from rankings.runs import data as run_data
from rankings.runs import maths, portable, postgresql, services, storage, tasks
from rankings.stats import agreement as agreement_stats
from rankings.stats import consensus
from rankings.stats import project as project_stats
from rankings.stats.agreement import rater_leave_one_out_agreement
from rankings.stats.project import project_agreement
from rankings.stats.raters import rater_quality
from rankings.stats.tables import RankingContext, RankingTable, ranks_from_groups
from tests.helpers import sample_records
from tests.rankings.agreement_helpers import (
    rank_again_as_repeat,
    rank_in_turns,
    reference_table,
)
from tests.rankings.references import (
    agreement_run_is_stale,
    prompt_agreements_store,
    ranking_table,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


@pytest.fixture
def crowd(make_crowd):
    """Four raters here: three rank each prompt, so one of them sits each one out."""
    return make_crowd(4)


@pytest.fixture
def ranked(project, crowd) -> list[Ranking]:
    """Eight prompts of four responses, three raters each out of four, in turns."""
    labeling_services.project_update(project=project, overlap=3)
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(8, responses=4))
    )
    return rank_in_turns(project, crowd, seed=7)


def run_now(project: Project, django_capture_on_commit_callbacks) -> AgreementRun:
    """Request a run and let its on-commit enqueue fire (eager: the run computes right away)."""
    with django_capture_on_commit_callbacks(execute=True):
        run = services.agreement_run_request(project=project, trigger="manual")
    run.refresh_from_db()
    return run


def assert_same_summary(stored: dict, expected: dict) -> None:
    assert stored.keys() == expected.keys()
    for key, value in expected.items():
        assert stored[key] == (value if value is None else pytest.approx(value)), key


def test_run_stores_the_metrics_of_the_rankings(
    project, ranked, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == JobStatus.DONE
    assert run.error == ""
    assert run.started_at is not None and run.finished_at is not None
    assert run.finished_at >= run.started_at
    table, _ = reference_table(ranked)
    expected = project_agreement(table)
    assert_same_summary(run.metrics, expected)
    assert run.n_rankings == len(ranked) == 24
    assert run.n_prompts == 8
    assert run.metrics["n_raters"] == 4
    assert run.last_ranking_id == max(ranking.pk for ranking in ranked)
    # Noisy raters: agreement is informative, neither perfect nor absent.
    assert 0.3 < run.metrics["pairwise_agreement"] < 1.0
    assert run.metrics["alpha_ordinal"] is not None


def test_ranking_table_has_one_row_per_ranking_with_dense_indices(project, ranked, crowd):
    table, rater_user_ids = ranking_table(project=project)

    assert table.n_rankings == len(ranked)
    assert table.n_prompts == 8 and table.k_max == 4
    assert table.n_raters == len(rater_user_ids) == len(crowd)
    assert sorted(rater_user_ids) == sorted(user.pk for user in crowd)
    assert set(table.rater_index.tolist()) == set(range(len(crowd)))
    first = ranked[0]
    levels = {
        response_id: level
        for level, group in enumerate(first.groups, start=1)
        for response_id in group
    }
    positions = dict(first.prompt.responses.values_list("pk", "position"))
    expected_row = [
        levels[response_id] for response_id in sorted(levels, key=positions.__getitem__)
    ]
    assert table.ranks[0].tolist() == expected_row
    assert rater_user_ids[table.rater_index[0]] == first.rater_id


def test_ranking_table_stops_at_the_given_ranking(project, ranked):
    cutoff = ranked[9].pk
    table, _ = ranking_table(project=project, up_to_id=cutoff)
    assert table.n_rankings == 10


def test_excluded_raters_are_left_out(project, ranked, crowd, django_capture_on_commit_callbacks):
    left_out = crowd[1]
    labeling_services.member_update(project=project, username=left_out.username, excluded=True)

    run = run_now(project, django_capture_on_commit_callbacks)

    kept = [ranking for ranking in ranked if ranking.rater_id != left_out.pk]
    table, _ = reference_table(kept)
    assert_same_summary(run.metrics, project_agreement(table))
    assert run.n_rankings == len(kept) < len(ranked)
    assert run.metrics["n_raters"] == 3
    scored = set(run.rater_scores.values_list("rater_id", flat=True))
    assert scored == {user.pk for user in crowd} - {left_out.pk}


def test_repeats_are_left_out(project, ranked, django_capture_on_commit_callbacks):
    repeats = [rank_again_as_repeat(ranked[0]), rank_again_as_repeat(ranked[5])]
    assert all(repeat.is_repeat for repeat in repeats)

    run = run_now(project, django_capture_on_commit_callbacks)

    table, _ = reference_table(ranked)
    assert_same_summary(run.metrics, project_agreement(table))
    assert run.n_rankings == len(ranked)
    # The metrics keep one ranking per rater and prompt anyway; the table must not even
    # contain the repeats.
    assert ranking_table(project=project)[0].n_rankings == len(ranked)
    repeater = run.rater_scores.get(rater_id=ranked[0].rater_id)
    assert repeater.rankings == sum(1 for r in ranked if r.rater_id == ranked[0].rater_id)


def test_each_rater_gets_a_score_row_with_counts(
    project, ranked, crowd, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)

    table, rater_ids = reference_table(ranked)
    expected = {rater_ids[row.rater_index]: row for row in rater_leave_one_out_agreement(table)}
    scores = {score.rater_id: score for score in RaterScore.objects.filter(run=run)}
    assert scores.keys() == {user.pk for user in crowd}
    for rater_id, score in scores.items():
        reference = expected[rater_id]
        assert score.rankings == Ranking.objects.filter(rater_id=rater_id).count()
        assert score.rankings == reference.n_rankings
        assert score.compared_pairs == reference.n_pairs > 0
        assert score.agreement == pytest.approx(reference.agreement)
        assert score.agreement_low == pytest.approx(reference.low)
        assert score.agreement_high == pytest.approx(reference.high)
        low, mid, high = score.agreement_low, score.agreement, score.agreement_high
        assert low is not None and mid is not None and high is not None
        assert low <= mid <= high


def test_computing_the_same_run_again_does_nothing(
    project, ranked, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)
    scores_before = list(RaterScore.objects.filter(run=run).values_list("pk", flat=True))

    again = services.agreement_run_compute(run_id=run.pk)

    assert again == {"run_id": run.pk, "status": JobStatus.DONE, "skipped": True}
    after = AgreementRun.objects.get(pk=run.pk)
    assert after.finished_at == run.finished_at
    assert list(RaterScore.objects.filter(run=run).values_list("pk", flat=True)) == scores_before


def test_only_one_claim_of_a_queued_run_wins(project, ranked):
    run = services.agreement_run_request(project=project, trigger="manual")
    assert run.status == JobStatus.QUEUED  # on-commit callbacks never ran in this test

    assert jobs.job_claim(AgreementRun, job_id=run.pk) is True
    assert jobs.job_claim(AgreementRun, job_id=run.pk) is False
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING and run.started_at is not None
    assert services.agreement_run_compute(run_id=run.pk)["skipped"] is True


def test_compute_of_an_unknown_run_is_skipped():
    assert services.agreement_run_compute(run_id=987654) == {
        "run_id": 987654,
        "status": "missing",
        "skipped": True,
    }


def test_request_while_a_run_waits_in_the_queue_returns_that_run(project, ranked):
    first = services.agreement_run_request(project=project, trigger="manual")
    second = services.agreement_run_request(project=project, trigger="manual")
    assert second.pk == first.pk
    assert AgreementRun.objects.filter(project=project).count() == 1


def test_failure_marks_the_run_failed_with_the_error(
    project, ranked, monkeypatch, django_capture_on_commit_callbacks
):
    def explode(sums):
        raise ValueError("singular matrix in test")

    monkeypatch.setattr(project_stats, "project_summary", explode)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == JobStatus.FAILED
    assert run.error == "ValueError: singular matrix in test"
    assert run.finished_at is not None
    assert run.metrics == {}
    assert not RaterScore.objects.filter(run=run).exists()
    assert not PromptAgreement.objects.filter(run=run).exists()  # the parts stored them: cleared
    assert not AgreementRunPart.objects.filter(run=run).exists()
    # A failed run neither blocks nor satisfies the schedule: the rankings are still unseen.
    assert agreement_run_is_stale(project=project)


def test_a_broker_refusing_the_task_fails_the_run(
    project, ranked, monkeypatch, django_capture_on_commit_callbacks
):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.agreement_run_compute_task, "delay", refuse)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == JobStatus.FAILED
    assert "broker unreachable" in run.error


def test_project_without_rankings_gives_a_done_run_with_undefined_metrics(
    project, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == JobStatus.DONE
    assert run.n_rankings == 0 and run.metrics["pairwise_agreement"] is None
    assert not run.rater_scores.exists()


def test_beat_queues_only_projects_with_rankings_newer_than_their_last_run(
    project, ranked, crowd, lead, django_capture_on_commit_callbacks
):
    quiet = labeling_services.project_create(creator=lead, name="Quiet")  # no rankings at all

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.agreement_run_all_projects() == {"queued": 1, "abandoned": 0}
    run = AgreementRun.objects.get(project=project)
    assert run.status == JobStatus.DONE and run.trigger == "schedule"
    assert not AgreementRun.objects.filter(project=quiet).exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.agreement_run_all_projects()["queued"] == 0
    assert AgreementRun.objects.count() == 1

    # A new ranking makes the project due again.
    more = json.dumps(sample_records(1, responses=4, prefix="late"))
    labeling_services.prompts_import(project=project, raw=more)
    rank_in_turns(project, crowd[:1], seed=3)
    assert agreement_run_is_stale(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.agreement_run_all_projects()["queued"] == 1
    latest = AgreementRun.objects.filter(project=project).order_by("-id").first()
    assert latest is not None
    assert latest.status == JobStatus.DONE and latest.n_rankings == len(ranked) + 1


def test_beat_does_not_queue_while_a_run_is_pending(project, ranked):
    pending = services.agreement_run_request(project=project, trigger="manual")  # stays queued
    assert not agreement_run_is_stale(project=project)
    assert tasks.agreement_run_all_projects() == {"queued": 0, "abandoned": 0}

    assert jobs.job_claim(AgreementRun, job_id=pending.pk)  # a worker took it and beats
    assert tasks.agreement_run_all_projects()["queued"] == 0
    assert AgreementRun.objects.filter(project=project).count() == 1


def test_abandoned_runs_are_failed_and_stop_blocking_the_schedule(project, ranked, settings):
    long_ago = timezone.now() - timedelta(seconds=settings.JOB_GIVE_UP_SECONDS + 60)
    lost = services.agreement_run_request(project=project, trigger="manual")
    AgreementRun.objects.filter(pk=lost.pk).update(created_at=long_ago)
    assert agreement_run_is_stale(project=project)

    result = tasks.agreement_run_all_projects()

    assert result == {"queued": 1, "abandoned": 1}
    lost.refresh_from_db()
    assert lost.status == JobStatus.FAILED and lost.error.startswith("abandoned")
    # Its late message, if it ever arrives, changes nothing.
    assert services.agreement_run_compute(run_id=lost.pk)["skipped"] is True


def test_run_now_sends_a_queued_run_whose_message_was_lost_again(
    project, ranked, settings, django_capture_on_commit_callbacks
):
    lost = services.agreement_run_request(project=project, trigger="manual")
    waited = timezone.now() - timedelta(seconds=settings.JOB_QUEUED_SECONDS - 30)
    AgreementRun.objects.filter(pk=lost.pk).update(created_at=waited)
    with django_capture_on_commit_callbacks() as sent:
        assert services.agreement_run_request(project=project, trigger="manual").pk == lost.pk
    assert sent == []  # still waiting for its first message: nothing sent again

    overdue = timezone.now() - timedelta(seconds=settings.JOB_QUEUED_SECONDS + 1)
    AgreementRun.objects.filter(pk=lost.pk).update(created_at=overdue)
    with django_capture_on_commit_callbacks(execute=True) as sent:
        again = services.agreement_run_request(project=project, trigger="manual")

    assert again.pk == lost.pk and len(sent) == 1  # sent again at once, computed in-process
    lost.refresh_from_db()
    assert lost.status == JobStatus.DONE and lost.n_rankings == len(ranked)
    assert AgreementRun.objects.filter(project=project).count() == 1


def test_a_queued_run_the_sweep_gave_up_stops_blocking_run_now(project, ranked, settings):
    lost = services.agreement_run_request(project=project, trigger="manual")
    given_up = timezone.now() - timedelta(seconds=settings.JOB_GIVE_UP_SECONDS + 1)
    AgreementRun.objects.filter(pk=lost.pk).update(created_at=given_up)

    again = services.agreement_run_request(project=project, trigger="manual")

    assert again.pk != lost.pk and again.status == JobStatus.QUEUED
    # The sweep (beat) fails the lost one with the reason; the new one is left alone.
    assert jobs.jobs_sweep(AgreementRun).job_ids == (lost.pk,)
    lost.refresh_from_db()
    assert lost.status == JobStatus.FAILED and "never picked up" in lost.error


def test_a_running_run_whose_worker_went_silent_is_retaken_by_its_redelivered_message(
    project, ranked, settings
):
    run = services.agreement_run_request(project=project, trigger="manual")
    assert jobs.job_claim(AgreementRun, job_id=run.pk)
    silent = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1)
    AgreementRun.objects.filter(pk=run.pk).update(heartbeat_at=silent)

    result = services.agreement_run_compute(run_id=run.pk)

    run.refresh_from_db()
    assert result["status"] == JobStatus.DONE and run.status == JobStatus.DONE
    assert run.attempts == 2 and run.n_rankings == len(ranked)


def test_a_run_left_running_without_a_heartbeat_is_judged_by_its_start(project, settings):
    started = timezone.now() - timedelta(seconds=settings.JOB_GIVE_UP_SECONDS + 1)
    old = AgreementRun.objects.create(project=project, status=JobStatus.RUNNING, started_at=started)
    fresh = AgreementRun.objects.create(
        project=project, status=JobStatus.RUNNING, started_at=timezone.now()
    )

    assert jobs.jobs_sweep(AgreementRun).job_ids == (old.pk,)
    fresh.refresh_from_db()
    assert fresh.status == JobStatus.RUNNING


def test_the_run_beats_between_its_phases(project, ranked, monkeypatch):
    run = services.agreement_run_request(project=project, trigger="manual")
    beats = []
    real = jobs.job_heartbeat

    def beat(model, *, job_id, **progress):
        beats.append(job_id)
        return real(model, job_id=job_id, **progress)

    monkeypatch.setattr(jobs, "job_heartbeat", beat)

    assert services.agreement_run_compute(run_id=run.pk)["status"] == JobStatus.DONE
    # After each part of each of the two passes, and between the passes.
    assert beats == [run.pk] * 3
    run.refresh_from_db()
    assert run.started_at and run.heartbeat_at and run.finished_at
    assert run.started_at <= run.heartbeat_at <= run.finished_at


def test_agreement_runs_are_a_registered_job_kind_the_sweep_covers(project, ranked, settings):
    assert AgreementRun in [kind.model for kind in jobs.job_kinds()]
    run = services.agreement_run_request(project=project, trigger="manual")
    assert jobs.job_claim(AgreementRun, job_id=run.pk)
    silent = timezone.now() - timedelta(seconds=settings.JOB_GIVE_UP_SECONDS + 1)
    AgreementRun.objects.filter(pk=run.pk).update(heartbeat_at=silent)

    assert jobs.sweep_all_job_kinds()["rankings.AgreementRun"] == 1
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.error.startswith("abandoned")


def test_a_run_given_up_while_computing_stays_failed(project, ranked, monkeypatch):
    run = services.agreement_run_request(project=project, trigger="manual")
    real = agreement_stats.chance_from_label_totals

    def given_up_meanwhile(totals):
        AgreementRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED, error="abandoned")
        return real(totals)

    monkeypatch.setattr(agreement_stats, "chance_from_label_totals", given_up_meanwhile)

    result = services.agreement_run_compute(run_id=run.pk)

    assert result["skipped"] is True
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.metrics == {}
    assert not RaterScore.objects.filter(run=run).exists()
    assert not PromptAgreement.objects.filter(run=run).exists()


# --------------------------------------------------------------------------------------------
# Rater quality, prompt rows and findings, from data with gold prompts, repeats and seconds
# --------------------------------------------------------------------------------------------


@pytest.fixture
def quality_ranked(project, crowd) -> list[Ranking]:
    """Six prompts and two gold prompts of four responses; repeats; seconds on most rankings."""
    labeling_services.project_update(project=project, overlap=3, gold_rate=0.5)
    records = sample_records(6, responses=4)
    gold = sample_records(2, responses=4, prefix="gold")
    for record in gold:
        record["gold_ranking"] = [[2], [0, 1], [3]]
    labeling_services.prompts_import(project=project, raw=json.dumps(records + gold))
    ranked = rank_in_turns(project, crowd, seed=11)
    repeats = [rank_again_as_repeat(ranking) for ranking in ranked[::4]]
    for index, ranking in enumerate([*ranked, *repeats]):
        if index % 5:
            Ranking.objects.filter(pk=ranking.pk).update(seconds=10.0 + (index * 7) % 23)
    return ranked + repeats


def reference_data(project: Project, excluded: tuple[int, ...] = ()):
    """Table and context built straight from the ORM objects, raters by first appearance."""
    rankings = list(
        Ranking.objects.filter(project=project)
        .exclude(rater_id__in=excluded)
        .select_related("assignment")
        .order_by("id")
    )
    responses = list(
        Response.objects.filter(prompt__project=project).values_list(
            "pk", "prompt_id", "position", "text"
        )
    )
    slot_of = {pk: position for pk, _, position, _ in responses}
    k_max = max(slot_of.values()) + 1
    prompt_of: dict[int, int] = {}
    rater_of: dict[int, int] = {}
    for ranking in rankings:
        prompt_of.setdefault(ranking.prompt_id, len(prompt_of))
        rater_of.setdefault(ranking.rater_id, len(rater_of))
    lengths = np.full((len(prompt_of), k_max), np.nan)
    for _, prompt_id, position, text in responses:
        if prompt_id in prompt_of:
            lengths[prompt_of[prompt_id], position] = len(text)
    gold_ranks = np.full((len(prompt_of), k_max), np.nan)
    for prompt in Prompt.objects.filter(project=project, is_gold=True):
        if prompt.pk in prompt_of:
            gold_ranks[prompt_of[prompt.pk]] = ranks_from_groups(
                prompt.gold_ranking or [], slot_of, k_max
            )
    shown_slots = np.full((len(rankings), k_max), -1, dtype=np.int8)
    for row, ranking in enumerate(rankings):
        slots = [slot_of[int(pk)] for pk in ranking.assignment.shown_order]
        shown_slots[row, : len(slots)] = slots
    table = RankingTable(
        prompt_index=np.array([prompt_of[r.prompt_id] for r in rankings]),
        rater_index=np.array([rater_of[r.rater_id] for r in rankings]),
        ranks=np.array([ranks_from_groups(r.groups, slot_of, k_max) for r in rankings]),
    )
    context = RankingContext(
        is_repeat=np.array([r.is_repeat for r in rankings]),
        shown_slots=shown_slots,
        seconds=np.array([np.nan if r.seconds is None else r.seconds for r in rankings]),
        gold_ranks=gold_ranks,
        response_length=lengths,
    )
    return table, context, list(rater_of)


def test_rater_scores_carry_every_quality_statistic(
    project, quality_ranked, crowd, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)
    assert run.status == JobStatus.DONE, run.error

    table, context, rater_ids = reference_data(project)
    expected = {rater_ids[q.rater_index]: q for q in rater_quality(table, context)}
    scores = {score.rater_id: score for score in RaterScore.objects.filter(run=run)}
    assert scores.keys() == {user.pk for user in crowd}
    assert sum(q.repeat_rankings for q in expected.values()) > 0
    assert sum(q.gold_rankings for q in expected.values()) > 0
    for rater_id, score in scores.items():
        quality = expected[rater_id]
        for name in (
            "gold_accuracy", "self_consistency", "first_shown_win_rate", "position_p_value",
            "straight_lining_rate", "median_seconds", "speed_ratio", "tie_rate",
            "longer_win_rate",
        ):  # fmt: skip
            value = getattr(quality, name)
            stored = getattr(score, name)
            assert stored == (value if value is None else pytest.approx(value)), name
        assert score.gold_pairs == quality.gold_pairs
        assert score.repeat_pairs == quality.repeat_pairs
        assert score.position_pairs == quality.position_pairs
        for name in ("gold_rankings", "repeat_rankings", "straight_lined", "timed_rankings",
                     "labelled_pairs", "length_pairs"):  # fmt: skip
            assert getattr(score, name) == getattr(quality, name), name
        assert score.straight_lining_chance == pytest.approx(quality.straight_lining_chance)
        assert score.reliability_weight is not None
        assert 0.05 <= score.reliability_weight <= 1.0


def test_gold_prompts_count_in_agreement_and_repeats_do_not(
    project, quality_ranked, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)

    counted = [r for r in quality_ranked if not r.is_repeat]
    assert any(r.prompt.is_gold for r in counted)
    table, _ = reference_table(counted)
    assert_same_summary(run.metrics, project_agreement(table))
    assert run.n_rankings == len(counted)


def brute_force_prompt_agreement(rankings: list[Ranking]) -> float | None:
    labels: dict[tuple[int, int], list[int]] = {}
    for ranking in rankings:
        level = {pk: g for g, group in enumerate(ranking.groups) for pk in group}
        for a, b in itertools.combinations(sorted(level), 2):
            labels.setdefault((a, b), []).append((level[a] > level[b]) - (level[a] < level[b]))
    agree = total = 0
    for values in labels.values():
        for x, y in itertools.combinations(values, 2):
            total += 1
            agree += x == y
    return agree / total if total else None


def test_one_prompt_row_per_prompt_with_agreement_and_consensus(
    project, quality_ranked, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)

    rows = {row.prompt_id: row for row in PromptAgreement.objects.filter(run=run)}
    counted = [r for r in quality_ranked if not r.is_repeat]
    by_prompt: dict[int, list[Ranking]] = {}
    for ranking in counted:
        by_prompt.setdefault(ranking.prompt_id, []).append(ranking)
    assert rows.keys() == by_prompt.keys()
    weights: dict[int, float] = {}
    for score in RaterScore.objects.filter(run=run):
        assert score.reliability_weight is not None
        weights[score.rater_id] = score.reliability_weight
    for prompt_id, rankings in by_prompt.items():
        row = rows[prompt_id]
        assert row.n_rankings == len(rankings)
        expected = brute_force_prompt_agreement(rankings)
        assert row.agreement == (expected if expected is None else pytest.approx(expected))
        reference = consensus.consensus_ranking(
            [r.groups for r in rankings],
            weights=[weights[r.rater_id] for r in rankings],
        )
        assert [sorted(group) for group in row.consensus] == [
            sorted(group) for group in reference.groups
        ]
        assert row.scores == {
            str(pk): pytest.approx(score, abs=1e-4) for pk, score in reference.scores.items()
        }
        assert row.method == "bradley_terry"


@pytest.mark.postgresql("COPY is the PostgreSQL path")
def test_copy_rows_are_the_python_rows(project, quality_ranked):
    run = services.agreement_run_request(project=project, trigger="manual")  # stays queued
    data = run_data.agreement_data(project=project)
    run_maths = maths.agreement_maths(data)
    with transaction.atomic():
        prompt_agreements_store(run_id=run.pk, data=data, part=maths.prompt_maths(data))
    stored = {
        row.prompt_id: (row.n_rankings, row.agreement, row.consensus, row.scores, row.method)
        for row in PromptAgreement.objects.filter(run=run)
    }
    expected = {
        prompt_id: (n, agreement, groups, scores, method)
        for _, prompt_id, n, agreement, groups, scores, method in storage.prompt_agreement_rows(
            run_id=run.pk, data=data, prompts=run_maths.prompts, result=run_maths.consensus
        )
    }
    assert stored == expected


def stored_prompt_rows(run: AgreementRun) -> dict[int, tuple]:
    return {
        row.prompt_id: (row.n_rankings, row.agreement, row.consensus, row.scores, row.method)
        for row in PromptAgreement.objects.filter(run=run)
    }


@pytest.mark.postgresql("compares COPY with the portable INSERTs")
def test_copy_and_the_portable_inserts_store_the_same_rows(project, quality_ranked):
    data = run_data.agreement_data(project=project)
    part = maths.prompt_maths(data)
    copied_run, inserted_run = (
        AgreementRun.objects.create(project=project, trigger="manual") for _ in range(2)
    )
    with transaction.atomic():
        copied = prompt_agreements_store(run_id=copied_run.pk, data=data, part=part)
        inserted = prompt_agreements_store(
            run_id=inserted_run.pk, data=data, part=part, portable=True
        )

    assert stored_prompt_rows(copied_run) == stored_prompt_rows(inserted_run)
    assert len(stored_prompt_rows(copied_run)) == len(data.prompt_ids)
    for name in ("levels", "strength", "agreement", "n_rankings"):
        np.testing.assert_array_equal(getattr(copied, name), getattr(inserted, name))


def test_findings_are_applied_once_the_run_is_stored(
    project, ranked, monkeypatch, django_capture_on_commit_callbacks
):
    seen = []

    def record(*, run):
        seen.append((run.pk, run.status, PromptAgreement.objects.filter(run=run).count()))
        return {"flags_opened": 2}

    monkeypatch.setattr(findings, "apply_run_findings", record)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert seen == [(run.pk, JobStatus.DONE, 8)]


def test_failing_findings_leave_the_run_done(
    project, ranked, monkeypatch, django_capture_on_commit_callbacks
):
    def explode(*, run):
        raise RuntimeError("flags are broken")

    monkeypatch.setattr(findings, "apply_run_findings", explode)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == JobStatus.DONE and run.error == ""
    assert RaterScore.objects.filter(run=run).exists()
    result = services.agreement_run_compute(run_id=run.pk)
    assert result["skipped"] is True


# --------------------------------------------------------------------------------------------
# The selector's PostgreSQL path against its ORM path
# --------------------------------------------------------------------------------------------


def assert_same_data(fast: run_data.AgreementData, slow: run_data.AgreementData) -> None:
    for name in ("prompt_index", "rater_index", "ranks"):
        np.testing.assert_array_equal(getattr(fast.table, name), getattr(slow.table, name))
    for name in ("is_repeat", "shown_slots", "seconds", "gold_ranks", "response_length"):
        np.testing.assert_array_equal(getattr(fast.context, name), getattr(slow.context, name))
    np.testing.assert_array_equal(fast.response_ids, slow.response_ids)
    np.testing.assert_array_equal(fast.prompt_ids, slow.prompt_ids)
    np.testing.assert_array_equal(fast.ranking_ids, slow.ranking_ids)
    assert fast.rater_user_ids == slow.rater_user_ids


def orm_data(project: Project, up_to_id: int | None = None) -> run_data.AgreementData:
    return run_data.agreement_data(project=project, up_to_id=up_to_id, portable=True)


@pytest.mark.postgresql("compares the PostgreSQL fast path with the ORM one")
def test_postgresql_reading_matches_the_orm_reading(project, quality_ranked, crowd):
    labeling_services.member_update(project=project, username=crowd[2].username, excluded=True)
    cutoff = sorted(r.pk for r in quality_ranked)[-3]

    for up_to_id in (None, cutoff):
        fast = run_data.agreement_data(project=project, up_to_id=up_to_id)
        assert_same_data(fast, orm_data(project, up_to_id))
    assert crowd[2].pk not in fast.rater_user_ids
    context = fast.context
    assert context.is_repeat is not None and context.gold_ranks is not None
    assert context.seconds is not None and context.shown_slots is not None
    assert context.is_repeat.any() and not np.isnan(context.gold_ranks).all()
    assert np.isnan(context.seconds).any() and bool(np.all(context.shown_slots >= 0))


@pytest.mark.postgresql("compares the PostgreSQL fast path with the ORM one")
@pytest.mark.django_db(transaction=True)
def test_parallel_reading_outside_a_transaction_matches(project, crowd):
    labeling_services.project_update(project=project, overlap=2)
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(5, responses=3))
    )
    rank_in_turns(project, crowd, seed=2)
    assert not connection.in_atomic_block

    assert_same_data(run_data.agreement_data(project=project), orm_data(project))


def test_lists_split_the_bytes_by_each_rows_count():
    entries = np.array(
        [(12, 1), (11, 2), (13, 2), (7, 1), (5, 1), (6, 2)], dtype=postgresql._GROUP_ENTRY
    )
    lists = postgresql._lists(
        np.array([3, 0, 1, 2], dtype=">i2"), entries.tobytes(), postgresql._GROUP_ENTRY
    )
    assert lists.n_lines == 4
    assert lists.matrix(lists.entries["id"], -1, np.int64).tolist() == [
        [12, 11, 13],
        [-1, -1, -1],
        [7, -1, -1],
        [5, 6, -1],
    ]
    assert lists.matrix(lists.entries["level"], 0, np.int8).tolist() == [
        [1, 2, 2],
        [0, 0, 0],
        [1, 0, 0],
        [1, 2, 0],
    ]
    empty = postgresql._lists(np.zeros(0, dtype=">i2"), b"", postgresql._SHOWN_ENTRY)
    assert empty.n_lines == 0 and empty.matrix(empty.entries, -1, np.int64).shape == (0, 0)
    with pytest.raises(RuntimeError, match="do not match"):
        postgresql._lists(
            np.array([2], dtype=">i2"), entries[:1].tobytes(), postgresql._GROUP_ENTRY
        )


def raw_by_ranking_id(raw) -> dict[str, np.ndarray]:
    order = np.argsort(raw.ranking_ids)
    return {
        "ranking_ids": raw.ranking_ids[order],
        "group_ids": raw.group_ids[order],
        "group_levels": raw.group_levels[order],
        "shown_ids": raw.shown_ids(order),
    }


@pytest.mark.postgresql("the binary lists are PostgreSQL's generated columns")
def test_the_binary_lists_follow_every_write_of_the_json(project, ranked):
    first, second, third = ranked[:3]
    ids = [int(item) for group in first.groups for item in group]
    # An edit (as an undo and resubmit writes it), ids written as strings, an empty group,
    # a shown order rewritten: what the reader gets follows each one.
    Ranking.objects.filter(pk=first.pk).update(groups=[[ids[3]], [ids[0], ids[2]], [ids[1]]])
    second_ids = [int(item) for group in second.groups for item in group]
    Ranking.objects.filter(pk=second.pk).update(
        groups=[[str(second_ids[0])], [], [str(item) for item in second_ids[1:]]]
    )
    shown = Assignment.objects.get(pk=third.assignment_id).shown_order
    Assignment.objects.filter(pk=third.assignment_id).update(shown_order=shown[::-1])

    fast = raw_by_ranking_id(postgresql.read_rankings(project=project, up_to_id=None, excluded=[]))
    slow = raw_by_ranking_id(portable.read_rankings(project=project, up_to_id=None, excluded=[]))
    for name, values in slow.items():
        np.testing.assert_array_equal(fast[name], values, err_msg=name)
    row = int(np.flatnonzero(fast["ranking_ids"] == second.pk)[0])
    assert fast["group_levels"][row].tolist() == [1, 3, 3, 3]
    assert fast["group_ids"][row].tolist() == second_ids
    row = int(np.flatnonzero(fast["ranking_ids"] == third.pk)[0])
    assert fast["shown_ids"][row].tolist() == [int(item) for item in shown[::-1]]


@pytest.mark.postgresql("the binary lists are PostgreSQL's generated columns")
def test_a_malformed_list_never_fails_a_write_and_reads_as_no_response(project, ranked):
    ranking = ranked[0]
    written = {
        '{"best": 7}': [],
        "[7, [8]]": [(8, 2)],
        '[[1.5, null, "x", -4], [7]]': [(-1, 1), (-1, 1), (-1, 1), (-1, 1), (7, 2)],
    }
    for groups, expected in written.items():
        Ranking.objects.filter(pk=ranking.pk).update(groups=json.loads(groups))
        with connection.cursor() as cursor:
            cursor.execute("SELECT groups_record FROM rankings_ranking WHERE id = %s", [ranking.pk])
            (record,) = cursor.fetchone()
        entries = np.frombuffer(bytes(record), dtype=postgresql._GROUP_ENTRY)
        pairs = zip(entries["id"].tolist(), entries["level"].tolist(), strict=True)
        assert list(pairs) == expected, groups
    Assignment.objects.filter(pk=ranking.assignment_id).update(shown_order={"not": "a list"})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT shown_record FROM labeling_assignment WHERE id = %s", [ranking.assignment_id]
        )
        assert bytes(cursor.fetchone()[0]) == b""


@pytest.mark.django_db
def test_prompt_rows_are_kept_for_the_two_newest_runs_only(lead):
    project = labeling_services.project_create(creator=lead, name="Prune")
    other = labeling_services.project_create(creator=lead, name="Another project")
    # Another project's oldest run comes first: its rows are not this project's to drop.
    others_run = AgreementRun.objects.create(project=other, status="done")
    runs = [AgreementRun.objects.create(project=project, status="done") for _ in range(4)]
    prompt = Prompt.objects.create(project=project, messages=[{"role": "user", "content": "x"}])
    messages = [{"role": "user", "content": "y"}]
    others_prompt = Prompt.objects.create(project=other, messages=messages)
    PromptAgreement.objects.create(run=others_run, prompt=others_prompt)
    for run in runs:
        PromptAgreement.objects.create(run=run, prompt=prompt)
    assert storage.prompt_agreements_prune(project_id=project.pk) == 2
    kept = set(PromptAgreement.objects.values_list("run_id", flat=True))
    assert kept == {others_run.pk, runs[2].pk, runs[3].pk}
    assert storage.prompt_agreements_prune(project_id=project.pk) == 0


@pytest.mark.django_db
def test_a_deleted_prompts_rows_go_with_it_and_no_other(lead):
    """The prompt rows have no index on the prompt alone: the cascade still finds them."""
    project = labeling_services.project_create(creator=lead, name="Cascade")
    runs = [AgreementRun.objects.create(project=project, status="done") for _ in range(2)]
    prompts = [
        Prompt.objects.create(project=project, messages=[{"role": "user", "content": str(n)}])
        for n in range(3)
    ]
    for run in runs:
        for prompt in prompts:
            PromptAgreement.objects.create(run=run, prompt=prompt)
    Prompt.objects.filter(pk__in=[prompts[0].pk, prompts[2].pk]).delete()
    left = set(PromptAgreement.objects.values_list("run_id", "prompt_id"))
    assert left == {(run.pk, prompts[1].pk) for run in runs}
