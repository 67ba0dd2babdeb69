"""The lead's quality page at /rate/<project_id>/quality/ and its trend chart helper."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from labeling import services as labeling_services
from rankings import services
from rankings.models import AgreementRun, RaterScore, RunStatus
from rankings.quality_views import history_chart
from tests.conftest import sample_records
from tests.rankings.agreement_helpers import eager_tasks, rank_in_turns

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager():
    with eager_tasks():
        yield


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def crowd(make_user, add_member):
    return [add_member(make_user(f"crowd{index}")) for index in range(3)]


@pytest.fixture
def ranked(project, crowd):
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(6)))
    return rank_in_turns(project, crowd, seed=21)


@pytest.fixture
def finished_run(project, ranked, django_capture_on_commit_callbacks) -> AgreementRun:
    with django_capture_on_commit_callbacks(execute=True):
        run = services.agreement_run_request(project=project, trigger="manual")
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    return run


def page_url(project) -> str:
    return reverse("rankings:quality", args=[project.pk])


def test_url_is_under_rate(project):
    assert page_url(project) == f"/rate/{project.pk}/quality/"


def test_lead_sees_the_latest_metrics_with_their_counts(client, lead, project, finished_run):
    client.force_login(lead)
    response = client.get(page_url(project))

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'id="metrics"' in html
    assert f"{finished_run.metrics['pairwise_agreement']:.3f}" in html
    assert f"{finished_run.metrics['pairwise_agreement_n_units']} response pairs" in html
    assert f"{finished_run.metrics['alpha_ordinal_n_units']} responses" in html
    assert f"{finished_run.n_rankings} rankings by 3 raters" in html
    rows = {row.key: row for row in response.context["statistics"]}
    assert rows["kappa"].value == finished_run.metrics["kappa"]
    assert rows["kendall_w"].n_units == finished_run.metrics["kendall_w_n_units"]


def test_rater_table_shows_each_rater_with_rankings_and_interval(
    client, lead, project, finished_run, crowd
):
    client.force_login(lead)
    response = client.get(page_url(project))

    html = response.content.decode()
    scores = list(RaterScore.objects.filter(run=finished_run))
    assert len(scores) == 3
    for score in scores:
        assert f'data-rater="{score.rater.username}"' in html
        assert f"{score.agreement:.3f}" in html
        assert f"{score.agreement_low:.3f} \u2013 {score.agreement_high:.3f}" in html
    shown = [score.rater.username for score in response.context["rater_scores"]]
    assert sorted(shown) == sorted(user.username for user in crowd)
    agreements = [score.agreement for score in response.context["rater_scores"]]
    assert agreements == sorted(agreements)  # lowest agreement first


def test_chart_draws_agreement_and_alpha_over_the_runs(
    client, lead, project, finished_run, django_capture_on_commit_callbacks
):
    AgreementRun.objects.filter(pk=finished_run.pk).update(last_ranking_id=0)  # seen nothing
    with django_capture_on_commit_callbacks(execute=True):
        services.agreement_run_request(project=project, trigger="manual")
    client.force_login(lead)

    html = client.get(page_url(project)).content.decode()

    assert "<svg" in html and "data-trend-chart" in html
    assert 'data-series="pairwise_agreement"' in html and 'data-series="alpha_ordinal"' in html
    assert html.count("<polyline") == 2  # two runs: one line per series
    assert "<script" not in html.split('id="metrics"')[1]


def test_page_before_any_run_says_none_has_finished(client, lead, project):
    client.force_login(lead)
    response = client.get(page_url(project))
    assert response.status_code == 200
    assert "No agreement run has finished yet" in response.content.decode()


def test_failed_run_shows_its_error(client, lead, project, finished_run):
    AgreementRun.objects.create(
        project=project, status=RunStatus.FAILED, error="ValueError: bad data"
    )
    client.force_login(lead)
    html = client.get(page_url(project)).content.decode()
    assert "The last run failed: ValueError: bad data" in html
    assert f"{finished_run.metrics['pairwise_agreement']:.3f}" in html  # last good run stays


def test_engineer_and_staff_may_see_it(client, engineer, make_user, project):
    client.force_login(engineer)
    assert client.get(page_url(project)).status_code == 200
    client.force_login(make_user("staff", is_staff=True))
    assert client.get(page_url(project)).status_code == 200


def test_rater_gets_403(client, rater, project):
    client.force_login(rater)
    assert client.get(page_url(project)).status_code == 403
    assert client.post(page_url(project)).status_code == 403
    assert not AgreementRun.objects.exists()


def test_outsider_gets_404(client, outsider, project):
    client.force_login(outsider)
    assert client.get(page_url(project)).status_code == 404
    assert client.post(page_url(project)).status_code == 404
    assert client.get(reverse("rankings:quality", args=[987654])).status_code == 404


def test_anonymous_is_sent_to_log_in(client, project):
    response = client.get(page_url(project))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_run_now_with_htmx_queues_a_run_and_answers_with_the_fragment(client, lead, project):
    client.force_login(lead)

    response = client.post(page_url(project), headers={"HX-Request": "true"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and html.lstrip().startswith('<section id="metrics"')
    run = AgreementRun.objects.get(project=project)
    assert run.trigger == "manual"
    # Its enqueue waits for the commit this test never makes, so the fragment polls.
    assert f"Run {run.pk} is queued" in html and 'hx-trigger="every 3s"' in html


@pytest.mark.django_db(transaction=True)
def test_run_now_in_eager_mode_answers_with_the_new_metrics(client, lead, project, ranked):
    client.force_login(lead)

    response = client.post(page_url(project), headers={"HX-Request": "true"})

    run = AgreementRun.objects.get(project=project)
    assert run.status == RunStatus.DONE
    html = response.content.decode()
    assert f"Run {run.pk}, finished" in html
    assert f"{run.metrics['pairwise_agreement']:.3f}" in html
    assert "every 3s" not in html


def test_run_now_without_javascript_redirects_back(client, lead, project):
    client.force_login(lead)
    response = client.post(page_url(project))
    assert response.status_code == 302 and response["Location"] == page_url(project)
    assert AgreementRun.objects.filter(project=project).count() == 1


def test_htmx_poll_gets_only_the_fragment(client, lead, project, finished_run):
    client.force_login(lead)
    response = client.get(page_url(project), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "<html" not in html and 'id="metrics"' in html


def test_page_queries_do_not_grow_with_raters(
    client,
    lead,
    project,
    make_user,
    add_member,
    django_capture_on_commit_callbacks,
    django_assert_max_num_queries,
):
    many = [add_member(make_user(f"many{index}")) for index in range(8)]
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(8)))
    rank_in_turns(project, many, seed=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.agreement_run_request(project=project, trigger="manual")
    assert RaterScore.objects.count() == 8
    client.force_login(lead)

    # Session, user, project, membership, history, newest run, rater scores with usernames.
    with django_assert_max_num_queries(7):
        response = client.get(page_url(project))
    assert response.status_code == 200


# The chart helper ----------------------------------------------------------------------------


def run_with(pk: int, **values) -> AgreementRun:
    finished = datetime(2025, 1, pk, 12, 0, tzinfo=UTC)
    return AgreementRun(pk=pk, status=RunStatus.DONE, metrics=values, finished_at=finished)


def test_chart_of_no_values_is_none():
    assert history_chart([]) is None
    assert history_chart([run_with(1, pairwise_agreement=None, alpha_ordinal=None)]) is None


def test_chart_maps_values_to_the_plot_area_oldest_left():
    runs = [
        run_with(1, pairwise_agreement=0.0, alpha_ordinal=0.5),
        run_with(2, pairwise_agreement=1.0, alpha_ordinal=0.75),
    ]
    chart = history_chart(runs, width=200, height=100)

    agreement, alpha = chart.series
    assert agreement.key == "pairwise_agreement" and alpha.key == "alpha_ordinal"
    first, last = agreement.points
    assert (first.x, first.y) == (chart.left, chart.bottom)  # 0.0 at the bottom left
    assert (last.x, last.y) == (chart.right, chart.top)  # 1.0 at the top right
    assert agreement.lines == [f"{first.x},{first.y} {last.x},{last.y}"]
    assert [tick.label for tick in chart.ticks] == ["1.00", "0.75", "0.50", "0.25", "0.00"]
    assert chart.first_label == "2025-01-01 12:00" and chart.last_label == "2025-01-02 12:00"


def test_chart_breaks_the_line_where_a_value_is_undefined():
    runs = [
        run_with(1, pairwise_agreement=0.6, alpha_ordinal=0.2),
        run_with(2, pairwise_agreement=0.7, alpha_ordinal=None),
        run_with(3, pairwise_agreement=0.8, alpha_ordinal=0.3),
    ]
    agreement, alpha = history_chart(runs).series
    assert len(agreement.lines) == 1 and len(agreement.points) == 3
    assert alpha.lines == [] and [point.run_id for point in alpha.points] == [1, 3]


def test_chart_axis_stretches_down_for_negative_alpha():
    runs = [run_with(1, pairwise_agreement=0.4, alpha_ordinal=-0.3)]
    chart = history_chart(runs, width=200, height=100)
    assert chart.ticks[-1].label == "-0.50" and chart.ticks[-1].y == chart.bottom
    (point,) = chart.series[1].points
    assert point.x == (chart.left + chart.right) / 2  # a lone run sits in the middle
    assert chart.top < point.y < chart.bottom
