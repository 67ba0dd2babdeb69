"""The lead's quality dashboard at /rate/<project_id>/quality/: metrics and trend, flag queue
with actions, sortable rater table with a scatter, low-agreement prompts, extra raters."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils.html import escape

from core.jobs import JobStatus
from labeling import services as labeling_services
from labeling.models import Membership, MemberStatus, Prompt
from rankings.models import AgreementRun, Flag, FlagStatus, RaterScore
from rankings.quality import actions, findings
from rankings.quality.charts import agreement_speed_scatter, history_chart
from rankings.quality.dashboard import statistic_rows
from rankings.runs import services
from tests.helpers import sample_records
from tests.rankings.agreement_helpers import rank_in_turns
from tests.rankings.quality_helpers import done_run, make_ranking, prompt_row, score

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


@pytest.fixture
def ranked(project, crowd):
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(6)))
    return rank_in_turns(project, crowd, seed=21)


@pytest.fixture
def finished_run(project, ranked, django_capture_on_commit_callbacks) -> AgreementRun:
    with django_capture_on_commit_callbacks(execute=True):
        run = services.agreement_run_request(project=project, trigger="manual")
    run.refresh_from_db()
    assert run.status == JobStatus.DONE
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
    for row in scores:
        assert f'data-rater="{row.rater.username}"' in html
        assert f"{row.agreement:.3f}" in html
        assert f"{row.agreement_low:.3f} \u2013 {row.agreement_high:.3f}" in html
    shown = [row.username for row in response.context["rows"]]
    assert sorted(shown) == sorted(user.username for user in crowd)
    agreements = [row.agreement for row in response.context["rows"]]
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
    assert "<script" not in html.split('id="metrics"')[1]  # no chart library, no CDN


def test_page_before_any_run_says_none_has_finished(client, lead, project):
    client.force_login(lead)
    response = client.get(page_url(project))
    assert response.status_code == 200
    assert "No agreement run has finished yet" in response.content.decode()


def test_failed_run_shows_its_error(client, lead, project, finished_run):
    AgreementRun.objects.create(
        project=project, status=JobStatus.FAILED, error="ValueError: bad data"
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
    assert run.status == JobStatus.DONE
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


def test_a_poll_that_sees_the_run_done_tells_the_page_to_refresh(
    client, lead, project, finished_run
):
    client.force_login(lead)
    response = client.get(
        page_url(project), {"fragment": "metrics", "polling": "1"}, headers={"HX-Request": "true"}
    )
    assert events(response) == ["run-finished"]
    quiet = client.get(page_url(project), {"fragment": "metrics"}, headers={"HX-Request": "true"})
    assert "HX-Trigger" not in quiet


def test_an_unknown_fragment_is_a_404(client, lead, project):
    client.force_login(lead)
    response = client.get(
        page_url(project), {"fragment": "secrets"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 404


def test_statistics_show_an_interval_when_the_run_stored_one():
    rows = {
        row.key: row
        for row in statistic_rows(
            {"kappa": 0.4, "kappa_low": 0.3, "kappa_high": 0.5, "alpha_ordinal_ci": [0.1, 0.2]}
        )
    }
    assert (rows["kappa"].low, rows["kappa"].high) == (0.3, 0.5)
    assert (rows["alpha_ordinal"].low, rows["alpha_ordinal"].high) == (0.1, 0.2)
    assert rows["kendall_w"].low is None


# Flags, raters and prompts -------------------------------------------------------------------


TOO_FAST = {"speed_ratio": 0.05, "median_seconds": 2.0}


@pytest.fixture
def flagged(project, rater, rater2):
    """A finished run in which rater1 is too fast and ranks in shown order; rater2 is careful."""
    run = done_run(project)
    score(run, rater, agreement=0.55, straight_lining_rate=0.9, **TOO_FAST)
    score(run, rater2, agreement=0.85)
    findings.apply_run_findings(run=run)
    return run


def flag_url(project, flag, action: str) -> str:
    return reverse("rankings:quality_flag_action", args=[project.pk, flag.pk, action])


def rater_url(project, username: str, action: str) -> str:
    return reverse("rankings:quality_rater_action", args=[project.pk, username, action])


def events(response) -> list[str]:
    """The htmx events a response triggers, in order."""
    return list(json.loads(response["HX-Trigger"]))


def htmx(client):
    """The client's get/post with the header htmx sends."""

    class Htmx:
        def get(self, url, data=None):
            return client.get(url, data or {}, headers={"HX-Request": "true"})

        def post(self, url, data=None):
            return client.post(url, data or {}, headers={"HX-Request": "true"})

    return Htmx()


