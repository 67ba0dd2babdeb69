"""The prompt browser and prompt page in the browser (server side; tests/e2e drives them)."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling.models import Prompt
from tests.helpers import import_prompts, response_ids

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def browser_url(browse, query: str = "") -> str:
    return f"/rate/{browse.project.pk}/prompts/" + (f"?{query}" if query else "")


def prompt_url(browse, index: int) -> str:
    return f"/rate/{browse.project.pk}/prompts/{browse.prompts[index].pk}/"


def test_browser_lists_and_filters(browse, lead):
    page = signed_in(lead).get(browser_url(browse, "q=sourdough")).content.decode()
    assert page.count("data-prompt-row=") == 2
    assert "Why did my SOURDOUGH starter die?" in page
    assert 'name="prompt_ids"' in page  # leads get the bulk actions


def test_browser_htmx_renders_only_the_results(browse, lead):
    response = signed_in(lead).get(browser_url(browse, "state=gold"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="results"') and "<html" not in html
    assert html.count("data-prompt-row=") == 1


def test_browser_shows_a_bad_filter_next_to_the_list(browse, lead):
    response = signed_in(lead).get(browser_url(browse, "agreement_min=7"))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-field="agreement_min"' in html and "from 0 to 1" in html


def test_browser_pages_with_a_next_link(browse, lead):
    html = signed_in(lead).get(browser_url(browse, "page_size=3")).content.decode()
    assert html.count("data-prompt-row=") == 3 and "data-next-page" in html


def test_engineers_read_without_bulk_actions_raters_are_refused(browse, engineer, rater, outsider):
    html = signed_in(engineer).get(browser_url(browse)).content.decode()
    assert "data-prompt-row=" in html and 'name="prompt_ids"' not in html
    assert signed_in(rater).get(browser_url(browse)).status_code == 403
    assert signed_in(outsider).get(browser_url(browse)).status_code == 404
    assert signed_in(rater).get(prompt_url(browse, 0)).status_code == 403
    assert Client().get(browser_url(browse)).status_code == 302  # to the login page


def test_bulk_from_the_browser_comes_back_to_the_same_filters(browse, lead):
    client = signed_in(lead)
    response = client.post(
        f"/rate/{browse.project.pk}/prompts/bulk/",
        {"action": "archive", "prompt_ids": browse.ids(0, 1), "back": "state=complete"},
    )
    assert response.status_code == 302 and response["Location"].endswith("?state=complete")
    assert Prompt.objects.filter(archived_at__isnull=False).count() == 3
    page = client.get(response["Location"]).content.decode()
    assert "Archive: 2 prompts changed" in page


def test_bulk_from_the_browser_is_for_leads(browse, engineer):
    response = signed_in(engineer).post(
        f"/rate/{browse.project.pk}/prompts/bulk/", {"action": "archive", "prompt_ids": [1]}
    )
    assert response.status_code == 403


def test_bulk_with_bad_input_says_why(browse, lead):
    client = signed_in(lead)
    response = client.post(
        f"/rate/{browse.project.pk}/prompts/bulk/",
        {"action": "explode", "prompt_ids": browse.ids(0)},
    )
    assert "action: must be one of" in client.get(response["Location"]).content.decode()


def test_prompt_page_shows_everything(browse, lead):
    html = signed_in(lead).get(prompt_url(browse, 0)).content.decode()
    for text in ("How do I bake sourdough bread at home?", "model-a", "rater1", "rater2",
                 "Consensus", "data-pairs", "flagged", "data-gold-form"):  # fmt: skip
        assert text in html, text


def test_prompt_page_renders_model_output_sanitized(project, lead):
    (prompt,) = import_prompts(
        project,
        [
            {
                "prompt": "Hi",
                "responses": ["<script>alert(1)</script>ok", "<img src=x onerror=alert(1)>"],
            }
        ],
    )
    html = signed_in(lead).get(f"/rate/{project.pk}/prompts/{prompt.pk}/").content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown as text


def test_gold_from_rank_numbers_with_a_tie(browse, lead):
    prompt = browse.prompts[2]
    a, b, c = response_ids(prompt)
    response = signed_in(lead).post(
        f"/rate/{browse.project.pk}/prompts/{prompt.pk}/gold/",
        {f"rank_{a}": "2", f"rank_{b}": "1", f"rank_{c}": "2"},
    )
    assert response.status_code == 302
    prompt.refresh_from_db()
    assert prompt.is_gold and prompt.gold_ranking == [[b], [a, c]]


def test_gold_with_a_missing_rank_keeps_the_posted_ranks(browse, lead):
    prompt = browse.prompts[2]
    a, b, _c = response_ids(prompt)
    response = signed_in(lead).post(
        f"/rate/{browse.project.pk}/prompts/{prompt.pk}/gold/", {f"rank_{a}": "1", f"rank_{b}": "2"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "C has none" in html
    assert (
        f'name="rank_{a}" value="1" checked' in html
        and f'name="rank_{b}" value="2" checked' in html
    )
    prompt.refresh_from_db()
    assert not prompt.is_gold


def test_gold_cleared_from_the_page(browse, lead):
    prompt = browse.prompts[3]
    signed_in(lead).post(f"/rate/{browse.project.pk}/prompts/{prompt.pk}/gold/", {"clear": "1"})
    prompt.refresh_from_db()
    assert not prompt.is_gold and prompt.gold_ranking is None


def test_gold_from_the_page_is_for_leads(browse, engineer):
    prompt = browse.prompts[2]
    a, b, c = response_ids(prompt)
    response = signed_in(engineer).post(
        f"/rate/{browse.project.pk}/prompts/{prompt.pk}/gold/",
        {f"rank_{a}": "1", f"rank_{b}": "2", f"rank_{c}": "3"},
    )
    assert response.status_code == 403
