"""Demonstrations in Chromium: write with the live preview, rank then rewrite, review."""

from __future__ import annotations

import pytest
from django.utils import timezone

from authoring.demonstrations.models import Demonstration, DemonstrationStatus
from labeling import services as labeling_services
from labeling.models import Membership, TaskKind
from rankings.models import Ranking
from tests.e2e.screenshots import SCREENSHOTS
from tests.helpers import import_prompts

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]

GUIDELINES = "Write the reply a **careful expert** would give: correct, short, kind."
CONVERSATION = {
    "external_id": "tides",
    "messages": [
        {"role": "system", "content": "You are a patient science tutor."},
        {"role": "user", "content": "Why are there two high tides a day?"},
    ],
}


def _project(lead, mode: str, responses: list[dict] | None = None):
    project = labeling_services.project_create(
        creator=lead,
        name=f"Tutor demonstrations ({mode.replace('_', ' ')})",
        overlap=1,
        gold_rate=0.0,
        task_kind=TaskKind.DEMONSTRATION,
        task_options={"mode": mode, "review_rate": 1.0},
        guidelines=GUIDELINES,
    )
    import_prompts(project, [{**CONVERSATION, "responses": responses or []}])
    return project


def _member(project, user):
    Membership.objects.create(project=project, user=user, guidelines_seen_at=timezone.now())
    return user


def _rate_path(project) -> str:
    return f"/rate/{project.pk}/"


def test_write_a_demonstration_with_live_preview(open_as, lead, make_user):
    project = _project(lead, "write")
    writer = _member(project, make_user("writer"))
    page = open_as(writer, _rate_path(project))
    editor = page.locator("[data-editor]")
    editor.click()
    editor.type("The Moon's pull makes **two bulges**:\n\n- one facing the Moon\n- one opposite")
    page.wait_for_function(
        "() => document.querySelector('[data-preview] strong')?.textContent === 'two bulges'"
    )
    assert page.locator("[data-preview] li").count() == 2
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "demonstration.png"), full_page=True)
    # Raw HTML is shown as text, never run.
    editor.type("\n\n<img src=x onerror=alert(1)>")
    page.wait_for_function(
        "() => document.querySelector('[data-preview]').textContent.includes('onerror')"
    )
    assert page.locator("[data-preview] img").count() == 0
    # The guidelines are at hand with G.
    page.locator("h1").click()
    page.keyboard.press("g")
    assert page.locator("#guidelines-dialog").is_visible()
    page.keyboard.press("Escape")
    editor.click()
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Demonstration saved.")
    demonstration = Demonstration.objects.get()
    assert demonstration.text.startswith("The Moon's pull makes **two bulges**")
    assert demonstration.status == DemonstrationStatus.PENDING_REVIEW
    assert demonstration.seconds is not None and demonstration.seconds > 0


def test_rank_then_rewrite(open_as, lead, make_user):
    responses = [
        {"text": "Because of the Sun.", "model": "m-a"},
        {"text": "The Moon's gravity pulls the oceans into two bulges.", "model": "m-b"},
    ]
    project = _project(lead, "rank_then_rewrite", responses)
    writer = _member(project, make_user("writer"))
    page = open_as(writer, _rate_path(project))
    rewrite = page.locator("[data-rewrite-best]")
    assert rewrite.is_disabled()
    cards = page.locator("[data-card]")
    texts = [cards.nth(index).locator(".response-body").inner_text() for index in range(2)]
    better = 0 if "gravity" in texts[0] else 1
    # Keyboard: focus a response and press its rank.
    cards.nth(better).locator(".response-body").focus()
    page.keyboard.press("1")
    cards.nth(1 - better).locator(".response-body").focus()
    page.keyboard.press("2")
    assert not rewrite.is_disabled()
    page.keyboard.press("w")
    editor = page.locator("[data-editor]")
    assert editor.input_value() == responses[1]["text"]
    page.wait_for_function(
        "() => document.querySelector('[data-preview]').textContent.includes('two bulges')"
    )
    editor.press("End")
    editor.type(" One faces the Moon, one is on the far side.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Demonstration saved.")
    demonstration = Demonstration.objects.get()
    ranking = Ranking.objects.get()
    best_id = demonstration.original_response_id
    assert ranking.groups[0] == [best_id]
    assert demonstration.original_text == responses[1]["text"]
    assert demonstration.edit_distance == len(" One faces the Moon, one is on the far side.")
    assert "+The Moon's gravity" in demonstration.diff


def test_review_accept_edit_and_reject(open_as, lead, make_user):
    project = _project(lead, "write")
    import_prompts(
        project,
        [
            {"external_id": f"extra{index}", "prompt": f"Question {index}", "responses": []}
            for index in range(2)
        ],
    )
    writer = _member(project, make_user("writer"))
    reviewer = _member(project, make_user("reviewer"))
    from authoring.demonstrations import services

    for text in ("Tides come from the Moon.", "Spelling eror here.", "I won't answer."):
        task = services.task_for_rater(project=project, rater=writer)
        services.demonstration_submit(assignment_id=task.assignment.pk, rater=writer, text=text)
    page = open_as(reviewer, _rate_path(project))
    # Accept with A, then submit.
    assert page.locator('[data-task="review"]').is_visible()
    assert page.locator("[data-editor]").input_value() == "Tides come from the Moon."
    page.locator("h1").click()
    page.keyboard.press("a")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Review saved.")
    # Edit with E: the editor opens for the fix.
    editor = page.locator("[data-editor]")
    assert editor.input_value() == "Spelling eror here."
    assert editor.get_attribute("readonly") is not None
    page.locator("h1").click()
    page.keyboard.press("e")
    assert editor.get_attribute("readonly") is None
    editor.fill("Spelling error here.")
    page.wait_for_function(
        "() => document.querySelector('[data-preview]').textContent.includes('error here')"
    )
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Review saved.")
    # Reject with X: a reason is asked for.
    page.locator("h1").click()
    page.keyboard.press("x")
    page.locator("[data-reason]").fill("Refuses a harmless question.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Review saved.")
    statuses = list(Demonstration.objects.order_by("id").values_list("status", "final_text"))
    assert statuses == [
        (DemonstrationStatus.ACCEPTED, "Tides come from the Moon."),
        (DemonstrationStatus.EDITED, "Spelling error here."),
        (DemonstrationStatus.REJECTED, "I won't answer."),
    ]