def test_the_flag_queue_shows_each_open_flag_with_its_evidence_and_actions(
    client, lead, project, flagged
):
    client.force_login(lead)
    html = client.get(page_url(project)).content.decode()

    section = html.split('id="flags"')[1].split('id="raters"')[0]
    assert section.count('class="flag-card"') == 2
    too_fast = Flag.objects.get(code="TOO_FAST")
    assert f'data-flag="{too_fast.pk}"' in section
    assert escape(too_fast.evidence["summary"]) in section
    for action in ("dismiss", "pause", "exclude"):
        assert f'hx-post="{flag_url(project, too_fast, action)}"' in section
    assert 'name="note"' in section and "Flag queue" in section and "2 open" in section


def test_dismiss_with_htmx_swaps_the_queue_and_refreshes_the_raters(client, lead, project, flagged):
    client.force_login(lead)
    flag = Flag.objects.get(code="TOO_FAST")

    response = htmx(client).post(flag_url(project, flag, "dismiss"), {"note": "reads fast"})

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="flags"') and "<html" not in html
    assert f'data-flag="{flag.pk}" data-code' not in html  # gone from the queue
    assert "1 open" in html and "reads fast" in html  # under "recently closed"
    assert events(response) == ["raters-changed"]
    flag.refresh_from_db()
    assert (flag.status, flag.note, flag.resolved_by) == ("dismissed", "reads fast", lead)


def test_pause_from_a_flag_pauses_the_rater_and_closes_their_flags(
    client, lead, project, rater, flagged
):
    client.force_login(lead)
    flag = Flag.objects.get(code="TOO_FAST")
    html = htmx(client).post(flag_url(project, flag, "pause")).content.decode()
    assert "0 open" in html
    assert Membership.objects.get(project=project, user=rater).status == MemberStatus.PAUSED
    assert not Flag.objects.filter(status=FlagStatus.OPEN).exists()


def test_exclude_from_a_flag_also_refreshes_the_metrics(client, lead, project, rater, flagged):
    client.force_login(lead)
    flag = Flag.objects.get(code="TOO_FAST")
    response = htmx(client).post(flag_url(project, flag, "exclude"))
    assert events(response) == ["raters-changed", "metrics-changed"]
    membership = Membership.objects.get(project=project, user=rater)
    assert membership.excluded and membership.status == MemberStatus.PAUSED


def test_an_action_that_conflicts_shows_the_error_in_the_fragment(client, lead, project, flagged):
    client.force_login(lead)
    flag = Flag.objects.get(code="TOO_FAST")
    actions.flag_pause_rater(flag=flag, by=lead)
    response = htmx(client).post(flag_url(project, flag, "dismiss"))
    # A conflict, answered as one (htmx swaps 4xx answers, so the lead sees the message).
    assert response.status_code == 409 and "HX-Trigger" not in response
    assert 'role="alert"' in response.content.decode()


def test_flag_actions_without_javascript_redirect_back_with_a_message(
    client, lead, project, flagged
):
    client.force_login(lead)
    flag = Flag.objects.get(code="TOO_FAST")
    response = client.post(flag_url(project, flag, "dismiss"), {"note": "ok"}, follow=True)
    assert response.redirect_chain == [(page_url(project), 302)]
    assert "Flag dismissed. (rater1, Much faster than the project)" in response.content.decode()


def test_only_leads_act_from_the_page(client, engineer, rater, outsider, project, flagged):
    flag = Flag.objects.get(code="TOO_FAST")
    url = flag_url(project, flag, "dismiss")
    client.force_login(engineer)
    assert client.post(url).status_code == 403
    assert client.post(rater_url(project, "rater2", "pause")).status_code == 403
    client.force_login(rater)
    assert client.post(url).status_code == 403
    client.force_login(outsider)
    assert client.post(url).status_code == 404
    flag.refresh_from_db()
    assert flag.status == FlagStatus.OPEN


