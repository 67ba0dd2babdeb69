"""A rater logs in, ranks two tasks with keys and clicks, and htmx swaps each next task in."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import Assignment, Membership, Role
from rankings.models import Ranking

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]

PASSWORD = "a-known-password-for-e2e"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
EMPTY_QUEUE = "Nothing left to rank in this project — thank you!"

PROMPTS = [
    {
        "external_id": "tuple-vs-list",
        "prompt": "What is the difference between a **list** and a **tuple** in Python?",
        "responses": [
            {
                "text": "A list is mutable and a tuple is immutable:\n\n"
                "```python\nitems = [1, 2]\nitems.append(3)  # fine\n"
                "point = (1, 2)\npoint.append(3)  # AttributeError\n```\n\n"
                "Use a tuple for fixed records and a list for collections that grow.",
                "model": "model-alpha",
            },
            {
                "text": "- **list**: mutable, `[1, 2]`\n- **tuple**: immutable, hashable, `(1, 2)`"
                "\n\nTuples can be dictionary keys; lists cannot.",
                "model": "model-beta",
            },
            {"text": "They are the same thing with different brackets.", "model": "model-gamma"},
        ],
    },
    {
        "external_id": "haiku",
        "messages": [
            {"role": "system", "content": "You are a concise poet."},
            {"role": "user", "content": "Write a haiku about autumn rain."},
        ],
        "responses": [
            {"text": "Cold rain on the roof\nmaple leaves float down the drain\nthe kettle hums"},
            {"text": "Autumn rain falls down. It is wet. The end."},
            {"text": "*Grey sky, soft drumming —*\n*red leaves on the glass,*\n*the year sighs.*"},
        ],
    },
]


@pytest.fixture
def rater_setup():
    User = get_user_model()
    lead = User.objects.create_user(username="lead", password=PASSWORD)
    rater = User.objects.create_user(username="rita", password=PASSWORD)
    project = labeling_services.project_create(
        creator=lead,
        name="Helpfulness pilot",
        overlap=1,
        guidelines="Prefer **correct**, then *concise* answers.",
    )
    Membership.objects.create(project=project, user=rater, role=Role.RATER)
    labeling_services.prompts_import(project=project, raw=json.dumps(PROMPTS))
    return project, rater


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('My projects')")


def shown_ids(page) -> list[int]:
    return [
        int(value)
        for value in page.eval_on_selector_all(
            "[data-response-id]", "cards => cards.map(card => card.dataset.responseId)"
        )
    ]


def badge(page, label: str) -> str:
    return page.inner_text(f"[data-label={label}] [data-rank-badge]")


def test_rater_ranks_with_keys_and_clicks_without_page_reloads(page, live_server, rater_setup):
    project, rater = rater_setup
    log_in(page, live_server, "rita")
    page.click("text=Open queue")
    page.wait_for_selector("[data-rank-task]")
    assert page.url.endswith(f"/rate/{project.pk}/")
    assert "model-alpha" not in page.content()
    assert page.inner_text(".conversation").count("list") >= 1

    first_ids = shown_ids(page)
    submit = page.locator("[data-submit]")
    assert submit.is_disabled()

    # Keys: B best, then A; the last one by clicking its card.
    page.keyboard.press("2")
    page.keyboard.press("1")
    assert badge(page, "B") == "rank 1"
    assert badge(page, "A") == "rank 2"
    assert submit.is_disabled()
    page.keyboard.press("Backspace")
    assert badge(page, "A") == ""
    page.keyboard.press("1")
    page.click("[data-label=C] .response-body")
    assert badge(page, "C") == "rank 3"
    assert submit.is_enabled()
    assert "B  >  A  >  C" in page.inner_text("[data-summary]")

    page.evaluate("window.__marker = 1")
    first_form = page.get_attribute(".rank-form", "action")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "action => document.querySelector('.rank-form')?.getAttribute('action') !== action",
        arg=first_form,
    )
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of swapping"
    assert page.inner_text(".flash.success") == "Ranking saved."
    assert page.inner_text("[data-done-count]") == "1"

    ranking = Ranking.objects.get(rater=rater)
    assert ranking.groups == [[first_ids[1]], [first_ids[0]], [first_ids[2]]]
    assert ranking.seconds is not None

    # Second task: the conversation with role labels, ranked by clicks with a tie.
    conversation = page.inner_text(".conversation")
    assert re.search(r"system\s+You are a concise poet", conversation, re.IGNORECASE)
    second_ids = shown_ids(page)
    assert set(second_ids).isdisjoint(first_ids)
    page.click("[data-label=C] [data-pick]")
    page.click("[data-tie]")
    assert page.get_attribute("[data-tie]", "aria-pressed") == "true"
    page.click("[data-label=A] [data-pick]")
    assert badge(page, "C") == "rank 1 (tie)"
    assert badge(page, "A") == "rank 1 (tie)"
    page.keyboard.press("2")
    assert badge(page, "B") == "rank 2"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "rater.png"), full_page=True)

    page.click("[data-submit]")
    page.wait_for_selector(f"text={EMPTY_QUEUE}")
    assert page.evaluate("window.__marker") == 1
    assert page.locator(".rank-form").count() == 0
    assert page.inner_text("[data-done-count]") == "2"
    second = Ranking.objects.exclude(pk=ranking.pk).get(rater=rater)
    assert second.groups == [[second_ids[2], second_ids[0]], [second_ids[1]]]
    assert Assignment.objects.filter(rater=rater, status="submitted").count() == 2


def test_reset_clears_the_picks_and_the_skip_form_moves_on(page, live_server, rater_setup):
    project, rater = rater_setup
    log_in(page, live_server, "rita")
    page.goto(f"{live_server.url}/rate/{project.pk}/")
    page.keyboard.press("3")
    page.keyboard.press("1")
    page.click("[data-reset]")
    assert badge(page, "C") == ""
    assert page.locator("[data-submit]").is_disabled()

    page.evaluate("window.__marker = 1")
    page.click("text=Skip this task")
    page.fill("input[name=reason]", "I can't judge this topic")
    page.click(".skip-form button[type=submit]")
    page.wait_for_selector(".flash.success:has-text('Task skipped.')")
    assert page.evaluate("window.__marker") == 1
    assert Assignment.objects.get(rater=rater, status="skipped").skip_reason


def test_a_lease_taken_over_shows_the_message_and_the_next_task(page, live_server, rater_setup):
    project, rater = rater_setup
    log_in(page, live_server, "rita")
    page.goto(f"{live_server.url}/rate/{project.pk}/")
    mine = Assignment.objects.get(rater=rater)
    past = timezone.now() - timedelta(minutes=20)
    Assignment.objects.filter(pk=mine.pk).update(
        leased_at=past, expires_at=past + timedelta(minutes=10)
    )
    other = get_user_model().objects.create_user(username="quick", password=PASSWORD)
    Membership.objects.create(project=project, user=other, role=Role.RATER)
    assert labeling_services.lease_next_assignment(project=project, rater=other).prompt == (
        mine.prompt
    )

    page.evaluate("window.__marker = 1")
    for key in ("1", "2", "3", "Enter"):
        page.keyboard.press(key)
    page.wait_for_selector(".flash.error:has-text('given to another rater')")
    assert page.evaluate("window.__marker") == 1
    assert "concise poet" in page.inner_text(".conversation")
    assert not Ranking.objects.exists()


def test_responses_stack_on_a_narrow_screen(browser, live_server, rater_setup):
    project, _ = rater_setup
    context = browser.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    try:
        log_in(page, live_server, "rita")
        page.goto(f"{live_server.url}/rate/{project.pk}/")
        boxes = [card.bounding_box() for card in page.locator(".response").all()]
        assert len({round(box["x"]) for box in boxes}) == 1
        assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]
    finally:
        context.close()
