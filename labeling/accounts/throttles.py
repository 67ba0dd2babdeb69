"""Token creation is throttled per user (API and token page alike): a stolen session or
token cannot mint secrets in bulk. Exceeding it answers 429 with Retry-After."""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle

DEFAULT_RATE = "20/hour"


class TokenCreateThrottle(UserRateThrottle):
    scope = "token_create"

    def get_rate(self) -> str:
        # Read when asked, not when DRF's class attribute was bound: settings can change.
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        return str(rates.get(self.scope) or DEFAULT_RATE)


def token_create_wait_seconds(request: HttpRequest) -> float | None:
    """For the token page (outside DRF): seconds to wait, or None when allowed."""
    throttle = TokenCreateThrottle()
    if throttle.allow_request(request, None):  # type: ignore[arg-type]
        return None
    return throttle.wait() or 1.0
