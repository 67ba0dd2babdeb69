"""Twenty XSS payloads in every user-controlled text field, inert on every page showing them.

Project name, description, guidelines and rubric labels; prompt text, external ids and
metadata keys/values; response text, model names and metadata; rationales and skip
reasons; token, endpoint and model names; flag notes, job errors and audit entries. Each
page is parsed: no <script> but the site's own, no on* attribute, no javascript: URL, no
scripted style, and no payload's markup left raw.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.security.xss import PAYLOADS, hostile_project, html_problems


@pytest.fixture
def hostile(make_user):
    lead, rater, engineer = make_user("lead"), make_user("rater1"), make_user("engineer")
    objects = hostile_project(lead=lead, rater=rater, engineer=engineer)
    return {"lead": lead, "rater": rater, "engineer": engineer, **objects}


def pages(hostile) -> list[tuple[str, str]]:
    """(who, URL) of every page that shows user-controlled text."""
    project_id = hostile["project"].pk
    prompt_id = hostile["prompt"].pk
    return [
        ("rater", reverse("rankings:rate", args=[project_id])),
        ("lead", reverse("labeling:home")),
        ("lead", reverse("labeling:project", args=[project_id])),
        ("lead", reverse("rankings:prompts", args=[project_id])),
        ("lead", reverse("rankings:prompts", args=[project_id]) + "?q=script"),
        ("lead", reverse("rankings:prompt", args=[project_id, prompt_id])),
        ("lead", reverse("rankings:prompt", args=[project_id, prompt_id + 1])),
        ("lead", reverse("rankings:quality", args=[project_id])),
        ("lead", reverse("rankings:leaderboard", args=[project_id])),
        ("lead", reverse("exports:project", args=[project_id])),
        ("lead", reverse("llm:project", args=[project_id])),
        ("lead", reverse("accounts:tokens")),
        ("lead", reverse("labeling:project-queue", args=[project_id])),
        ("engineer", reverse("rankings:prompt", args=[project_id, prompt_id + 2])),
        ("rater", reverse("labeling:home")),
    ]


def test_every_payload_is_inert_on_every_page(hostile, capsys):
    problems: list[str] = []
    checked = 0
    for who, url in pages(hostile):
        client = Client()
        client.force_login(hostile[who])
        response = client.get(url)
        assert response.status_code == 200, f"{who} {url} → {response.status_code}"
        html = response.content.decode()
        problems += [f"{url}: {problem}" for problem in html_problems(html)]
        checked += 1
    with capsys.disabled():
        print(f"\nXSS: {len(PAYLOADS)} payloads x {checked} pages checked")
    assert not problems, "\n".join(problems)


def test_the_rater_page_shows_the_payloads_as_text(hostile):
    """Inert, not removed: the rater reads the payload as the literal text it is."""
    client = Client()
    client.force_login(hostile["rater"])
    html = client.get(reverse("rankings:rate", args=[hostile["project"].pk])).content.decode()
    assert "&lt;script&gt;alert(" in html and "xss1" in html
    assert "&lt;svg onload=alert(" in html
    assert "{{7*7}}" in html  # shown literally, never evaluated


def test_the_checker_catches_an_unescaped_payload():
    """The checker itself: every payload left raw is caught."""
    for payload in PAYLOADS:
        if "<" in payload:
            assert html_problems(f"<p>{payload}</p>"), payload
    assert html_problems('<a href=" javascript:alert(1)">x</a>')
    assert not html_problems('<script src="/static/ranklab/rank.js"></script><p>&lt;b&gt;</p>')
