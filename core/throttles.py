"""Throttles for signing in and signing up: per client address and per username, so
guessing passwords is slow and one attacker cannot burn the server's CPU on password
hashing. Exceeding one answers 429 `{detail, code: "throttled"}` with Retry-After."""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpRequest
from rest_framework.throttling import SimpleRateThrottle


class SignInAddressThrottle(SimpleRateThrottle):
    """Attempts from one client address (REMOTE_ADDR, or the proxy's X-Forwarded-For
    within NUM_PROXIES)."""

    scope = "sign_in_address"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class SignInUsernameThrottle(SimpleRateThrottle):
    """Attempts on one username, from anywhere: a spread-out guess still slows down."""

    scope = "sign_in_username"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        username = submitted_username(request)
        if not username:
            return None
        # Hashed: a username may hold characters a cache key must not (spaces, controls).
        ident = hashlib.sha256(username.casefold().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


SIGN_IN_THROTTLES = [SignInAddressThrottle, SignInUsernameThrottle]


def submitted_username(request: Any) -> str:
    data = getattr(request, "data", None)
    if data is None:
        data = getattr(request, "POST", {})
    value = data.get("username", "") if hasattr(data, "get") else ""
    return str(value).strip().lower()[:150]


def sign_in_wait_seconds(request: HttpRequest) -> float | None:
    """For views outside DRF (the login form): seconds to wait, or None when allowed."""
    waits = []
    for throttle_class in SIGN_IN_THROTTLES:
        throttle = throttle_class()
        if not throttle.allow_request(request, None):  # type: ignore[arg-type]
            waits.append(throttle.wait() or 1.0)
    return max(waits) if waits else None