def test_a_flag_of_another_project_or_an_unknown_action_is_a_404(
    client, lead, project, flagged, make_user
):
    other = labeling_services.project_create(creator=lead, name="Other")
    flag = Flag.objects.get(code="TOO_FAST")
    client.force_login(lead)
    wrong_project = reverse("rankings:quality_flag_action", args=[other.pk, flag.pk, "dismiss"])
    assert client.post(wrong_project).status_code == 404
    assert client.post(flag_url(project, flag, "delete")).status_code == 404
    assert client.get(flag_url(project, flag, "dismiss")).status_code == 405


def test_the_rater_table_pauses_and_resumes_keeping_the_sort(client, lead, project, rater, flagged):
    client.force_login(lead)
    url = rater_url(project, rater.username, "pause") + "?sort=-speed"

    response = htmx(client).post(url)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="raters"')
    assert events(response) == ["flags-changed"]
    assert 'data-rater="rater1" data-status="paused"' in html
    assert response.context["sort"] == "speed" and response.context["descending"]
    assert rater_url(project, rater.username, "resume") in html
    htmx(client).post(rater_url(project, rater.username, "resume"))
    assert Membership.objects.get(project=project, user=rater).status == MemberStatus.ACTIVE


def test_the_rater_table_excludes_and_includes(client, lead, project, rater, flagged):
    client.force_login(lead)
    response = htmx(client).post(rater_url(project, rater.username, "exclude"))
    assert events(response) == ["flags-changed", "metrics-changed"]
    assert "data-excluded" in response.content.decode()
    assert AgreementRun.objects.filter(trigger=actions.EXCLUSION_TRIGGER).exists()
    htmx(client).post(rater_url(project, rater.username, "include"))
    assert not Membership.objects.get(project=project, user=rater).excluded


def test_acting_on_someone_who_is_not_a_member_is_a_404(client, lead, project, outsider):
    client.force_login(lead)
    assert client.post(rater_url(project, outsider.username, "pause")).status_code == 404


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("agreement", ["rater1", "rater2"]),
        ("-agreement", ["rater2", "rater1"]),
        ("speed", ["rater1", "rater2"]),
        ("-flags", ["rater1", "rater2"]),
        ("flags", ["rater2", "rater1"]),
        ("-username", ["rater2", "rater1"]),
        ("nonsense", ["rater1", "rater2"]),  # falls back to agreement
    ],
)
def test_the_rater_table_sorts_on_the_server(client, lead, project, flagged, sort, expected):
    client.force_login(lead)
    response = htmx(client).get(page_url(project), {"fragment": "raters", "sort": sort})
    assert [row.username for row in response.context["rows"]] == expected


def test_sort_headers_link_to_the_flipped_order_and_mark_the_current_one(
    client, lead, project, flagged
):
    client.force_login(lead)
    html = client.get(page_url(project), {"sort": "speed"}).content.decode()
    assert 'aria-sort="ascending" data-sort="speed"' in html
    assert 'href="?sort=-speed#raters"' in html  # clicking again sorts descending
    assert 'hx-push-url="?sort=gold_accuracy"' in html


def test_rater_rows_show_every_metric_with_its_counts(client, lead, project, rater, flagged):
    RaterScore.objects.filter(rater=rater).update(
        gold_accuracy=0.41, gold_pairs=24, self_consistency=0.52, repeat_pairs=18
    )
    client.force_login(lead)
    html = client.get(page_url(project)).content.decode()
    row = html.split('<tr data-rater="rater1"')[1].split("</tr>")[0]
    for text in ("0.41", "24 pairs", "0.52", "18 pairs", "0.05\u00d7", "2 s median", "0.90"):
        assert text in row, text
    assert "STRAIGHT_LINING" in row and "TOO_FAST" in row


def test_the_scatter_draws_flagged_raters_as_squares(client, lead, project, flagged):
    client.force_login(lead)
    html = client.get(page_url(project)).content.decode()
    scatter = html.split("data-scatter")[1].split("</figure>")[0]
    assert '<g data-point="rater1" data-flagged>' in scatter
    assert '<g data-point="rater2">' in scatter
    assert scatter.count("<rect") >= 2 and "too fast" in scatter


def test_scatter_geometry():
    class Row:
        def __init__(self, name, agreement, speed, flagged=False):
            self.username, self.agreement, self.speed_ratio = name, agreement, speed
            self.open_flags = [Flag(code="TOO_FAST")] if flagged else []

    rows = [Row("a", 1.0, 1.0), Row("b", 0.0, 0.1, flagged=True), Row("c", None, 1.0)]
    chart = agreement_speed_scatter(rows, width=400, height=200)  # type: ignore[arg-type]
    first, second = chart.points
    assert first.y == chart.top and second.y == chart.bottom
    assert second.x < chart.too_fast_x < first.x  # the too-fast band sits left of 0.3
    assert second.flagged and second.codes == "TOO_FAST" and not first.flagged
    assert chart.missing == 1 and [tick.label for tick in chart.x_ticks][:2] == ["0.1", "0.2"]
    assert agreement_speed_scatter([Row("c", None, 1.0)]) is None  # type: ignore[list-item]


