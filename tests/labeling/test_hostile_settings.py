"""Defects found by hostile input (issue 13), each refused with a 400 naming the field and
nothing saved: quality_settings the flag rules would ignore, NUL characters in a rubric
label or in quality_settings, unknown body fields, excluding a member who has no rater row."""

from __future__ import annotations

import json

import pytest

from labeling.models import AuditEvent, Membership, Project

pytestmark = pytest.mark.django_db


def patch_raw(client, project, body: str):
    """A raw JSON body, so escapes like \\u0000 reach the server as the client wrote them."""
    return client.patch(f"/api/projects/{project.pk}/", body, content_type="application/json")


@pytest.mark.parametrize(
    "value",
    [
        "str",
        [],
        5,
        {"TOO_FAST": {"max_speed_ratio": -1}},
        {"TOO_FAST": {"enabled": "yes"}},
        {"NO_SUCH_RULE": {}},
        {"auto_pause": ["NOT_A_CODE"]},
        {"reopen_when_worse_by": 7},
    ],
)
def test_quality_settings_the_rules_would_ignore_are_refused(project, lead, api_for, value):
    response = patch_raw(api_for(lead), project, json.dumps({"quality_settings": value}))
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "quality_settings"
    project.refresh_from_db()
    assert project.quality_settings == {}


def test_good_quality_settings_are_stored(project, lead, api_for):
    value = {"TOO_FAST": {"max_speed_ratio": 0.2}, "auto_pause": ["STRAIGHT_LINING"]}
    response = patch_raw(api_for(lead), project, json.dumps({"quality_settings": value}))
    assert response.status_code == 200, response.content
    project.refresh_from_db()
    assert project.quality_settings == value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"rubric": [{"key": "helpful", "label": "Help\\u0000ful"}]}', "rubric"),
        ('{"quality_settings": {"TOO_FAST\\u0000": {"max_speed_ratio": 0.2}}}', "quality_settings"),
        ('{"quality_settings": {"auto_pause": ["TOO_FAST\\u0000"]}}', "quality_settings"),
        ('{"name": "bad\\u0000name"}', "name"),
        ('{"guidelines": "x\\u0000"}', "guidelines"),
    ],
)
def test_nul_characters_in_project_settings_are_refused(project, lead, api_for, body, field):
    response = patch_raw(api_for(lead), project, body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    stored = Project.objects.get(pk=project.pk)
    assert (stored.name, stored.rubric, stored.quality_settings) == ("Helpfulness", [], {})


def test_a_nul_character_in_the_rubric_form_is_refused_too(project, lead, client):
    client.force_login(lead)
    rubric = json.dumps([{"key": "helpful", "label": "Help\u0000ful"}])
    response = client.post(
        f"/projects/{project.pk}/settings/",
        {
            "name": "Helpfulness",
            "overlap": 2,
            "lease_seconds": 600,
            "gold_rate": 0.1,
            "repeat_rate": 0,
            "repeat_delay_seconds": 1800,
            "agreement_every_n_rankings": 50,
            "rubric": rubric,
        },
    )
    assert response.status_code == 400
    assert Project.objects.get(pk=project.pk).rubric == []


@pytest.mark.parametrize(
    ("url", "method", "body", "field"),
    [
        ("/api/projects/{project}/", "patch", {"overlapp": 5}, "overlapp"),
        ("/api/projects/{project}/invites/", "post", {"roles": "lead"}, "roles"),
        ("/api/projects/{project}/members/rater1/", "patch", {"paused": True}, "paused"),
        ("/api/projects/", "post", {"name": "x", "ovrlap": 2}, "ovrlap"),
    ],
)
def test_unknown_body_fields_are_refused_naming_them(
    project, lead, rater, make_user, api_for, url, method, body, field
):
    staff = make_user("staff", is_staff=True)
    client = api_for(staff if url == "/api/projects/" else lead)
    response = getattr(client, method)(url.format(project=project.pk), body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert Membership.objects.get(project=project, user=rater).status == "active"
    assert Project.objects.count() == 1


def test_a_project_read_and_patched_back_whole_is_accepted(project, lead, api_for):
    client = api_for(lead)
    body = client.get(f"/api/projects/{project.pk}/").json()
    body["overlap"] = 3
    response = client.patch(f"/api/projects/{project.pk}/", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["overlap"] == 3


def test_unknown_export_parameters_are_refused_naming_them(imported, lead, api_for):
    response = api_for(lead).post(
        f"/api/projects/{imported.pk}/exports/", {"min_agrement": 0.8}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "min_agrement"
    assert not imported.export_jobs.exists()


def test_excluding_a_member_with_no_rater_row_is_refused_and_nothing_is_saved(
    project, lead, engineer, api_for
):
    response = api_for(lead).post(
        f"/api/projects/{project.pk}/raters/{engineer.username}/exclude/",
        {"excluded": True},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "username"
    assert Membership.objects.get(project=project, user=engineer).excluded is False
    assert not AuditEvent.objects.filter(action="member.update").exists()


def test_excluding_a_rater_without_a_score_row_yet_works(project, lead, rater, api_for):
    response = api_for(lead).post(
        f"/api/projects/{project.pk}/raters/{rater.username}/exclude/",
        {"excluded": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["username"] == rater.username
    assert Membership.objects.get(project=project, user=rater).excluded is True
