"""Accounts made through invites: usernames that could break pages or mislead a lead are
refused with the field named, passwords meet Django's full set of validators, and invite
limits stay in range."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def invite_code(project, lead, api_for) -> str:
    response = api_for(lead).post(f"/api/projects/{project.pk}/invites/", {}, format="json")
    return str(response.json()["code"])


def signup(code: str, username: str, password: str = PASSWORD):
    return APIClient().post(
        "/api/auth/signup/",
        {"invite_code": code, "username": username, "password": password},
        format="json",
    )


@pytest.mark.parametrize(
    "username",
    [
        "<script>alert(1)</script>",
        "a b/c",
        "slash/name",
        "evil\u202egnp.exe",  # right-to-left override
        "tab\tname",
        "nul\u0000name",
        "x" * 151,
    ],
)
def test_hostile_usernames_are_refused_naming_the_field(invite_code, username):
    response = signup(invite_code, username)
    assert response.status_code == 400
    assert response.json()["field"] == "username"


def test_a_plain_username_with_punctuation_is_welcome(invite_code):
    response = signup(invite_code, "ana.b-1@team")
    assert response.status_code == 201, response.content


def test_an_all_numeric_password_is_refused(invite_code):
    response = signup(invite_code, "numeric", "8491027364519")
    assert response.status_code == 400
    assert response.json()["field"] == "password"


def test_a_password_like_the_username_is_refused(invite_code):
    response = signup(invite_code, "margarethamilton", "margarethamilton1")
    assert response.status_code == 400
    assert response.json()["field"] == "password"


def test_invite_max_uses_out_of_range_is_refused(project, lead, api_for):
    response = api_for(lead).post(
        f"/api/projects/{project.pk}/invites/", {"max_uses": 87178291199}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "max_uses"
