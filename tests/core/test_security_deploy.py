"""`manage.py check --deploy` is clean with the production settings an operator sets behind
TLS (README, Configuration), and names what is missing when they are not set."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "ranklab.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://ranklab.example.org",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_PROXY_SSL_HEADER": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def check_deploy(**environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECURE_", "SESSION_", "CSRF_", "DEBUG", "SECRET_KEY"))
        and key != "DJANGO_ALLOW_ASYNC_UNSAFE"  # set by the browser tests in this process
    }
    env.update(environment)
    with tempfile.TemporaryDirectory() as folder:
        # The checks read the database's version (a generated column's check), so they get
        # one that is there: an empty embedded database of their own.
        env["DATABASE_URL"] = f"sqlite:///{folder}/check.sqlite3"
        return subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


def test_check_deploy_is_clean_with_the_production_settings():
    result = check_deploy(**PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_names_what_a_tls_deployment_forgot():
    missing_tls = {key: value for key, value in PRODUCTION.items() if not key.startswith("SECURE_")}
    result = check_deploy(**missing_tls)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008"):
        assert warning in result.stderr + result.stdout


def test_production_settings_send_the_csp_and_policy_headers():
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(s.SECURE_CSP['script-src'], s.SECURE_CSP['style-src'], s.SECURE_REFERRER_POLICY,"
        "'django.middleware.csp.ContentSecurityPolicyMiddleware' in s.MIDDLEWARE,"
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("SECURE_")}
    env.update(PRODUCTION)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.stdout.split() == [
        "[\"'self'\"]",
        "[\"'self'\"]",
        "same-origin",
        "True",
        "True",
        "True",
    ], result.stderr
