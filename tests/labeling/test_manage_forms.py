"""Every form on the lead's Manage page answers bad input with the fragment that says what
is wrong, next to the field, with a 400 (which htmx swaps) and never a success message;
pause and exclude ask first; a lead cannot pause or exclude themselves."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from labeling import services
from labeling.models import AuditEvent, Membership, MemberStatus, Project
from tests.helpers import sample_records

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


def settings_form(client: Client, project: Project) -> dict:
    form = client.get(f"/projects/{project.pk}/").context["settings_form"]
    return {name: value for name, value in form.initial.items() if value is not None}


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("gold_rate", "1.5", "between 0 and 1"),
        ("lease_seconds", "5", "30"),
        ("overlap", "0", "greater than or equal to 1"),
        ("rubric", "[{", "not valid JSON"),
        ("rubric", '[{"key": "Bad Key"}]', "lower_snake_case"),
        ("rubric", '[{"key": "a", "min": 3, "max": 2}]', "needs min"),
        ("max_overlap", "1", "at least the overlap"),
    ],
)
def test_invalid_settings_are_marked_at_the_field_and_not_saved(
    client_for, lead, imported, field, value, says
):
    client = client_for(lead)
    form = settings_form(client, imported)
    form.update({"rubric": "", field: value})
    if field == "max_overlap":
        form["overlap"] = 2
    response = client.post(f"/projects/{imported.pk}/settings/", form, **HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert f'id="id_{field}-error"' in html
    assert says in html
    assert "Settings saved" not in html
    assert 'class="flash error"' in html
    assert not AuditEvent.objects.filter(project=imported, action="project.settings").exists()


def test_lease_seconds_too_short_is_refused_even_without_htmx(client_for, lead, imported):
    client = client_for(lead)
    form = settings_form(client, imported)
    form.update(lease_seconds=5, rubric="")
    response = client.post(f"/projects/{imported.pk}/settings/", form)
    assert response.status_code == 400
    assert 'id="id_lease_seconds-error"' in response.content.decode()
    assert Project.objects.get(pk=imported.pk).lease_seconds != 5


def test_a_bad_import_after_a_good_one_shows_only_the_error(client_for, lead, project):
    client = client_for(lead)
    good = SimpleUploadedFile("good.json", json.dumps(sample_records(2)).encode())
    ok = client.post(f"/projects/{project.pk}/import/", {"file": good}, **HTMX)
    assert ok.status_code == 200 and "Imported 2 prompts" in ok.content.decode()
    bad = SimpleUploadedFile("bad.jsonl", b'{"prompt": "Hi", "responses": [{"text": 5}]}\n')
    refused = client.post(f"/projects/{project.pk}/import/", {"file": bad}, **HTMX)
    html = refused.content.decode()
    assert refused.status_code == 400
    assert "Nothing was imported" in html and "Imported" not in html.replace("imported", "")
    assert 'class="field has-error"' in html
    missing = client.post(f"/projects/{project.pk}/import/", {}, **HTMX)
    assert missing.status_code == 400 and "This field is required" in missing.content.decode()
    assert project.prompts.count() == 2


def test_an_unknown_invite_role_is_marked_not_a_404(client_for, lead, project):
    response = client_for(lead).post(f"/projects/{project.pk}/invites/", {"role": "boss"}, **HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_role-error"' in html and "not one of the available choices" in html
    assert "Share this link" not in html
    assert not project.invites.exists()


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"prompt": "", "ranking": "A > B"}, "This field is required"),
        ({"prompt": "no-such-prompt", "ranking": "A > B"}, "no-such-prompt"),
        ({"prompt": "p0", "ranking": "A > Z"}, "Z"),
    ],
)
def test_gold_errors_are_shown_and_nothing_is_marked(client_for, lead, imported, form, says):
    response = client_for(lead).post(f"/projects/{imported.pk}/gold/", form, **HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'class="flash error"' in html and says in html
    assert "now gold" not in html
    assert not imported.prompts.filter(is_gold=True).exists()


def test_pause_without_javascript_asks_first_then_pauses(client_for, lead, project, rater):
    client = client_for(lead)
    url = f"/projects/{project.pk}/members/{rater.username}/"
    asked = client.post(url, {"action": "pause"})
    assert asked.status_code == 200
    assert 'name="confirmed"' in asked.content.decode()
    assert Membership.objects.get(project=project, user=rater).status == MemberStatus.ACTIVE
    done = client.post(url, {"action": "pause", "confirmed": "1"})
    assert done.status_code == 302
    assert Membership.objects.get(project=project, user=rater).status == MemberStatus.PAUSED


def test_members_section_asks_in_the_browser_and_offers_resume(client_for, lead, project, rater):
    client = client_for(lead)
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert f'hx-confirm="Pause {rater.username}?' in page
    assert f'hx-confirm="Exclude the rankings of {rater.username}' in page
    # htmx already asked: the action happens at once, and the same section offers Resume
    url = f"/projects/{project.pk}/members/{rater.username}/"
    paused = client.post(url, {"action": "pause"}, **HTMX).content.decode()
    assert f'aria-label="Resume {rater.username}"' in paused
    excluded = client.post(url, {"action": "exclude"}, **HTMX).content.decode()
    assert f'aria-label="Include the rankings of {rater.username}"' in excluded


@pytest.mark.parametrize("action", ["pause", "exclude"])
def test_a_lead_cannot_pause_or_exclude_themselves_in_the_browser(
    client_for, lead, project, action
):
    client = client_for(lead)
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert f'aria-label="Pause {lead.username}"' not in page
    response = client.post(
        f"/projects/{project.pk}/members/{lead.username}/", {"action": action}, **HTMX
    )
    assert response.status_code == 400
    assert "you cannot" in response.content.decode()
    membership = Membership.objects.get(project=project, user=lead)
    assert membership.status == MemberStatus.ACTIVE and not membership.excluded


@pytest.mark.parametrize(
    ("change", "says"), [({"status": "paused"}, "pause"), ({"excluded": True}, "exclude")]
)
def test_a_lead_cannot_pause_or_exclude_themselves_through_the_api(
    api_for, lead, project, change, says
):
    response = api_for(lead).patch(
        f"/api/projects/{project.pk}/members/{lead.username}/", change, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "username"
    assert says in response.json()["detail"]


def test_a_lead_may_resume_themselves_if_paused_before_the_rule(client_for, lead, project):
    Membership.objects.filter(project=project, user=lead).update(
        status=MemberStatus.PAUSED, excluded=True
    )
    client = client_for(lead)
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert f'aria-label="Resume {lead.username}"' in page
    url = f"/projects/{project.pk}/members/{lead.username}/"
    assert client.post(url, {"action": "resume"}, **HTMX).status_code == 200
    assert client.post(url, {"action": "include"}, **HTMX).status_code == 200
    membership = Membership.objects.get(project=project, user=lead)
    assert membership.status == MemberStatus.ACTIVE and not membership.excluded


def test_another_lead_can_be_paused(client_for, lead, project, make_user, add_member):
    other = add_member(make_user("colead"), "lead")
    services.member_update(project=project, username=other.username, status="paused", by=lead)
    assert Membership.objects.get(project=project, user=other).status == MemberStatus.PAUSED


# The quality dashboard and its API go through the same rule ---------------------------------


@pytest.fixture
def lead_flag(project, lead):
    from rankings.models import Flag

    return Flag.objects.create(project=project, rater=lead, code="LOW_AGREEMENT")


@pytest.mark.parametrize("action", ["pause-rater", "exclude-rater"])
def test_a_lead_cannot_act_on_their_own_flag_through_the_api(api_for, lead, lead_flag, action):
    response = api_for(lead).post(f"/api/flags/{lead_flag.pk}/{action}/", {}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "username"
    membership = Membership.objects.get(project=lead_flag.project, user=lead)
    assert membership.status == MemberStatus.ACTIVE and not membership.excluded
    lead_flag.refresh_from_db()
    assert lead_flag.status == "open"


@pytest.mark.parametrize("action", ["pause", "exclude"])
def test_a_lead_cannot_act_on_themselves_from_the_quality_dashboard(
    client_for, lead, project, lead_flag, action
):
    client = client_for(lead)
    flag_url = f"/rate/{project.pk}/quality/flags/{lead_flag.pk}/{action}/"
    answer = client.post(flag_url, **HTMX)
    assert answer.status_code == 400 and "you cannot" in answer.content.decode()
    rater_url = f"/rate/{project.pk}/quality/raters/{lead.username}/{action}/"
    answer = client.post(rater_url, **HTMX)
    assert answer.status_code == 400 and "you cannot" in answer.content.decode()
    membership = Membership.objects.get(project=project, user=lead)
    assert membership.status == MemberStatus.ACTIVE and not membership.excluded


def test_the_quality_dashboard_asks_before_pausing_or_excluding(client_for, lead, project, rater):
    from rankings.models import Flag

    Flag.objects.create(project=project, rater=rater, code="LOW_AGREEMENT")
    page = client_for(lead).get(f"/rate/{project.pk}/quality/").content.decode()
    assert f'hx-confirm="Pause {rater.username}?' in page
    assert f'hx-confirm="Exclude the rankings of {rater.username}' in page
