"""Every page works offline: nothing is loaded from another host (no CDN, no fonts, no
analytics), the API docs included, and API errors are JSON even for unknown URLs."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from labeling import services as labeling_services

pytestmark = pytest.mark.django_db

# Attributes that make a browser fetch something by itself (links a person clicks, <a href>,
# are not loads and may point anywhere).
LOADING_ATTRIBUTES = {
    "script": "src",
    "link": "href",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "video": "src",
    "audio": "src",
    "embed": "src",
    "object": "data",
}
EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)
CSS_IMPORT = re.compile(r"""(@import|url\()\s*['"]?(https?:)?//""", re.IGNORECASE)


class _LoadCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = LOADING_ATTRIBUTES.get(tag)
        for name, value in attrs:
            if value and (name == wanted or name == "srcset"):
                self.loads.append(value)
        self._in_script = tag in {"script", "style"}

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts.append(data)


def external_loads(html: str) -> list[str]:
    collector = _LoadCollector()
    collector.feed(html)
    found = [url for url in collector.loads if EXTERNAL.match(url.strip())]
    found += [text[:80] for text in collector.inline_scripts if CSS_IMPORT.search(text)]
    # Swagger UI and ReDoc are configured from inline scripts: their bundles must come
    # from our own static files too.
    found += re.findall(r"""["'](https?://[^"']+\.(?:js|css))["']""", html)
    return sorted(set(found))


@pytest.fixture
def pages(lead, rater, imported, admin_user) -> dict[str, tuple[object, str]]:
    project = imported
    invite = labeling_services.invite_create(project=project, created_by=lead)
    return {
        "login": (None, "/login/"),
        "join": (None, f"/join/{invite.code}/"),
        "home": (lead, "/"),
        "new project": (admin_user, "/projects/new/"),
        "project": (lead, f"/projects/{project.pk}/"),
        "rater page": (rater, f"/rate/{project.pk}/"),
        "quality": (lead, f"/rate/{project.pk}/quality/"),
        "exports": (lead, f"/exports/{project.pk}/"),
        "api docs": (lead, "/api/docs/"),
        "api redoc": (lead, "/api/redoc/"),
        "admin login": (None, "/admin/login/"),
    }


def test_no_page_loads_anything_from_another_host(pages):
    for name, (user, path) in pages.items():
        client = Client()
        if user is not None:
            client.force_login(user)
        response = client.get(path)
        assert response.status_code == 200, f"{name} ({path}) answered {response.status_code}"
        assert external_loads(response.content.decode()) == [], name


def test_api_docs_are_served_from_our_static_files(lead):
    client = Client()
    client.force_login(lead)
    html = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    bundle = re.search(r"/static/(drf_spectacular_sidecar/swagger-ui-dist/[\w.-]+\.js)", html)
    assert bundle is not None
    assert finders.find(bundle.group(1)) is not None, "the bundle is not among our static files"


def test_the_collector_sees_external_loads():
    html = (
        '<link rel="stylesheet" href="https://cdn.example/x.css">'
        '<script src="//cdn.example/a.js"></script><a href="https://example.org">ok</a>'
        "<style>@import url(https://fonts.example/f.css);</style>"
    )
    assert len(external_loads(html)) == 3


def test_unknown_api_url_is_a_json_404(api_for, lead):
    response = api_for(lead).get("/api/assignments/ASSIGNMENT_ID/ranking/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"


def test_unknown_api_url_is_a_json_404_with_debug_on_too(api_for, lead, settings):
    settings.DEBUG = True  # as ./dev demo runs: Django's own 404 page is HTML then
    response = api_for(lead).get("/api/projects//agreement/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"
    page = api_for(lead).get("/no-such-page/")
    assert page.status_code == 404 and b"Page not found" in page.content


def test_missing_api_object_is_a_json_404_with_a_code(api_for, lead):
    response = api_for(lead).get("/api/exports/987654/")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "not_found" and body["detail"]


def test_unknown_page_outside_the_api_stays_html(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
