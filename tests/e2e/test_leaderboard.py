"""A lead opens the model leaderboard from the project page, sees the chart with intervals
in the right order, and switches on length control without a page load."""

from __future__ import annotations

import pytest

from tests.e2e.screenshots import SCREENSHOTS
from tests.helpers import import_prompts
from tests.rankings.leaderboard.helpers import MODELS, leaderboard_records, rank_by_quality

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]


def test_lead_sees_which_model_wins_and_controls_for_length(
    open_as, project, lead, make_crowd
) -> None:
    prompts = import_prompts(project, leaderboard_records(20))
    rank_by_quality(project, make_crowd(3), prompts)

    page = open_as(lead, f"/projects/{project.pk}/")
    page.get_by_role("link", name="Leaderboard").click()
    page.wait_for_url(f"**/rate/{project.pk}/leaderboard/")

    chart = page.locator("svg[data-board-chart]")
    chart.wait_for()
    rows = chart.locator("g[data-chart-model]")
    assert rows.count() == len(MODELS)
    assert [rows.nth(index).get_attribute("data-chart-model") for index in range(3)] == list(MODELS)
    # Each model's interval is drawn around its dot, strongest on top.
    for index in range(3):
        interval = rows.nth(index).locator("line[data-interval]").bounding_box()
        dot = rows.nth(index).locator("circle").bounding_box()
        assert interval is not None and dot is not None
        centre = dot["x"] + dot["width"] / 2
        assert interval["x"] - 1 <= centre <= interval["x"] + interval["width"] + 1
    tops = [rows.nth(index).locator("circle").bounding_box()["y"] for index in range(3)]
    assert tops == sorted(tops)
    standings = page.locator("table[data-standings] tbody th")
    assert [text.strip() for text in standings.all_text_contents()] == list(MODELS)
    assert page.locator("[data-length-effect]").count() == 0

    with page.expect_response(lambda response: "length_control=on" in response.url):
        page.get_by_label("Control for response length").check()
    page.locator("[data-length-effect]").wait_for()
    assert "length_control=on" in page.url  # pushed: a reload shows the same board
    assert page.locator("svg[data-board-chart] g[data-chart-model]").count() == len(MODELS)
    assert "at equal response length" in page.locator("[data-board-summary]").inner_text()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "lead-leaderboard.png"), full_page=True)