@pytest.fixture
def hard_prompts(project, rater, rater2, flagged):
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(3, 3)))
    prompts = list(Prompt.objects.filter(project=project).order_by("id"))
    for prompt in prompts:
        ids = list(prompt.responses.order_by("position").values_list("id", flat=True))
        make_ranking(project, prompt, rater, groups=[[ids[0]], [ids[1], ids[2]]])
        make_ranking(project, prompt, rater2, groups=[[ids[2]], [ids[1]], [ids[0]]])
    Prompt.objects.filter(pk=prompts[0].pk).update(
        extra_raters=1, extra_reason="agreement 0.10 below 0.60 after 2 rankings (run 1)"
    )
    run = done_run(project)
    RaterScore.objects.bulk_create(
        RaterScore(run=run, rater=score.rater, rankings=score.rankings, agreement=score.agreement)
        for score in RaterScore.objects.filter(run=flagged)
    )
    for prompt, agreement in zip(prompts, (0.1, 0.8, 0.4), strict=True):
        prompt_row(run, prompt, agreement=agreement, n_rankings=2)
    return prompts


def test_lowest_agreement_prompts_show_rankings_side_by_side(client, lead, project, hard_prompts):
    client.force_login(lead)
    response = client.get(page_url(project))
    reviews = response.context["low_prompts"]
    assert [review.agreement for review in reviews] == [0.1, 0.4, 0.8]
    html = response.content.decode()
    section = html.split('id="prompts"')[1]
    first = section.split(f'data-prompt="{hard_prompts[0].pk}"')[1].split("</article>")[0]
    assert "agreement 0.100" in first and "+1 extra rater" in first
    assert "<li>A</li><li>B = C</li>" in first  # rater1, best first, tie joined
    assert "<li>C</li><li>B</li><li>A</li>" in first  # rater2
    assert first.count('class="ranking-column') == 3  # consensus and two raters


def test_prompts_given_extra_raters_are_listed_with_the_reason(client, lead, project, hard_prompts):
    client.force_login(lead)
    html = client.get(page_url(project)).content.decode()
    table = html.split("data-extra-raters")[1].split("</table>")[0]
    assert "agreement 0.10 below 0.60 after 2 rankings (run 1)" in table
    assert "+1" in table and "waiting for raters" in table


def test_the_page_runs_a_bounded_number_of_queries(
    client, lead, project, make_user, add_member, django_assert_max_num_queries
):
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(8, 4)))
    prompts = list(Prompt.objects.filter(project=project))
    crowd = [add_member(make_user(f"many{index}")) for index in range(10)]
    for index, user in enumerate(crowd):
        for prompt in prompts[index % 4 : index % 4 + 3]:
            make_ranking(project, prompt, user)
    Membership.objects.filter(user=crowd[0]).update(excluded=True)
    run = done_run(project)
    for index, user in enumerate(crowd[1:]):
        score(run, user, **(TOO_FAST if index % 2 else {}))
    for prompt in prompts:
        prompt_row(run, prompt, agreement=0.3, n_rankings=3)
    findings.apply_run_findings(run=run)
    Prompt.objects.filter(pk__in=[prompt.pk for prompt in prompts[:3]]).update(extra_raters=1)
    client.force_login(lead)

    # Session, user, project, membership; history, newest run; flags; memberships, scores,
    # unscored ranking counts; prompt rows, responses, rankings, excluded raters; extra-rater
    # count and list.
    with django_assert_max_num_queries(16):
        response = client.get(page_url(project))
    assert response.status_code == 200
    assert len(response.context["rows"]) == 10 and len(response.context["low_prompts"]) == 5


# The chart helper ----------------------------------------------------------------------------


def run_with(pk: int, **values) -> AgreementRun:
    finished = datetime(2025, 1, pk, 12, 0, tzinfo=UTC)
    return AgreementRun(pk=pk, status=JobStatus.DONE, metrics=values, finished_at=finished)


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
