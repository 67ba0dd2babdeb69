from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from labeling.models import Membership, Project, Role
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def test_token_endpoint_returns_a_token_for_good_credentials(lead):
    response = APIClient().post(
        "/api/auth/token/", {"username": "lead", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/projects/").status_code == 200


def test_token_endpoint_refuses_a_wrong_password(lead):
    response = APIClient().post(
        "/api/auth/token/", {"username": "lead", "password": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "password"


def test_anonymous_requests_are_refused():
    assert APIClient().get("/api/projects/").status_code in (401, 403)


def test_staff_create_a_project_and_become_its_lead(make_user, api_for):
    staff = make_user("admin", is_staff=True)
    response = api_for(staff).post(
        "/api/projects/", {"name": "Harmlessness", "overlap": 5, "allow_ties": False}, format="json"
    )
    assert response.status_code == 201, response.json()
    project = Project.objects.get(pk=response.json()["id"])
    assert project.overlap == 5 and project.allow_ties is False
    assert Membership.objects.get(project=project, user=staff).role == Role.LEAD


def test_users_granted_project_creation_may_create(make_user, api_for):
    user = make_user("creator")
    user.user_permissions.add(Permission.objects.get(codename="add_project"))
    response = api_for(user).post("/api/projects/", {"name": "Mine"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "lead"


def test_ordinary_users_cannot_create_projects(rater, api_for):
    response = api_for(rater).post("/api/projects/", {"name": "Nope"}, format="json")
    assert response.status_code == 403


def test_bad_project_settings_name_the_field(make_user, api_for):
    staff = make_user("admin", is_staff=True)
    response = api_for(staff).post("/api/projects/", {"name": "X", "overlap": 0}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "overlap"


def test_lead_patches_a_project_and_raters_cannot(project, lead, rater, api_for):
    url = f"/api/projects/{project.pk}/"
    assert api_for(lead).patch(url, {"overlap": 4}, format="json").json()["overlap"] == 4
    assert api_for(rater).patch(url, {"overlap": 1}, format="json").status_code == 403
    assert api_for(rater).get(url).json()["role"] == "rater"
    project.refresh_from_db()
    assert project.overlap == 4


def test_outsiders_do_not_see_the_project(project, outsider, api_for):
    assert api_for(outsider).get(f"/api/projects/{project.pk}/").status_code == 404
    assert api_for(outsider).get("/api/projects/").json() == []


def test_invite_then_signup_joins_the_project_with_the_role(project, lead, api_for):
    invite = api_for(lead).post(
        f"/api/projects/{project.pk}/invites/", {"role": "rater"}, format="json"
    )
    assert invite.status_code == 201
    body = invite.json()
    assert body["join_url"].endswith(f"/join/{body['code']}/")
    signup = APIClient().post(
        "/api/auth/signup/",
        {"invite_code": body["code"], "username": "newbie", "password": PASSWORD},
        format="json",
    )
    assert signup.status_code == 201, signup.json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {signup.json()['token']}")
    assert client.get(f"/api/projects/{project.pk}/").json()["role"] == "rater"


def test_signup_with_an_unknown_code_names_the_field():
    response = APIClient().post(
        "/api/auth/signup/",
        {"invite_code": "nope", "username": "x", "password": PASSWORD},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["field"] == "invite_code"


def test_signup_refuses_a_taken_username_and_a_weak_password(project, lead, api_for, rater):
    code = (
        api_for(lead).post(f"/api/projects/{project.pk}/invites/", {}, format="json").json()["code"]
    )
    taken = APIClient().post(
        "/api/auth/signup/",
        {"invite_code": code, "username": "RATER1", "password": PASSWORD},
        format="json",
    )
    assert taken.json()["field"] == "username"
    weak = APIClient().post(
        "/api/auth/signup/",
        {"invite_code": code, "username": "fresh", "password": "123"},
        format="json",
    )
    assert weak.status_code == 400
    assert weak.json()["field"] == "password"


def test_raters_cannot_create_invites(project, rater, api_for):
    response = api_for(rater).post(f"/api/projects/{project.pk}/invites/", {}, format="json")
    assert response.status_code == 403


def test_lead_pauses_and_excludes_a_member(project, lead, rater, api_for):
    url = f"/api/projects/{project.pk}/members/{rater.username}/"
    response = api_for(lead).patch(url, {"status": "paused", "excluded": True}, format="json")
    assert response.status_code == 200
    membership = Membership.objects.get(project=project, user=rater)
    assert membership.status == "paused" and membership.excluded
    members = api_for(lead).get(f"/api/projects/{project.pk}/members/").json()
    assert {member["username"] for member in members} == {"lead", "rater1"}


def test_member_patch_names_bad_fields_and_unknown_users(project, lead, api_for):
    client = api_for(lead)
    bad = client.patch(
        f"/api/projects/{project.pk}/members/lead/", {"status": "gone"}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["field"] == "status"
    missing = client.patch(
        f"/api/projects/{project.pk}/members/ghost/", {"status": "paused"}, format="json"
    )
    assert missing.status_code == 404


def test_browser_join_page_signs_up_and_logs_in(project, lead, client):
    from labeling.services import invite_create

    invite = invite_create(project=project, created_by=lead)
    page = client.get(f"/join/{invite.code}/")
    assert page.status_code == 200 and "Join Helpfulness" in page.text
    response = client.post(f"/join/{invite.code}/", {"username": "walkin", "password": PASSWORD})
    assert response.status_code == 302
    assert Membership.objects.filter(project=project, user__username="walkin").exists()
    assert "Helpfulness" in client.get("/").text


def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in (
        "/api/projects/{project_id}/next-task/",
        "/api/assignments/{assignment_id}/ranking/",
        "/api/projects/{project_id}/agreement/",
        "/api/auth/signup/",
    ):
        assert path in text
    assert client.get("/api/docs/").status_code == 200
