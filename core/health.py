"""Liveness and readiness probes: ``/healthz`` says the process answers, ``/readyz`` that the
database and the Celery broker are reachable. ``python -m core.health`` is the container's
own health check (the slim image has no curl).

Probes are unauthenticated, so nothing here may reveal configuration: bodies and log lines
name a check and its state, never a URL, a host, a password or an exception's text.
"""

from __future__ import annotations

import http.client
import logging
import os
import sys
import urllib.request
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from kombu.connection import Connection

logger = logging.getLogger(__name__)

OK = "ok"
UNREACHABLE = "unreachable"
IN_PROCESS = "in-process"

# libpq rounds a connect timeout below 2 seconds up to 2.
DATABASE_CONNECT_TIMEOUT_SECONDS = 2
BROKER_TIMEOUT_SECONDS = 1.5
PROBE_TIMEOUT_SECONDS = 3.0


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests; touches neither database nor broker."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer, 503 naming the check that failed."""
    checks = {"database": database_status(), "broker": broker_status()}
    ready = all(state in {OK, IN_PROCESS} for state in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


def database_status(alias: str = DEFAULT_DB_ALIAS) -> str:
    """Run ``SELECT 1`` on a fresh connection opened with a short connect timeout.

    A connection of its own rather than the request's: the timeout is bounded here whatever
    the settings say, and a failed probe leaves no broken persistent connection behind.
    """
    current = connections[alias]
    options: dict[str, Any] = dict(current.settings_dict.get("OPTIONS") or {})
    options.pop("pool", None)  # one connection, not a pool per probe
    if current.vendor in {"postgresql", "mysql"}:
        options["connect_timeout"] = DATABASE_CONNECT_TIMEOUT_SECONDS
    probe = type(current)({**current.settings_dict, "OPTIONS": options}, alias)
    try:
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        logger.warning("readiness: database %r unreachable (%s)", alias, type(error).__name__)
        return UNREACHABLE
    finally:
        probe.close()
    return OK


def broker_status() -> str:
    """Connect to the Celery broker once, without retries; ``in-process`` when there is none."""
    url = getattr(settings, "CELERY_BROKER_URL", "")
    if not url:
        return IN_PROCESS
    transport_options = {
        **getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}),
        "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
        "socket_timeout": BROKER_TIMEOUT_SECONDS,
        "retry_on_timeout": False,
    }
    try:
        with Connection(  # type: ignore[no-untyped-call]
            url,
            connect_timeout=BROKER_TIMEOUT_SECONDS,
            ssl=getattr(settings, "CELERY_BROKER_USE_SSL", False),
            transport_options=transport_options,
        ) as broker:
            broker.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as error:
        logger.warning("readiness: broker unreachable (%s)", type(error).__name__)
        return UNREACHABLE
    return OK


def probe_host() -> str:
    """A Host header Django accepts: the first usable ALLOWED_HOSTS entry from the environment.

    Probing ``127.0.0.1`` with its own Host header would be refused (400) as soon as the
    operator sets ALLOWED_HOSTS to the public name only.
    """
    for entry in os.environ.get("ALLOWED_HOSTS", "localhost").split(","):
        host = entry.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def probe(url: str | None = None, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """True when ``GET url`` (default: this container's /healthz) answers 200 in time."""
    url = url or f"http://127.0.0.1:{os.environ.get('PORT') or 8000}/healthz"
    request = urllib.request.Request(url, headers={"Host": probe_host()})
    # No proxy: an HTTP_PROXY in the container's environment must not reroute a local probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):  # refused, timed out, 4xx/5xx, garbage
        return False


def main(argv: Sequence[str]) -> int:
    return 0 if probe(argv[0] if argv else None) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
