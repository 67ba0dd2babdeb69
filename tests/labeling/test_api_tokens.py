"""Personal API tokens: named, listed, revoked and expired, in the API and on the token page;
the secret is shown once and stored only as a hash; creating tokens is throttled; logging
out can revoke the tokens the browser session made. The README's sign-in line still works."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.accounts import services as token_services
from labeling.models import ApiToken, AuditEvent, TokenOrigin
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def signed_in(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


def sign_in_token(username: str = "lead") -> str:
    response = APIClient().post(
        "/api/auth/token/", {"username": username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


def test_the_readme_sign_in_gives_a_working_token_stored_only_as_its_hash(lead):
    secret = sign_in_token()
    assert signed_in(secret).get("/api/projects/").status_code == 200
    token = ApiToken.objects.get(user=lead)
    assert token.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.origin == TokenOrigin.SIGN_IN
    stored = [str(value) for value in ApiToken.objects.values_list().get()]
    assert not any(secret in value for value in stored)
    assert token.expires_at is not None
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)


def test_a_named_token_is_shown_once_then_listed_without_its_secret(lead, api_for):
    client = api_for(lead)
    created = client.post(
        "/api/tokens/", {"name": "nightly export", "expires_in_days": 7}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    secret = body["token"]
    assert body["name"] == "nightly export" and body["state"] == "live"
    assert secret.startswith(body["prefix"])
    listing = client.get("/api/tokens/")
    assert listing.status_code == 200
    assert secret not in listing.content.decode()
    named = [row for row in listing.json() if row["name"] == "nightly export"]
    assert len(named) == 1 and "token" not in named[0]
    assert signed_in(secret).get("/api/projects/").status_code == 200


def test_a_revoked_token_stops_working_and_others_tokens_cannot_be_revoked(lead, rater, api_for):
    mine = token_services.api_token_create(user=lead, name="script")
    theirs = token_services.api_token_create(user=rater, name="theirs")
    client = signed_in(mine.secret)
    assert client.delete(f"/api/tokens/{theirs.token.pk}/").status_code == 404
    assert signed_in(theirs.secret).get("/api/projects/").status_code == 200
    assert client.delete(f"/api/tokens/{mine.token.pk}/").status_code == 204
    refused = client.get("/api/projects/")
    assert refused.status_code == 401
    assert refused.json()["code"] == "authentication_failed"
    again = api_for(lead).delete(f"/api/tokens/{mine.token.pk}/")
    assert again.status_code == 204  # revoking twice is harmless


def test_an_expired_token_is_refused_with_401(lead):
    created = token_services.api_token_create(user=lead, name="short", expires_in_days=1)
    ApiToken.objects.filter(pk=created.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = signed_in(created.secret).get("/api/projects/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    listing = signed_in(token_services.api_token_create(user=lead, name="x").secret)
    states = {row["name"]: row["state"] for row in listing.get("/api/tokens/").json()}
    assert states["short"] == "expired"


def test_a_deactivated_users_token_is_refused(lead):
    secret = token_services.api_token_create(user=lead, name="x").secret
    lead.is_active = False
    lead.save(update_fields=["is_active"])
    assert signed_in(secret).get("/api/projects/").status_code == 401


def test_a_token_cannot_create_a_token_that_outlives_it(lead):
    short = token_services.api_token_create(user=lead, name="short", expires_in_days=3)
    client = signed_in(short.secret)
    forever = client.post(
        "/api/tokens/", {"name": "forever", "expires_in_days": None}, format="json"
    )
    assert forever.status_code == 400
    assert forever.json()["field"] == "expires_in_days"
    longer = client.post("/api/tokens/", {"name": "longer", "expires_in_days": 30}, format="json")
    assert longer.status_code == 400
    assert (
        client.post("/api/tokens/", {"name": "ok", "expires_in_days": 2}, format="json").status_code
        == 201
    )


def test_a_browser_session_may_create_a_token_that_never_expires(lead):
    client = APIClient()
    client.force_login(lead)
    response = client.post(
        "/api/tokens/", {"name": "forever", "expires_in_days": None}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["expires_at"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "expire_days": 3}, "expire_days"),
        ({"name": "", "expires_in_days": 3}, "name"),
        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "expires_in_days": 10**12}, "expires_in_days"),
        ({"name": "a\u0000b"}, "name"),
    ],
)
def test_bad_token_requests_are_refused_naming_the_field(lead, api_for, body, field):
    response = api_for(lead).post("/api/tokens/", body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field


@pytest.fixture
def strict_token_rate(settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token_create": "3/hour"}
    # DRF reloads its settings when the settings fixture changes or restores them.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


def test_creating_tokens_is_throttled_per_user_in_api_and_page(strict_token_rate, lead, rater):
    client = APIClient()
    client.force_login(lead)
    answers = [
        client.post("/api/tokens/", {"name": f"t{n}"}, format="json").status_code for n in range(3)
    ]
    assert answers == [201, 201, 201]
    throttled = client.post("/api/tokens/", {"name": "one too many"}, format="json")
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert client.get("/api/tokens/").status_code == 200  # listing is not throttled
    browser = Client()
    browser.force_login(lead)
    page = browser.post("/account/tokens/", {"name": "page", "expires": "7"})
    assert page.status_code == 429
    assert not ApiToken.objects.filter(name="page").exists()
    other = APIClient()
    other.force_login(rater)
    assert other.post("/api/tokens/", {"name": "mine"}, format="json").status_code == 201


def test_sign_in_tokens_do_not_pile_up(lead, settings):
    settings.API_TOKEN_SIGN_IN_KEEP = 2
    secrets = [sign_in_token() for _ in range(3)]
    assert signed_in(secrets[0]).get("/api/projects/").status_code == 401
    assert all(signed_in(s).get("/api/projects/").status_code == 200 for s in secrets[1:])


def test_signup_answers_with_a_working_token(project, lead, api_for):
    code = api_for(lead).post(f"/api/projects/{project.pk}/invites/", {}, format="json")
    code = code.json()["code"]
    signup = APIClient().post(
        "/api/auth/signup/",
        {"invite_code": code, "username": "newcomer", "password": PASSWORD},
        format="json",
    )
    assert signup.status_code == 201
    assert signed_in(signup.json()["token"]).get("/api/projects/").status_code == 200
    assert ApiToken.objects.get(user__username="newcomer").origin == TokenOrigin.SIGN_UP


def test_token_changes_go_to_the_audit_log(lead, api_for):
    client = api_for(lead)
    created = client.post("/api/tokens/", {"name": "audited"}, format="json").json()
    client.delete(f"/api/tokens/{created['id']}/")
    events = list(
        AuditEvent.objects.filter(actor=lead, target__startswith="audited").order_by("id")
    )
    assert [event.action for event in events] == ["token.create", "token.revoke"]
    assert all(created["token"] not in str(event.changes) for event in events)


# The token page ------------------------------------------------------------------------


def test_the_token_page_shows_the_secret_once_then_only_its_prefix(lead):
    browser = Client()
    browser.force_login(lead)
    created = browser.post("/account/tokens/", {"name": "notebook", "expires": "30"})
    assert created.status_code == 201
    token = ApiToken.objects.get(user=lead, name="notebook")
    secret = created.context["created"].secret
    assert secret in created.content.decode()
    assert created["Cache-Control"] == "no-store"
    assert token.key_hash == token_services.token_hash(secret)
    again = browser.get("/account/tokens/")
    assert again.status_code == 200
    assert secret not in again.content.decode() and token.prefix in again.content.decode()
    assert signed_in(secret).get("/api/projects/").status_code == 200
    revoke = browser.post(f"/account/tokens/{token.pk}/revoke/")
    assert revoke.status_code == 302
    assert signed_in(secret).get("/api/projects/").status_code == 401


def test_the_token_page_needs_a_sign_in_and_shows_only_your_tokens(lead, rater):
    assert Client().get("/account/tokens/").status_code == 302
    token_services.api_token_create(user=rater, name="raters-secret-script")
    browser = Client()
    browser.force_login(lead)
    page = browser.get("/account/tokens/")
    assert "raters-secret-script" not in page.content.decode()
    other = token_services.api_token_create(user=rater, name="x").token
    assert browser.post(f"/account/tokens/{other.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=other.pk).revoked_at is None


def test_revoke_all_on_the_page(lead):
    secrets = [token_services.api_token_create(user=lead, name=f"t{n}").secret for n in range(2)]
    browser = Client()
    browser.force_login(lead)
    assert browser.post("/account/tokens/revoke-all/").status_code == 302
    assert all(signed_in(s).get("/api/projects/").status_code == 401 for s in secrets)


def test_logging_out_can_revoke_the_tokens_this_session_made(lead):
    elsewhere = token_services.api_token_create(user=lead, name="from a script").secret
    browser = Client()
    browser.force_login(lead)
    browser.post("/account/tokens/", {"name": "made here", "expires": "7"})
    made_here = ApiToken.objects.get(name="made here")
    browser.post("/logout/", {"revoke_tokens": "1"})
    assert ApiToken.objects.get(pk=made_here.pk).revoked_at is not None
    assert signed_in(elsewhere).get("/api/projects/").status_code == 200


def test_logging_out_without_the_option_keeps_tokens(lead):
    browser = Client()
    browser.force_login(lead)
    browser.post("/account/tokens/", {"name": "made here", "expires": "7"})
    browser.post("/logout/")
    assert ApiToken.objects.get(name="made here").revoked_at is None


# Tokens from before: DRF's plain-text table -------------------------------------------------


def test_tokens_from_drfs_plain_text_table_keep_working_hashed(lead):
    import importlib

    migration = importlib.import_module("labeling.migrations.0004_api_tokens_and_audit_log")
    from django.apps import apps

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id bigint, "
            "created timestamp with time zone)"
            if connection.vendor == "postgresql"
            else "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer, "
            "created datetime)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)",
            ["0123456789abcdef0123456789abcdef01234567", lead.pk, timezone.now()],
        )
    # The function reads only the editor's connection (no schema change inside a test).
    migration.hash_legacy_tokens(apps, SimpleNamespace(connection=connection))
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0  # the plain-text secrets are gone
        cursor.execute("DROP TABLE authtoken_token")
    token = ApiToken.objects.get(user=lead)
    assert token.origin == TokenOrigin.MIGRATED and token.expires_at is not None
    old = signed_in("0123456789abcdef0123456789abcdef01234567")
    assert old.get("/api/projects/").status_code == 200
