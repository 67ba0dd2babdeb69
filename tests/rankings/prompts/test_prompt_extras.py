"""The prompt page's extension point (`rankings.prompts.extras`): panels other apps add,
shown on the page and under `extras` in `GET /api/prompts/{id}/`; without data, nothing
changes."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from rankings.prompts.extras import prompt_extras, register_prompt_extra, unregister_prompt_extra

pytestmark = pytest.mark.django_db

CSRF = re.compile(r"\b[A-Za-z0-9]{64}\b")  # a masked CSRF token


def page(user, browse, index: int = 0) -> str:
    client = Client()
    client.force_login(user)
    url = f"/rate/{browse.project.pk}/prompts/{browse.prompts[index].pk}/"
    response = client.get(url)
    assert response.status_code == 200
    # CSRF tokens are masked afresh on every render; everything else must be identical.
    return CSRF.sub("TOKEN", response.content.decode())


@pytest.fixture
def probe_extra():
    seen = []

    def build(*, prompt, labels):
        seen.append((prompt.pk, dict(labels)))
        if prompt.external_id == "nothing":
            return None
        return {"verdicts": [], "labels_seen": sorted(labels.values())}

    register_prompt_extra(key="probe", template="llm/_prompt_verdicts.html", build=build)
    yield seen
    unregister_prompt_extra(key="probe")


def test_an_extra_with_data_is_in_the_api_and_on_the_page(browse, lead, api_for, probe_extra):
    prompt = browse.prompts[0]
    body = api_for(lead).get(f"/api/prompts/{prompt.pk}/").json()
    labels = sorted(chr(ord("A") + r.position) for r in prompt.responses.all())
    assert body["extras"]["probe"] == {"verdicts": [], "labels_seen": labels}
    assert probe_extra[-1][0] == prompt.pk
    assert set(probe_extra[-1][1]) == {r.pk for r in prompt.responses.all()}
    assert "data-ai-judge" in page(lead, browse)


def test_a_provider_returning_none_changes_nothing(browse, lead, engineer, api_for, probe_extra):
    prompt = browse.prompts[1]
    before_page = page(engineer, browse, 1)
    before_api = api_for(engineer).get(f"/api/prompts/{prompt.pk}/").json()
    prompt.external_id = "nothing"
    prompt.save(update_fields=["external_id"])
    unregister_prompt_extra(key="probe")
    register_prompt_extra(key="probe", template="llm/_prompt_verdicts.html",
                          build=lambda **kw: None)  # fmt: skip
    assert all(extra.key != "probe" for extra in prompt_extras(prompt=prompt, labels={}))
    after_api = api_for(engineer).get(f"/api/prompts/{prompt.pk}/").json()
    assert "probe" in before_api["extras"] and "probe" not in after_api["extras"]
    assert "data-ai-judge" in before_page and "data-ai-judge" not in page(engineer, browse, 1)


def test_without_any_extra_the_page_is_byte_identical(browse, lead):
    """The llm app's panel is registered but no endpoint judged: same page as without it."""
    from llm.services.prompt_panel import PANEL_KEY, PANEL_TEMPLATE, prompt_judge_panel

    with_panel = page(lead, browse, 2)
    unregister_prompt_extra(key=PANEL_KEY)
    try:
        without = page(lead, browse, 2)
    finally:
        register_prompt_extra(key=PANEL_KEY, template=PANEL_TEMPLATE, build=prompt_judge_panel)
    assert with_panel == without
