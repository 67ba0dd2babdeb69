"""In Chromium, every page loads under its Content-Security-Policy header without a single
violation — none on load, none after htmx swaps a fragment in, none on the API docs — and
the token page shows a new secret once."""

from __future__ import annotations

import json

import pytest

from labeling import services as labeling_services
from labeling.models import ApiToken
from tests.helpers import sample_records

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]

# Recorded before any page script runs; Playwright's init scripts are not subject to CSP.
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}`;
  const blocked = event.blockedURI || "inline";
  window.__cspViolations.push(`${event.violatedDirective} ${blocked} ${where}`);
});
"""


@pytest.fixture
def watched(open_as):
    """`open_as`, with CSP violations and console errors collected for every page."""
    pages = []
    console: list[str] = []

    def open_page(user, path: str):
        page = open_as(user, "/healthz")
        page.on(
            "console",
            lambda message: console.append(message.text) if message.type == "error" else None,
        )
        page.add_init_script(WATCH_VIOLATIONS)
        response = page.goto(page.url.replace("/healthz", path))
        assert response is not None and response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        pages.append(page)
        return page

    def violations() -> list[str]:
        found = []
        for page in pages:
            if not page.is_closed():
                found += page.evaluate("window.__cspViolations || []")
        found += [text for text in console if "Content Security Policy" in text]
        return found

    open_page.violations = violations  # type: ignore[attr-defined]
    return open_page


@pytest.fixture
def worked_project(project, rater, lead):
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(3)), by=lead)
    labeling_services.project_update(project=project, by=lead, overlap=3)
    return project


def test_lead_pages_load_without_csp_violations(watched, lead, worked_project):
    project_id = worked_project.pk
    for path in (
        "/",
        f"/projects/{project_id}/",
        f"/rate/{project_id}/quality/",
        f"/rate/{project_id}/prompts/",
        f"/exports/{project_id}/",
        "/account/tokens/",
        f"/rate/{project_id}/",
    ):
        page = watched(lead, path)
        page.wait_for_load_state("networkidle")
    assert watched.violations() == []


def test_htmx_swaps_cause_no_violations(watched, lead, rater, worked_project):
    page = watched(lead, f"/projects/{worked_project.pk}/")
    page.once("dialog", lambda dialog: dialog.accept())  # Pause asks first (hx-confirm)
    page.click(f"#members button[aria-label='Pause {rater.username}']")
    page.wait_for_selector(f"#members button[aria-label='Resume {rater.username}']")
    page.fill("#settings input[name=gold_rate]", "1.5")
    page.click("#settings button[type=submit]")
    page.wait_for_selector("#settings .has-error")
    # htmx did not inject its indicator <style> (the policy would have refused it).
    assert page.evaluate("document.querySelectorAll('style').length") == 0
    assert watched.violations() == []
    page.reload()
    assert "Member changed" in page.inner_text("#audit")


def test_the_api_docs_render_without_violations(watched, lead):
    swagger = watched(lead, "/api/docs/")
    swagger.wait_for_selector(".swagger-ui .info", timeout=20_000)
    redoc = watched(lead, "/api/redoc/")
    redoc.wait_for_selector("redoc h1, [role=navigation]", timeout=20_000)
    # ReDoc's "API docs by Redocly" footer asks cdn.redoc.ly for its logo: blocked on purpose
    # (the docs make no request to another host); nothing else may be.
    blocked = [text for text in watched.violations() if "cdn.redoc.ly" not in text]
    assert blocked == []


def test_the_token_page_shows_a_new_secret_once(watched, lead):
    page = watched(lead, "/account/tokens/")
    page.fill("input[name=name]", "from the browser")
    page.select_option("select[name=expires]", "7")
    page.click("button:has-text('Create token')")
    secret = page.inner_text("[data-token-secret]").strip()
    token = ApiToken.objects.get(name="from the browser")
    assert secret.startswith(token.prefix) and len(secret) > 40
    page.goto(page.url)
    assert page.locator("[data-token-secret]").count() == 0
    assert secret not in page.content()
    assert "from the browser" in page.inner_text("table")
    assert watched.violations() == []


def test_the_watch_does_see_a_violation(watched, lead):
    """The check above could fail: an inline style added to a page is refused and seen."""
    page = watched(lead, "/")
    page.evaluate(
        "document.head.appendChild(Object.assign(document.createElement('style'),"
        " {textContent: 'body { color: red }'}))"
    )
    page.wait_for_function("window.__cspViolations.length > 0")
    assert any(text.startswith("style-src") for text in watched.violations())
