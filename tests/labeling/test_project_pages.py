from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling.models import Invite, Membership, Project, Prompt
from tests.helpers import sample_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead_client(client, lead):
    client.force_login(lead)
    return client


def test_lead_sees_progress_members_and_links(lead_client, imported, rater):
    page = lead_client.get(f"/projects/{imported.pk}/")
    assert page.status_code == 200
    text = page.text
    assert "Helpfulness" in text and "rater1" in text
    assert f"/rate/{imported.pk}/quality/" in text
    assert "<dd>5</dd>" in text  # five prompts


def test_raters_and_outsiders_cannot_open_the_manage_page(client, imported, rater, outsider):
    client.force_login(rater)
    assert client.get(f"/projects/{imported.pk}/").status_code == 403
    client.force_login(outsider)
    assert client.get(f"/projects/{imported.pk}/").status_code == 404


def test_settings_save_and_bad_values_are_marked(lead_client, project):
    url = f"/projects/{project.pk}/settings/"
    good = {
        "name": "Renamed",
        "overlap": 4,
        "max_overlap": 6,
        "lease_seconds": 900,
        "allow_ties": "on",
        "gold_rate": 0.2,
        "repeat_rate": 0.05,
        "repeat_delay_seconds": 600,
        "rubric": "hhh",
        "agreement_every_n_rankings": 25,
    }
    response = lead_client.post(url, good, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "Settings saved." in response.text
    project.refresh_from_db()
    assert project.name == "Renamed" and project.overlap == 4 and len(project.rubric) == 3
    bad = {**good, "max_overlap": 2, "rubric": '[{"key": "Bad Key"}]'}
    response = lead_client.post(url, bad, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "must be at least the overlap" in response.text
    assert "key must be lower_snake_case" in response.text
    project.refresh_from_db()
    assert project.max_overlap == 6


def test_upload_import_is_all_or_nothing_and_names_the_line(lead_client, project):
    records = sample_records(3)
    records[1]["responses"] = [f"answer {index}" for index in range(10)]
    upload = SimpleUploadedFile("bad.jsonl", "\n".join(map(json.dumps, records)).encode())
    response = lead_client.post(
        f"/projects/{project.pk}/import/", {"file": upload}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 400
    assert "line 2: responses: takes at most 9 responses" in response.text
    assert not Prompt.objects.exists()
    good = SimpleUploadedFile("good.json", json.dumps(sample_records(3)).encode())
    response = lead_client.post(
        f"/projects/{project.pk}/import/", {"file": good}, headers={"HX-Request": "true"}
    )
    assert "Imported 3 prompts." in response.text
    assert Prompt.objects.filter(project=project).count() == 3


def test_lead_creates_an_invite_link(lead_client, project):
    response = lead_client.post(
        f"/projects/{project.pk}/invites/", {"role": "engineer"}, headers={"HX-Request": "true"}
    )
    invite = Invite.objects.get(project=project)
    assert invite.role == "engineer"
    assert f"/join/{invite.code}/" in response.text


def test_lead_pauses_and_excludes_a_rater_from_the_page(lead_client, project, rater):
    url = f"/projects/{project.pk}/members/{rater.username}/"
    lead_client.post(url, {"action": "pause"}, headers={"HX-Request": "true"})
    response = lead_client.post(url, {"action": "exclude"}, headers={"HX-Request": "true"})
    membership = Membership.objects.get(project=project, user=rater)
    assert membership.status == "paused" and membership.excluded
    assert "Resume" in response.text and "Include" in response.text


def test_staff_create_projects_in_the_browser(client, make_user):
    staff = make_user("boss", is_staff=True)
    client.force_login(staff)
    response = client.post("/projects/new/", {"name": "Safety", "overlap": 3, "allow_ties": "on"})
    project = Project.objects.get(name="Safety")
    assert response.status_code == 302 and response.url == f"/projects/{project.pk}/"
    assert Membership.objects.get(project=project, user=staff).role == "lead"


def test_ordinary_users_cannot_create_projects_in_the_browser(client, rater):
    client.force_login(rater)
    assert client.get("/projects/new/").status_code == 403
