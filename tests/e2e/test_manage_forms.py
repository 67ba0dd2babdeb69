"""The lead's Manage page in Chromium: each form's error shows at its field (never a stale
success), pause and exclude ask first, raising overlap reopens complete prompts for a new
rater, the rubric builder posts what the validator accepts, guidelines preview, and a stuck
lease is released."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling import services as labeling_services
from labeling.models import Membership, MemberStatus, Project, Prompt
from labeling.rubric import HHH_PRESET
from tests.helpers import import_prompts, sample_records
from tests.rankings.agreement_helpers import rank_in_turns

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]


def accept_next_dialog(page) -> list[str]:
    asked: list[str] = []

    def accept(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    return asked


def test_settings_error_shows_at_the_field_after_an_earlier_success(open_as, lead, project):
    page = open_as(lead, f"/projects/{project.pk}/")
    page.fill("#settings input[name=name]", "Renamed")
    page.click("#settings button[type=submit]")
    expect(page.locator("#settings .flash")).to_have_text("Settings saved.")
    lease = page.locator("#settings input[name=lease_seconds]")
    lease.evaluate("(input) => input.removeAttribute('min')")  # past the browser's own check
    lease.fill("5")
    page.click("#settings button[type=submit]")
    error = page.wait_for_selector("#id_lease_seconds-error")
    assert "30" in error.inner_text()
    assert "saved" not in page.inner_text("#settings .flash").lower()
    assert page.locator("#settings .field.has-error input[name=lease_seconds]").count() == 1
    assert Project.objects.get(pk=project.pk).lease_seconds == 600


def test_invite_and_gold_errors_show_at_their_fields(open_as, lead, project):
    import_prompts(project, sample_records(2))
    page = open_as(lead, f"/projects/{project.pk}/")
    page.click("#invites button[type=submit]")
    page.wait_for_selector("#invites .flash.success")
    # A role the server does not know (a stale page, a tampered form): said at the field.
    page.locator("#invites select[name=role]").evaluate(
        "(select) => { select.options[select.selectedIndex].value = 'boss'; }"
    )
    page.click("#invites button[type=submit]")
    error = page.wait_for_selector("#id_role-error")
    assert "not one of the available choices" in error.inner_text()
    assert page.locator("#invites .flash.success").count() == 0

    page.fill("#gold input[name=prompt]", "no-such-prompt")
    page.fill("#gold input[name=ranking]", "A > B")
    page.click("#gold button[type=submit]")
    alert = page.wait_for_selector("#gold .flash.error")
    assert "no-such-prompt" in alert.inner_text()
    page.fill("#gold input[name=prompt]", "p0")
    page.fill("#gold input[name=ranking]", "A > B = C")
    page.click("#gold button[type=submit]")
    page.wait_for_selector("#gold .flash.success")
    page.fill("#gold input[name=ranking]", "A > Q")
    page.click("#gold button[type=submit]")
    page.wait_for_selector("#gold .flash.error")
    assert page.locator("#gold .flash.success").count() == 0


def test_pause_and_exclude_ask_first_and_resume_is_offered_in_place(open_as, lead, project, rater):
    page = open_as(lead, f"/projects/{project.pk}/")
    assert page.locator(f"#members button[aria-label='Pause {lead.username}']").count() == 0
    dismissed: list[str] = []

    def dismiss(dialog) -> None:
        dismissed.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click(f"#members button[aria-label='Pause {rater.username}']")
    page.wait_for_timeout(300)
    assert dismissed and dismissed[0].startswith(f"Pause {rater.username}?")
    assert Membership.objects.get(project=project, user=rater).status == MemberStatus.ACTIVE

    asked = accept_next_dialog(page)
    page.click(f"#members button[aria-label='Pause {rater.username}']")
    page.wait_for_selector(f"#members button[aria-label='Resume {rater.username}']")
    assert asked
    asked = accept_next_dialog(page)
    page.click(f"#members button[aria-label='Exclude the rankings of {rater.username}']")
    page.wait_for_selector(
        f"#members button[aria-label='Include the rankings of {rater.username}']"
    )
    assert asked and "Exclude the rankings" in asked[0]
    page.click(f"#members button[aria-label='Resume {rater.username}']")
    page.wait_for_selector(f"#members button[aria-label='Pause {rater.username}']")
    membership = Membership.objects.get(project=project, user=rater)
    assert membership.status == MemberStatus.ACTIVE and membership.excluded


def test_raising_overlap_in_the_browser_reopens_prompts_for_a_new_rater(
    open_as, lead, imported, make_user, add_member
):
    raters = [add_member(make_user(f"first{index}")) for index in range(2)]
    rank_in_turns(imported, raters, seed=3)
    newcomer = add_member(make_user("newcomer"))
    before = open_as(newcomer, f"/rate/{imported.pk}/")
    before.wait_for_selector("[data-task-state=empty]")

    page = open_as(lead, f"/projects/{imported.pk}/")
    assert page.inner_text("#queue [data-queue=complete]") == "5"
    page.fill("#settings input[name=overlap]", "3")
    page.click("#settings button[type=submit]")
    expect(page.locator("#settings .flash")).to_have_text("Settings saved.")
    # The queue section follows without a reload: nothing complete, all five in progress.
    expect(page.locator("#queue [data-queue=complete]")).to_have_text("0")
    assert page.inner_text("#queue [data-queue=in_progress]") == "5"
    assert Prompt.objects.filter(project=imported, is_complete=True).count() == 0

    after = open_as(newcomer, f"/rate/{imported.pk}/")
    after.wait_for_selector("[data-task]")


def test_the_rubric_builder_posts_what_the_validator_accepts(open_as, lead, project):
    page = open_as(lead, f"/projects/{project.pk}/")
    assert not page.is_visible("#settings textarea[name=rubric]")  # the builder replaces it
    page.click("[data-rubric-preset=hhh]")
    expect(page.locator(".rubric-item")).to_have_count(3)
    # Remove "honest", move "harmless" above "helpful" with Alt+ArrowUp.
    page.click("button[aria-label='Remove Honest']")
    page.locator(".rubric-item").nth(1).locator("[data-rubric=label]").focus()
    page.keyboard.press("Alt+ArrowUp")
    assert page.locator(".rubric-item").first.locator("[data-rubric=label]").input_value() == (
        "Harmless"
    )
    # A new 1-5 scale with end labels, required; and a checkbox.
    page.click("[data-rubric-add=scale]")
    new = page.locator(".rubric-item").last
    new.locator("[data-rubric=label]").fill("Factual accuracy")
    assert new.locator("[data-rubric=key]").input_value() == "factual_accuracy"
    new.locator("[data-rubric=max]").fill("5")
    new.locator("[data-rubric=min_label]").fill("Wrong")
    new.locator("[data-rubric=max_label]").fill("Exact")
    new.locator("[data-rubric=required]").check()
    page.click("[data-rubric-add=checkbox]")
    page.locator(".rubric-item").last.locator("[data-rubric=label]").fill("Unsafe")
    page.click("#settings button[type=submit]")
    expect(page.locator("#settings .flash")).to_have_text("Settings saved.")

    rubric = Project.objects.get(pk=project.pk).rubric
    assert [item["key"] for item in rubric] == ["harmless", "helpful", "factual_accuracy", "unsafe"]
    assert rubric[0] == {**HHH_PRESET[2]}
    assert rubric[2] == {
        "key": "factual_accuracy",
        "label": "Factual accuracy",
        "kind": "scale",
        "required": True,
        "min": 1,
        "max": 5,
        "min_label": "Wrong",
        "max_label": "Exact",
    }
    assert rubric[3] == {"key": "unsafe", "label": "Unsafe", "kind": "checkbox", "required": False}

    # The builder is back after the swap, showing what was saved; a bad range is refused
    # by the server's validator and said at the field.
    expect(page.locator(".rubric-item")).to_have_count(4)
    page.locator(".rubric-item").nth(2).locator("[data-rubric=min]").fill("9")
    page.click("#settings button[type=submit]")
    error = page.wait_for_selector("#id_rubric-error")
    assert "min < max" in error.inner_text()
    assert Project.objects.get(pk=project.pk).rubric == rubric


def test_guidelines_preview_renders_sanitized_markdown(open_as, lead, project):
    page = open_as(lead, f"/projects/{project.pk}/")
    page.fill("#settings textarea[name=guidelines]", "# Rules\n\nPrefer **honest** answers.")
    page.click("#settings button:has-text('Preview')")
    page.wait_for_selector("#guidelines-preview strong")
    assert page.inner_text("#guidelines-preview strong") == "honest"
    assert "not saved yet" in page.inner_text("#guidelines-preview")
    page.click("#settings button[type=submit]")
    expect(page.locator("#settings .flash")).to_have_text("Settings saved.")
    assert "Version 2" in page.inner_text("#settings")


def test_a_stuck_lease_is_released_from_the_queue_section(open_as, lead, imported, rater):
    lease = labeling_services.lease_next_assignment(project=imported, rater=rater)
    assert lease is not None
    page = open_as(lead, f"/projects/{imported.pk}/")
    assert page.inner_text("#queue [data-queue=live_leases]") == "1"
    asked = accept_next_dialog(page)
    page.click(f"#queue tr[data-lease='{lease.pk}'] button")
    page.wait_for_selector("#queue .flash.success")
    assert asked and page.inner_text("#queue [data-queue=live_leases]") == "0"
    page.reload()
    assert "Lease released" in page.inner_text("#audit")
