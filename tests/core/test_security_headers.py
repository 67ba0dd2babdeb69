"""Every page is served with a Content-Security-Policy that allows scripts and styles from
this site only, plus Permissions-Policy and Referrer-Policy; the pages themselves carry no
inline script, inline style or event-handler attribute the policy would block. The API
docs relax styles (Swagger UI and ReDoc style inline) but never scripts."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from labeling import services as labeling_services
from labeling.models import Project
from tests.helpers import sample_records

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=[\"']", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+=[\"']", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"(href|src|action)=[\"']\s*javascript:", re.IGNORECASE)


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


@pytest.fixture
def browser(lead, imported) -> Client:
    client = Client()
    client.force_login(lead)
    return client


def lead_pages(project: Project) -> list[str]:
    return [
        "/",
        f"/projects/{project.pk}/",
        "/account/tokens/",
        f"/rate/{project.pk}/quality/",
        f"/rate/{project.pk}/prompts/",
        f"/exports/{project.pk}/",
    ]


def test_pages_carry_a_strict_content_security_policy(browser, imported):
    for path in [*lead_pages(imported), "/login/"]:
        response = browser.get(path)
        assert response.status_code == 200, path
        policy = directives(response["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'"], path
        assert policy["style-src"] == ["'self'"], path
        assert policy["default-src"] == ["'self'"], path
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        assert "camera=()" in response["Permissions-Policy"]
        assert response["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_script_style_or_handlers(browser, imported):
    for path in [*lead_pages(imported), "/login/"]:
        html = browser.get(path).content.decode()
        assert not INLINE_SCRIPT.search(html), (path, INLINE_SCRIPT.search(html))
        assert not INLINE_STYLE.search(html), (path, INLINE_STYLE.search(html))
        assert not EVENT_HANDLER.search(html), (path, EVENT_HANDLER.search(html))
        assert not JAVASCRIPT_URL.search(html), path


def test_htmx_is_told_not_to_inject_its_indicator_style(browser):
    html = browser.get("/").content.decode()
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'', html)
    assert config is not None
    assert '"includeIndicatorStyles": false' in config.group(1)
    assert '"allowEval": false' in config.group(1)


def test_json_api_answers_carry_the_headers_too(lead, api_for, project):
    response = api_for(lead).get(f"/api/projects/{project.pk}/")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["Permissions-Policy"]


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_relax_styles_but_not_scripts(path):
    response = Client().get(path)
    assert response.status_code == 200
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" in policy["style-src"]
    assert not INLINE_SCRIPT.search(response.content.decode())


def test_the_swagger_ui_script_is_served_from_this_site():
    page = Client().get("/api/docs/").content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert any("script" in src and src.startswith("/api/docs/") for src in scripts), scripts
    init = Client().get("/api/docs/?script=")
    assert init.status_code == 200
    assert "SwaggerUIBundle" in init.content.decode()


def test_hostile_text_stays_inert_under_the_policy(browser, lead):
    """A project named like a script renders escaped: nothing inline for the policy to
    block, and the policy would block it anyway."""
    project = labeling_services.project_create(
        creator=lead, name="<script>alert(1)</script><img src=x onerror=alert(2)>"
    )
    records = sample_records(1)
    records[0]["responses"][0]["text"] = '<img src=x onerror="alert(3)"><style>*{}</style>'
    labeling_services.prompts_import(project=project, raw=json.dumps(records))
    prompt = project.prompts.get()
    for path in (f"/projects/{project.pk}/", f"/rate/{project.pk}/prompts/{prompt.pk}/"):
        html = browser.get(path).content.decode()
        assert "<script>alert(1)" not in html, path
        assert not EVENT_HANDLER.search(html), path
        assert not INLINE_STYLE.search(html), path
