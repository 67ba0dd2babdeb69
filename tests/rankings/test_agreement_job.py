"""The agreement job: request, claim, compute, store, schedule; checked against rankings.metrics."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import Project
from rankings import metrics, selectors, services, tasks
from rankings.models import AgreementRun, Ranking, RaterScore, RunStatus
from tests.conftest import sample_records
from tests.rankings.agreement_helpers import (
    eager_tasks,
    rank_again_as_repeat,
    rank_in_turns,
    reference_table,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager():
    with eager_tasks():
        yield


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Every fixture user is created with a password; PBKDF2 would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def crowd(make_user, add_member):
    return [add_member(make_user(f"crowd{index}")) for index in range(4)]


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

    assert run.status == RunStatus.DONE
    assert run.error == ""
    assert run.started_at is not None and run.finished_at >= run.started_at
    table, _ = reference_table(ranked)
    expected = metrics.project_agreement(table)
    assert_same_summary(run.metrics, expected)
    assert run.n_rankings == len(ranked) == 24
    assert run.n_prompts == 8
    assert run.metrics["n_raters"] == 4
    assert run.last_ranking_id == max(ranking.pk for ranking in ranked)
    # Noisy raters: agreement is informative, neither perfect nor absent.
    assert 0.3 < run.metrics["pairwise_agreement"] < 1.0
    assert run.metrics["alpha_ordinal"] is not None


def test_ranking_table_has_one_row_per_ranking_with_dense_indices(project, ranked, crowd):
    table, rater_user_ids = selectors.ranking_table(project=project)

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
    expected_row = [levels[response_id] for response_id in sorted(levels, key=positions.get)]
    assert table.ranks[0].tolist() == expected_row
    assert rater_user_ids[table.rater_index[0]] == first.rater_id


def test_ranking_table_stops_at_the_given_ranking(project, ranked):
    cutoff = ranked[9].pk
    table, _ = selectors.ranking_table(project=project, up_to_id=cutoff)
    assert table.n_rankings == 10


def test_excluded_raters_are_left_out(project, ranked, crowd, django_capture_on_commit_callbacks):
    left_out = crowd[1]
    labeling_services.member_update(project=project, username=left_out.username, excluded=True)

    run = run_now(project, django_capture_on_commit_callbacks)

    kept = [ranking for ranking in ranked if ranking.rater_id != left_out.pk]
    table, _ = reference_table(kept)
    assert_same_summary(run.metrics, metrics.project_agreement(table))
    assert run.n_rankings == len(kept) < len(ranked)
    assert run.metrics["n_raters"] == 3
    scored = set(run.rater_scores.values_list("rater_id", flat=True))
    assert scored == {user.pk for user in crowd} - {left_out.pk}


def test_repeats_are_left_out(project, ranked, django_capture_on_commit_callbacks):
    repeats = [rank_again_as_repeat(ranked[0]), rank_again_as_repeat(ranked[5])]
    assert all(repeat.is_repeat for repeat in repeats)

    run = run_now(project, django_capture_on_commit_callbacks)

    table, _ = reference_table(ranked)
    assert_same_summary(run.metrics, metrics.project_agreement(table))
    assert run.n_rankings == len(ranked)
    # The metrics keep one ranking per rater and prompt anyway; the table must not even
    # contain the repeats.
    assert selectors.ranking_table(project=project)[0].n_rankings == len(ranked)
    repeater = run.rater_scores.get(rater_id=ranked[0].rater_id)
    assert repeater.rankings == sum(1 for r in ranked if r.rater_id == ranked[0].rater_id)


def test_each_rater_gets_a_score_row_with_counts(
    project, ranked, crowd, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)

    table, rater_ids = reference_table(ranked)
    expected = {
        rater_ids[row.rater_index]: row for row in metrics.rater_leave_one_out_agreement(table)
    }
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
        assert score.agreement_low <= score.agreement <= score.agreement_high


def test_computing_the_same_run_again_does_nothing(
    project, ranked, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)
    scores_before = list(RaterScore.objects.filter(run=run).values_list("pk", flat=True))

    again = services.agreement_run_compute(run_id=run.pk)

    assert again == {"run_id": run.pk, "status": RunStatus.DONE, "skipped": True}
    after = AgreementRun.objects.get(pk=run.pk)
    assert after.finished_at == run.finished_at
    assert list(RaterScore.objects.filter(run=run).values_list("pk", flat=True)) == scores_before


def test_only_one_claim_of_a_queued_run_wins(project, ranked):
    run = services.agreement_run_request(project=project, trigger="manual")
    assert run.status == RunStatus.QUEUED  # on-commit callbacks never ran in this test

    assert services.agreement_run_claim(run_id=run.pk) is True
    assert services.agreement_run_claim(run_id=run.pk) is False
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.started_at is not None
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
    def explode(table):
        raise ValueError("singular matrix in test")

    monkeypatch.setattr(metrics, "project_agreement", explode)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == RunStatus.FAILED
    assert run.error == "ValueError: singular matrix in test"
    assert run.finished_at is not None
    assert run.metrics == {}
    assert not RaterScore.objects.filter(run=run).exists()
    # A failed run neither blocks nor satisfies the schedule: the rankings are still unseen.
    assert services.agreement_run_is_stale(project=project)


def test_a_broker_refusing_the_task_fails_the_run(
    project, ranked, monkeypatch, django_capture_on_commit_callbacks
):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.agreement_run_compute_task, "delay", refuse)

    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == RunStatus.FAILED
    assert "broker unreachable" in run.error


def test_project_without_rankings_gives_a_done_run_with_undefined_metrics(
    project, django_capture_on_commit_callbacks
):
    run = run_now(project, django_capture_on_commit_callbacks)

    assert run.status == RunStatus.DONE
    assert run.n_rankings == 0 and run.metrics["pairwise_agreement"] is None
    assert not run.rater_scores.exists()


def test_beat_queues_only_projects_with_rankings_newer_than_their_last_run(
    project, ranked, crowd, lead, django_capture_on_commit_callbacks
):
    quiet = labeling_services.project_create(creator=lead, name="Quiet")  # no rankings at all

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.agreement_run_all_projects() == {"queued": 1, "abandoned": 0}
    run = AgreementRun.objects.get(project=project)
    assert run.status == RunStatus.DONE and run.trigger == "schedule"
    assert not AgreementRun.objects.filter(project=quiet).exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.agreement_run_all_projects()["queued"] == 0
    assert AgreementRun.objects.count() == 1

    # A new ranking makes the project due again.
    more = json.dumps(sample_records(1, responses=4, prefix="late"))
    labeling_services.prompts_import(project=project, raw=more)
    rank_in_turns(project, crowd[:1], seed=3)
    assert services.agreement_run_is_stale(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.agreement_run_all_projects()["queued"] == 1
    latest = AgreementRun.objects.filter(project=project).order_by("-id").first()
    assert latest.status == RunStatus.DONE and latest.n_rankings == len(ranked) + 1


def test_beat_does_not_queue_while_a_run_is_pending(project, ranked):
    pending = services.agreement_run_request(project=project, trigger="manual")  # stays queued
    assert not services.agreement_run_is_stale(project=project)
    assert tasks.agreement_run_all_projects() == {"queued": 0, "abandoned": 0}

    AgreementRun.objects.filter(pk=pending.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    assert tasks.agreement_run_all_projects()["queued"] == 0
    assert AgreementRun.objects.filter(project=project).count() == 1


def test_abandoned_runs_are_failed_and_stop_blocking_the_schedule(project, ranked, settings):
    long_ago = timezone.now() - timedelta(seconds=3 * settings.CELERY_TASK_TIME_LIMIT)
    lost = services.agreement_run_request(project=project, trigger="manual")
    AgreementRun.objects.filter(pk=lost.pk).update(created_at=long_ago)
    assert services.agreement_run_is_stale(project=project)

    result = tasks.agreement_run_all_projects()

    assert result == {"queued": 1, "abandoned": 1}
    lost.refresh_from_db()
    assert lost.status == RunStatus.FAILED and lost.error.startswith("abandoned")
    # Its late message, if it ever arrives, changes nothing.
    assert services.agreement_run_compute(run_id=lost.pk)["skipped"] is True


def test_a_run_given_up_while_computing_stays_failed(project, ranked, monkeypatch):
    run = services.agreement_run_request(project=project, trigger="manual")
    real = metrics.project_agreement

    def given_up_meanwhile(table):
        AgreementRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error="abandoned")
        return real(table)

    monkeypatch.setattr(metrics, "project_agreement", given_up_meanwhile)

    result = services.agreement_run_compute(run_id=run.pk)

    assert result["skipped"] is True
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.metrics == {}
    assert not RaterScore.objects.filter(run=run).exists()
