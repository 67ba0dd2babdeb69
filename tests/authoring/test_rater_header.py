"""The rater header: one partial (labeling) heads the rank, demonstration, red-team and arena
pages, each with the tools its script drives."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.models import Membership, Project
from tests.authoring.arena.helpers import make_arena_project
from tests.authoring.demonstrations.helpers import make_demo_project
from tests.authoring.redteam.helpers import briefs_import, make_red_team
from tests.helpers import import_prompts, sample_records

pytestmark = pytest.mark.django_db

HEADER = "labeling/_rater_header.html"
GUIDELINES = "Be **kind**."


def _rater_page(client, project: Project, rater) -> tuple[str, list[str]]:
    """The page's header and the names of the templates that rendered the page."""
    Membership.objects.update_or_create(
        project=project, user=rater, defaults={"guidelines_seen_at": timezone.now()}
    )
    client.force_login(rater)
    response = client.get(reverse("rankings:rate", kwargs={"project_id": project.pk}))
    assert response.status_code == 200
    headers = re.findall(r'<header class="rate-head">.*?</header>', response.content.decode(), re.S)
    assert len(headers) == 1, "one rater header per page"
    return headers[0], [template.name for template in response.templates]


def _buttons(header: str) -> dict[str, str]:
    """Each button of the header by what it does (dialog opened or data attribute)."""
    found = {}
    for button in re.findall(r"<button [^>]*>", header):
        dialog = re.search(r'data-open-dialog="([\w-]+)"', button)
        found[dialog.group(1) if dialog else re.findall(r"data-[\w-]+", button)[0]] = button
    return found


def _with_guidelines(project: Project) -> Project:
    project.guidelines = GUIDELINES
    project.save(update_fields=["guidelines"])
    return project


def test_rank_page_header_has_lease_clock_and_script_only_buttons(client, imported, rater):
    header, templates = _rater_page(client, _with_guidelines(imported), rater)
    assert HEADER in templates
    assert f"<h1>{imported.name}</h1>" in header
    assert "data-done-today>0<" in header and "data-left>5<" in header
    assert "data-lease-clock hidden" in header and "data-lease-left" in header
    buttons = _buttons(header)
    assert set(buttons) == {"guidelines-dialog", "keys-dialog"}
    assert all("data-js-only hidden" in button for button in buttons.values())
    assert 'aria-keyshortcuts="G"' in buttons["guidelines-dialog"]


def test_a_project_without_guidelines_has_no_guidelines_button(client, imported, rater):
    header, _ = _rater_page(client, imported, rater)
    assert set(_buttons(header)) == {"keys-dialog"}


def test_demonstration_page_header_has_guidelines_and_keys(client, lead, make_user):
    project = make_demo_project(lead)
    import_prompts(project, sample_records(2, responses=0))
    header, templates = _rater_page(client, project, make_user("writer"))
    assert HEADER in templates
    assert "data-done-today>0<" in header and "data-left>2<" in header
    assert "data-lease-clock" not in header
    buttons = _buttons(header)
    assert set(buttons) == {"guidelines-dialog", "keys-dialog"}
    assert not any("data-js-only" in button for button in buttons.values())


def test_red_team_page_header_opens_guidelines_with_alt_g(client, project, rater, fake_llm):
    make_red_team(_with_guidelines(project), fake_llm.base_url)
    briefs_import(project)
    header, templates = _rater_page(client, project, rater)
    assert HEADER in templates
    assert "data-done-today>" in header
    buttons = _buttons(header)
    assert set(buttons) == {"guidelines-dialog"}
    assert 'aria-keyshortcuts="Alt+G"' in buttons["guidelines-dialog"]
    assert '<kbd aria-hidden="true">Alt+G</kbd>' in header


@pytest.mark.parametrize(("daily_cap", "shown"), [(5, "data-votes-left>5<"), (None, None)])
def test_arena_page_header_counts_votes_and_starts_battles(
    client, lead, make_user, fake_llm, settings, daily_cap, shown
):
    settings.LLM_SEMAPHORE_URL = ""
    project = _with_guidelines(make_arena_project(lead, fake_llm.base_url, daily_cap=daily_cap))
    header, templates = _rater_page(client, project, make_user("voter"))
    assert HEADER in templates
    assert f'{project.name} <span class="muted">· arena</span></h1>' in header
    assert "data-done-today" not in header  # the arena has no queue
    if shown:
        assert shown in header
    else:
        assert "data-votes-left" not in header
    assert set(_buttons(header)) == {"guidelines-dialog", "data-new-battle"}
    assert 'aria-keyshortcuts="N"' in _buttons(header)["data-new-battle"]
