"""A lead browses the project's prompts, filters them, opens one, marks it gold by ordering
its responses with the keyboard (and by dragging), and archives prompts in bulk."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from labeling.models import Prompt
from tests.helpers import response_ids
from tests.rankings.prompts.scenario import build_browse

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]


@pytest.fixture
def browse(project, lead, rater, rater2):
    return build_browse(project, lead, rater, rater2)


def rows(page) -> list[int]:
    return [
        int(v)
        for v in page.eval_on_selector_all(
            "[data-prompt-row]", "rs => rs.map(r => r.dataset.promptRow)"
        )
    ]


def test_filter_search_and_open_a_prompt(open_as, lead, browse):
    page = open_as(lead, f"/rate/{browse.project.pk}/prompts/")
    assert rows(page) == browse.ids(7, 5, 4, 3, 2, 1, 0)

    page.fill("[data-filter-q]", "sourdough")
    page.click(".browse-filters button[type=submit]")
    expect(page.locator("[data-prompt-row]")).to_have_count(2)
    assert rows(page) == browse.ids(5, 0)
    assert "q=sourdough" in page.url  # the filtered view is a link

    page.select_option("[data-filter-ordering]", "agreement")
    page.click(".browse-filters button[type=submit]")
    page.wait_for_url(re.compile(r"ordering=agreement"))
    expect(page.locator("[data-prompt-row]").first).to_have_attribute(
        "data-prompt-row", str(browse.prompts[5].pk)
    )
    assert rows(page) == browse.ids(5, 0)

    page.fill("[data-filter-q]", "")
    page.select_option("[data-filter-ordering]", "newest")
    page.select_option("[data-filter-state]", "skipped")
    page.click(".browse-filters button[type=submit]")
    page.wait_for_url(re.compile(r"state=skipped"))
    expect(page.locator("[data-prompt-row]")).to_have_count(2)
    assert rows(page) == browse.ids(4, 1)

    page.click(f"[data-prompt-row='{browse.prompts[1].pk}'] [data-prompt-link]")
    page.wait_for_selector("[data-rankings]")
    assert "Explain recursion to a beginner." in page.inner_text(
        "#conversation-title + .conversation-body"
    )
    assert "rater1" in page.inner_text("[data-rankings]")
    assert "rater2" in page.inner_text("[data-skips]")


def test_a_bad_filter_says_which_field(open_as, lead, browse):
    page = open_as(lead, f"/rate/{browse.project.pk}/prompts/")
    page.fill("[data-filter-agreement-min]", "0.9")
    page.fill("[data-filter-agreement-max]", "0.1")
    page.click(".browse-filters button[type=submit]")
    error = page.wait_for_selector("[data-browse-error]")
    assert error.get_attribute("data-field") == "agreement_min"
    assert "agreement_max" in error.inner_text()


def test_mark_gold_by_ordering_with_keys(open_as, lead, browse):
    prompt = browse.prompts[2]
    a, b, c = response_ids(prompt)
    page = open_as(lead, f"/rate/{browse.project.pk}/prompts/{prompt.pk}/")
    page.focus(f"[data-gold-row][data-response-id='{a}']")
    page.keyboard.press("3")  # A is worst; focus moves to the first row without a rank (B)
    page.keyboard.press("1")  # B best
    page.keyboard.press("2")  # C second
    summary = page.locator("[data-gold-summary]")
    assert summary.inner_text() == "B > C > A"
    labels = page.eval_on_selector_all("[data-gold-row]", "rs => rs.map(r => r.dataset.label)")
    assert labels == ["B", "C", "A"]  # the ladder shows the order

    page.focus(f"[data-gold-row][data-response-id='{a}']")
    page.keyboard.press("t")  # tie A with the row above it (C)
    assert summary.inner_text() == "B > C = A"
    page.click("[data-gold-save]")
    page.wait_for_selector("[data-gold-current]")
    assert "B > A = C" in page.inner_text("[data-gold-current]")
    prompt.refresh_from_db()
    assert prompt.is_gold and prompt.gold_ranking == [[b], [a, c]]  # ties in import order
    assert page.get_attribute("[data-prompt-state]", "data-prompt-state") == "gold"


def test_mark_gold_by_dragging(open_as, lead, browse):
    prompt = browse.prompts[2]
    a, b, c = response_ids(prompt)
    page = open_as(lead, f"/rate/{browse.project.pk}/prompts/{prompt.pk}/")
    for key, row in (("1", a), ("2", b), ("3", c)):
        page.focus(f"[data-gold-row][data-response-id='{row}']")
        page.keyboard.press(key)
    page.drag_and_drop(
        f"[data-gold-row][data-response-id='{c}']",
        f"[data-gold-row][data-response-id='{a}']",
        target_position={"x": 20, "y": 2},
    )
    assert page.inner_text("[data-gold-summary]") == "C > A > B"
    page.click("[data-gold-save]")
    page.wait_for_selector("[data-gold-current]")
    prompt.refresh_from_db()
    assert prompt.gold_ranking == [[c], [a], [b]]


def test_bulk_archive_from_the_browser(open_as, lead, browse):
    page = open_as(lead, f"/rate/{browse.project.pk}/prompts/?state=untouched")
    assert rows(page) == browse.ids(4, 2)
    page.on("dialog", lambda dialog: dialog.accept())
    page.check("[data-check-all]")
    page.select_option("[data-bulk-action]", "archive")
    page.click("[data-bulk-submit]")
    page.wait_for_selector(".messages")
    assert "Archive: 2 prompts changed" in page.inner_text(".messages")
    assert "state=untouched" in page.url
    assert rows(page) == []
    assert set(
        Prompt.objects.filter(archived_at__isnull=False).values_list("pk", flat=True)
    ) == set(browse.ids(2, 4, 6))
    page.select_option("[data-filter-state]", "archived")
    page.click(".browse-filters button[type=submit]")
    expect(page.locator("[data-prompt-row]")).to_have_count(3)
    assert rows(page) == browse.ids(6, 4, 2)
