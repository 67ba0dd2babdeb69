"""Guidelines have a version: changing them bumps it (audited), and raters who confirmed
an older version read them again before their next task, on the page and in the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from labeling import services
from labeling.models import AuditEvent, Membership, Project

pytestmark = pytest.mark.django_db


def confirm_guidelines(project: Project, user) -> None:
    services.membership_mark_guidelines_seen(project=project, user=user)


def test_changing_guidelines_bumps_the_version_and_is_audited(imported, lead):
    services.project_update(project=imported, guidelines="Be kind.", by=lead)
    services.project_update(project=imported, guidelines="Be kind.", by=lead)  # unchanged
    project = Project.objects.get(pk=imported.pk)
    assert project.guidelines_version == 2
    assert project.guidelines_updated_at is not None
    services.project_update(project=imported, overlap=3, by=lead)
    assert Project.objects.get(pk=imported.pk).guidelines_version == 2
    events = AuditEvent.objects.filter(project=imported, action="project.settings")
    versions = [
        event.changes["guidelines_version"] for event in events if "guidelines" in event.changes
    ]
    assert versions == [{"old": 1, "new": 2}]


def test_needs_guidelines_follows_the_version(imported, rater):
    membership = Membership.objects.get(project=imported, user=rater)
    assert not membership.needs_guidelines(imported)  # no guidelines at all
    services.project_update(project=imported, guidelines="Read me.")
    assert membership.needs_guidelines(imported)  # never confirmed
    confirm_guidelines(imported, rater)
    membership.refresh_from_db()
    assert not membership.needs_guidelines(imported)
    services.project_update(project=imported, guidelines="Read me again.")
    assert membership.needs_guidelines(imported)
    membership.guidelines_seen_at = timezone.now() + timedelta(seconds=1)
    assert not membership.needs_guidelines(imported)


def test_the_rater_page_shows_changed_guidelines_before_the_next_task(imported, rater):
    services.project_update(project=imported, guidelines="First **rules**.")
    confirm_guidelines(imported, rater)
    client = Client()
    client.force_login(rater)
    page = client.get(f"/rate/{imported.pk}/")
    assert page.context["state"] == "task"
    services.project_update(project=imported, guidelines="New **rules**.")
    page = client.get(f"/rate/{imported.pk}/")
    assert page.context["state"] == "guidelines"
    assert "<strong>rules</strong>" in page.content.decode()
    client.post(f"/rate/{imported.pk}/guidelines/seen/")
    assert client.get(f"/rate/{imported.pk}/").context["state"] == "task"


def test_the_next_task_api_says_the_guidelines_changed(imported, rater, api_for):
    services.project_update(project=imported, guidelines="Version one.")
    confirm_guidelines(imported, rater)
    api = api_for(rater)
    task = api.get(f"/api/projects/{imported.pk}/next-task/").json()
    assert task["guidelines_changed"] is False and task["guidelines_version"] == 2
    services.project_update(project=imported, guidelines="Version two.")
    task = api.get(f"/api/projects/{imported.pk}/next-task/").json()
    assert task["guidelines_changed"] is True and task["guidelines_version"] == 3
    project = api_for(rater).get(f"/api/projects/{imported.pk}/").json()
    assert project["guidelines_version"] == 3


def test_the_preview_renders_with_the_rater_pages_sanitizer(imported, lead, rater):
    client = Client()
    client.force_login(lead)
    text = "# Rules\n\n<script>alert(1)</script> [x](javascript:alert(1)) **bold**"
    html = client.post(
        f"/projects/{imported.pk}/guidelines/preview/", {"guidelines": text}
    ).content.decode()
    assert "<strong>bold</strong>" in html and "<h1" in html
    assert "<script>alert" not in html and 'href="javascript' not in html
    assert "not saved yet" in html
    other = Client()
    other.force_login(rater)
    assert other.post(f"/projects/{imported.pk}/guidelines/preview/", {}).status_code == 403


def test_the_settings_form_shows_the_version(imported, lead):
    services.project_update(project=imported, guidelines="x")
    client = Client()
    client.force_login(lead)
    assert "Version 2, changed" in client.get(f"/projects/{imported.pk}/").content.decode()


def test_a_rater_mid_session_gets_the_changed_guidelines_after_the_next_submit(imported, rater):
    """The page swaps tasks without reloading: the submit's answer carries the gate."""
    from tests.rankings.rating.page_helpers import action_url, live_assignments, rank_fields

    services.project_update(project=imported, guidelines="First rules.")
    confirm_guidelines(imported, rater)
    client = Client()
    client.force_login(rater)
    client.get(f"/rate/{imported.pk}/")
    current, following = live_assignments(rater)
    services.project_update(project=imported, guidelines="New **rules**.")

    answer = client.post(
        action_url("submit", current),
        {**rank_fields(current), "showing": following.pk},
        headers={"accept": "application/json"},
    ).json()

    assert answer["current"]["assignment_id"] is None
    assert "The guidelines have changed" in answer["current"]["html"]
    assert "<strong>rules</strong>" in answer["current"]["html"]
    assert answer["following"] is None
    assert answer["undo"]["assignment_id"] == current.pk  # the submit itself was saved
    confirm_guidelines(imported, rater)
    assert client.get(f"/rate/{imported.pk}/").context["state"] == "task"
