"""In Chromium, the pages full of XSS payloads run none of them: no dialog, no alert()
call, no Content-Security-Policy violation (an injected inline script or handler would be
one), no console error — and the payloads are on the page as text."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.security.xss import hostile_project

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]

# Runs before any page script; Playwright's init scripts are not subject to CSP.
WATCH = """
window.__fired = [];
for (const name of ["alert", "confirm", "prompt"]) {
  const original = window[name];
  window[name] = (...args) => { window.__fired.push(`${name}(${args.join(",")})`); };
}
document.addEventListener("securitypolicyviolation", (event) => {
  window.__fired.push(`csp ${event.violatedDirective} ${event.blockedURI || "inline"}`);
});
"""


def _script_error(message) -> bool:
    """Console errors but a resource's 404 (the favicon; an injected <img src=x> is inert)."""
    return message.type == "error" and not message.text.startswith("Failed to load resource")


def test_no_payload_runs_in_the_browser(open_as, make_user):
    lead, rater, engineer = make_user("lead"), make_user("rater1"), make_user("engineer")
    hostile = hostile_project(lead=lead, rater=rater, engineer=engineer)
    project_id, prompt_id = hostile["project"].pk, hostile["prompt"].pk
    pages = [
        (rater, reverse("rankings:rate", args=[project_id])),
        (lead, reverse("labeling:project", args=[project_id])),
        (lead, reverse("rankings:prompts", args=[project_id])),
        (lead, reverse("rankings:prompt", args=[project_id, prompt_id])),
        (lead, reverse("rankings:prompt", args=[project_id, prompt_id + 1])),
        (lead, reverse("rankings:quality", args=[project_id])),
        (lead, reverse("rankings:leaderboard", args=[project_id])),
        (lead, reverse("exports:project", args=[project_id])),
        (lead, reverse("llm:project", args=[project_id])),
        (lead, reverse("accounts:tokens")),
    ]
    fired: list[str] = []
    for user, path in pages:
        page = open_as(user, "/healthz")
        console: list[str] = []
        dialogs: list[str] = []
        page.on("console", lambda m, c=console: c.append(m.text) if _script_error(m) else None)
        page.on("dialog", lambda d, found=dialogs: (found.append(d.message), d.dismiss()))
        page.add_init_script(WATCH)
        response = page.goto(page.url.replace("/healthz", path))
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
        page.mouse.move(200, 300)  # hover handlers, if any were injected
        fired += [f"{path}: {item}" for item in page.evaluate("window.__fired")]
        fired += [f"{path}: dialog {item}" for item in dialogs]
        fired += [f"{path}: console {item}" for item in console]
    rater_page = pages[0][1]
    page = open_as(rater, rater_page)
    assert "<script>alert('xss1')</script>" in page.content().replace("&lt;", "<").replace(
        "&gt;", ">"
    )
    assert not fired, "\n".join(fired)
