"""The leaderboard page: who may open it, what it shows, its options, htmx fragments."""

from __future__ import annotations

import re

import pytest

from tests.helpers import import_prompts
from tests.rankings.leaderboard.helpers import MODELS, leaderboard_records, rank_by_quality

pytestmark = pytest.mark.django_db


def page_url(project) -> str:
    return f"/rate/{project.pk}/leaderboard/"


@pytest.fixture
def ranked(project, make_crowd):
    prompts = import_prompts(project, leaderboard_records(12))
    rank_by_quality(project, make_crowd(3), prompts)
    return project


def test_the_lead_sees_the_chart_and_the_standings_in_order(ranked, lead, client) -> None:
    client.force_login(lead)
    response = client.get(page_url(ranked))
    assert response.status_code == 200
    html = response.content.decode()
    assert "data-board-chart" in html
    chart_order = re.findall(r'data-chart-model="([^"]+)"', html)
    table_order = re.findall(r'<tr data-model="([^"]+)"', html)
    assert chart_order == list(MODELS)
    assert table_order == list(MODELS)
    assert html.count("data-interval") == len(MODELS)
    assert "data-win-matrix" in html
    # The page's CSP allows no inline script or style.
    assert " style=" not in html
    assert "<script>" not in html


def test_the_project_and_quality_pages_link_to_it(ranked, lead, client) -> None:
    client.force_login(lead)
    for path in (f"/projects/{ranked.pk}/", f"/rate/{ranked.pk}/quality/"):
        assert page_url(ranked) in client.get(path).content.decode(), path


def test_options_change_the_board(ranked, lead, client) -> None:
    client.force_login(lead)
    html = client.get(page_url(ranked), {"length_control": "on", "source": "consensus"}).content
    text = html.decode()
    assert "data-length-effect" in text
    assert "consensus rankings" in text
    assert "at equal response length" in text


def test_a_bad_option_is_shown_next_to_the_field(ranked, lead, client) -> None:
    client.force_login(lead)
    response = client.get(page_url(ranked), {"source": "everything"})
    assert response.status_code == 400
    text = response.content.decode()
    assert 'data-error-for="source"' in text
    assert "data-board-chart" not in text


def test_htmx_gets_only_the_board(ranked, lead, client) -> None:
    client.force_login(lead)
    response = client.get(page_url(ranked), {"length_control": "on"}, HTTP_HX_REQUEST="true")
    text = response.content.decode()
    assert text.lstrip().startswith('<section id="board"')
    assert "<html" not in text and "data-board-options" not in text


def test_raters_may_not_open_it_and_outsiders_do_not_see_it(
    ranked, rater, outsider, engineer, client
) -> None:
    client.force_login(engineer)
    assert client.get(page_url(ranked)).status_code == 200
    client.force_login(rater)
    assert client.get(page_url(ranked)).status_code == 403
    client.force_login(outsider)
    assert client.get(page_url(ranked)).status_code == 404


def test_a_project_without_compared_models_says_so(project, lead, client) -> None:
    client.force_login(lead)
    text = client.get(page_url(project)).content.decode()
    assert "data-empty-board" in text
