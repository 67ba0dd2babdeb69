"""GET|POST /api/projects/{id}/agreement/: latest run flattened, history, run now, who may."""

from __future__ import annotations

import json

import pytest

from core.jobs import JobStatus
from labeling import services as labeling_services
from rankings.models import AgreementRun
from rankings.runs import services
from rankings.stats.project import PROJECT_STATISTICS
from tests.exports.broker import broker_refusing
from tests.helpers import sample_records
from tests.rankings.agreement_helpers import rank_in_turns

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


@pytest.fixture
def ranked(project, crowd):
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(4)))
    return rank_in_turns(project, crowd, seed=11)


def url(project) -> str:
    return f"/api/projects/{project.pk}/agreement/"


def finished_run(project, capture) -> AgreementRun:
    with capture(execute=True):
        run = services.agreement_run_request(project=project, trigger="manual")
    run.refresh_from_db()
    assert run.status == JobStatus.DONE
    return run


def test_get_before_any_run_has_no_latest_and_no_history(api_for, lead, project):
    response = api_for(lead).get(url(project))
    assert response.status_code == 200
    assert response.json() == {"latest": None, "history": []}


def test_get_returns_the_latest_run_flattened_with_its_history(
    api_for, lead, project, ranked, crowd, django_capture_on_commit_callbacks
):
    older = finished_run(project, django_capture_on_commit_callbacks)
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(1, prefix="more"))
    )
    rank_in_turns(project, crowd, seed=12)
    newer = finished_run(project, django_capture_on_commit_callbacks)

    body = api_for(lead).get(url(project)).json()

    latest = body["latest"]
    assert latest["id"] == newer.pk and latest["status"] == "done"
    assert latest["trigger"] == "manual" and latest["finished_at"]
    for key in (
        "pairwise_agreement",
        "pairwise_agreement_no_ties",
        "kappa",
        "alpha_ordinal",
        "kendall_w",
    ):
        assert latest[key] == pytest.approx(newer.metrics[key]), key
    for key in PROJECT_STATISTICS:
        assert latest[f"{key}_n_units"] == newer.metrics[f"{key}_n_units"]
        assert latest[f"{key}_n_pairs"] == newer.metrics[f"{key}_n_pairs"]
    assert latest["n_prompts"] == newer.n_prompts == 5
    assert latest["n_rankings"] == newer.n_rankings == len(ranked) + 2
    assert latest["n_raters"] == 3
    assert "metrics" not in latest
    assert [run["id"] for run in body["history"]] == [newer.pk, older.pk]
    assert body["history"][1]["n_rankings"] == older.n_rankings == len(ranked)


def test_history_leaves_out_failed_and_pending_runs(
    api_for, lead, project, ranked, django_capture_on_commit_callbacks
):
    done = finished_run(project, django_capture_on_commit_callbacks)
    AgreementRun.objects.create(project=project, status=JobStatus.FAILED, error="boom")
    AgreementRun.objects.create(project=project)  # queued

    body = api_for(lead).get(url(project)).json()

    assert body["latest"]["id"] == done.pk
    assert [run["id"] for run in body["history"]] == [done.pk]


def test_post_queues_a_run_and_answers_202(
    api_for, lead, project, ranked, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(lead).post(url(project))

    assert response.status_code == 202
    run = AgreementRun.objects.get(pk=response.json()["run_id"])
    assert run.project_id == project.pk and run.trigger == "manual"
    assert run.status == JobStatus.DONE  # eager: computed as soon as the request committed
    assert api_for(lead).get(url(project)).json()["latest"]["id"] == run.pk


@pytest.mark.django_db(transaction=True)
def test_post_in_eager_mode_answers_with_the_finished_run(api_for, lead, project, ranked):
    response = api_for(lead).post(url(project))

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "done"
    assert AgreementRun.objects.get(pk=body["run_id"]).n_rankings == len(ranked)


@pytest.mark.django_db(transaction=True)
def test_post_while_the_broker_is_down_answers_503_with_the_run_failed(api_for, lead, project):
    with broker_refusing():
        response = api_for(lead).post(url(project))

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "not_queued" and "could not queue the agreement run" in body["detail"]
    run = AgreementRun.objects.get(project=project)
    assert run.status == JobStatus.FAILED and run.error.startswith("could not queue the job")


@pytest.mark.django_db(transaction=True)
def test_run_now_on_the_quality_page_while_the_broker_is_down_shows_why(client, lead, project):
    client.force_login(lead)

    with broker_refusing():
        response = client.post(f"/rate/{project.pk}/quality/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert 'data-run-status="failed"' in response.text
    assert "could not queue the job" in response.text


def test_engineer_may_read_and_run(api_for, engineer, project, ranked):
    client = api_for(engineer)
    assert client.get(url(project)).status_code == 200
    assert client.post(url(project)).status_code == 202


def test_staff_act_as_lead(api_for, make_user, project, ranked):
    staff = make_user("staff", is_staff=True)
    assert api_for(staff).get(url(project)).status_code == 200
    assert api_for(staff).post(url(project)).status_code == 202


def test_rater_gets_403(api_for, rater, project, ranked):
    client = api_for(rater)
    for response in (client.get(url(project)), client.post(url(project))):
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
    assert not AgreementRun.objects.exists()


def test_outsider_gets_404(api_for, outsider, project, ranked):
    client = api_for(outsider)
    for response in (client.get(url(project)), client.post(url(project))):
        assert response.status_code == 404
    assert api_for(outsider).get("/api/projects/999999/agreement/").status_code == 404
    assert not AgreementRun.objects.exists()


def test_anonymous_is_refused(client, project):
    assert client.get(url(project)).status_code in (401, 403)


def test_schema_documents_the_flattened_statistics(api_for, lead):
    schema = api_for(lead).get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    text = schema.content.decode()
    for key in ("pairwise_agreement_no_ties", "kappa_n_units", "alpha_ordinal", "kendall_w"):
        assert f'"{key}"' in text
