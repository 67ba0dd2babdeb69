"""Median seconds per ranking, declared once in the registry: a run stores it, the raters API
has the field and the dashboard a column, each equal to a brute-force median of the rater's
timed rankings on random data."""

from __future__ import annotations

import json
import random
import statistics

import pytest
from django.template.defaultfilters import floatformat
from django.urls import reverse

from core.jobs import JobStatus
from labeling import services as labeling_services
from rankings.models import Ranking, RaterScore
from rankings.runs import services
from rankings.stats.registry import STATISTICS
from tests.helpers import sample_records
from tests.rankings.agreement_helpers import rank_again_as_repeat, rank_in_turns

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


@pytest.fixture
def crowd(make_crowd):
    """Four raters here: three rank each prompt, so one of them sits each one out."""
    return make_crowd(4)


@pytest.fixture
def timed_run(project, crowd, django_capture_on_commit_callbacks):
    """Ten prompts ranked by three of four raters; random seconds on most rankings, and
    repeats (whose seconds must not count)."""
    labeling_services.project_update(project=project, overlap=3)
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(10, responses=4))
    )
    ranked = rank_in_turns(project, crowd, seed=17)
    repeats = [rank_again_as_repeat(ranking) for ranking in ranked[::5]]
    rng = random.Random(23)
    for ranking in [*ranked, *repeats]:
        seconds = None if rng.random() < 0.2 else round(rng.lognormvariate(3.0, 0.7), 3)
        Ranking.objects.filter(pk=ranking.pk).update(seconds=seconds)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.agreement_run_request(project=project, trigger="manual")
    run.refresh_from_db()
    assert run.status == JobStatus.DONE, run.error
    return run


def brute_force_medians(project) -> dict[str, float | None]:
    """username → median seconds over the rater's rankings that are not repeats."""
    seconds: dict[str, list[float]] = {}
    for ranking in Ranking.objects.filter(project=project).select_related("rater"):
        spent = seconds.setdefault(ranking.rater.username, [])
        if not ranking.is_repeat and ranking.seconds is not None:
            spent.append(ranking.seconds)
    return {name: statistics.median(values) if values else None for name, values in seconds.items()}


def test_the_registry_declares_median_seconds_for_the_api_and_the_dashboard():
    stat = STATISTICS["median_seconds"]
    assert stat.api and stat.dashboard is not None and stat.column == "median_seconds"


def test_a_run_stores_each_raters_median_seconds(project, timed_run):
    expected = brute_force_medians(project)
    stored = {
        score.rater.username: score.median_seconds
        for score in RaterScore.objects.filter(run=timed_run).select_related("rater")
    }
    assert stored.keys() == expected.keys()
    assert any(value is not None for value in expected.values())
    for username, median in expected.items():
        assert stored[username] == pytest.approx(median), username


def test_the_raters_api_has_median_seconds(api_for, lead, project, timed_run):
    rows = api_for(lead).get(f"/api/projects/{project.pk}/raters/").json()
    expected = brute_force_medians(project)
    assert {row["username"] for row in rows} == expected.keys()
    for row in rows:
        assert row["median_seconds"] == pytest.approx(expected[row["username"]])
    schema = api_for(lead).get("/api/schema/", {"format": "json"}).content.decode()
    assert STATISTICS["median_seconds"].help in schema


def test_the_dashboard_has_a_median_seconds_column(client, lead, project, timed_run):
    client.force_login(lead)
    html = client.get(reverse("rankings:quality", args=[project.pk])).content.decode()

    assert 'data-sort="median_seconds"' in html and ">Median time<" in html
    for username, median in brute_force_medians(project).items():
        row = html.split(f'<tr data-rater="{username}"')[1].split("</tr>")[0]
        cell = row.split('data-column="median_seconds">')[1].split("</td>")[0]
        shown = "\u2014" if median is None else f"{floatformat(median, 0)} s"
        assert shown in cell.split('<span class="sub">')[0], (username, cell)


def test_the_dashboard_sorts_by_median_seconds(client, lead, project, timed_run):
    client.force_login(lead)
    response = client.get(
        reverse("rankings:quality", args=[project.pk]),
        {"fragment": "raters", "sort": "-median_seconds"},
        headers={"HX-Request": "true"},
    )
    medians = [row.median_seconds for row in response.context["rows"]]
    known = [median for median in medians if median is not None]
    assert known and medians[: len(known)] == sorted(known, reverse=True)
