"""Signing in is throttled per address and per username: guesses get a clear 429 before
any password is hashed, in the API and on the login form."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def strict_rates(settings):
    rates: dict[str, Any] = {"sign_in_address": "100/min", "sign_in_username": "3/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES  # type: ignore[assignment]
    yield
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK}
    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES  # type: ignore[assignment]


def token(username: str, password: str):
    return APIClient().post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def test_guessing_one_username_is_throttled_with_a_429(strict_rates, lead):
    answers = [token("lead", f"guess-{n}").status_code for n in range(3)]
    assert answers == [400, 400, 400]
    throttled = token("lead", "guess-4")
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled"
    assert int(throttled["Retry-After"]) > 0
    # Another username from the same address is still allowed.
    assert token("someone-else", "x").status_code == 400


def test_the_login_form_is_throttled_too(strict_rates, lead):
    client = Client()
    for attempt in range(3):
        page = client.post("/login/", {"username": "lead", "password": f"no-{attempt}"})
        assert page.status_code == 200
    throttled = client.post("/login/", {"username": "lead", "password": "no-4"})
    assert throttled.status_code == 429
    assert "Too many sign-in attempts" in throttled.content.decode()
