"""Leads mark existing prompts as gold through the API and the project page."""

from __future__ import annotations

import pytest

from labeling.models import Prompt

pytestmark = pytest.mark.django_db


def ids_of(prompt: Prompt) -> list[int]:
    return list(prompt.responses.order_by("position").values_list("id", flat=True))


def test_lead_marks_and_unmarks_gold_through_the_api(api_for, lead, imported):
    prompt = imported.prompts.first()
    first, second, third = ids_of(prompt)
    url = f"/api/projects/{imported.pk}/prompts/{prompt.pk}/gold/"
    response = api_for(lead).put(url, {"gold_ranking": [[second], [first, third]]}, format="json")
    assert response.status_code == 200, response.json()
    prompt.refresh_from_db()
    assert prompt.is_gold and prompt.gold_ranking == [[second], [first, third]]
    cleared = api_for(lead).put(url, {"gold_ranking": None}, format="json")
    assert cleared.json()["is_gold"] is False
    prompt.refresh_from_db()
    assert not prompt.is_gold and prompt.gold_ranking is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda ids: [[ids[0]], [ids[1]]], "must place every response exactly once"),
        (lambda ids: [[ids[0]], [ids[0]], [ids[1], ids[2]]], "appears twice"),
        (lambda ids: [[ids[0]], [ids[1]], [ids[2]], [987654]], "is not a response of this prompt"),
        (lambda ids: [], "must be a non-empty list"),
    ],
)
def test_bad_gold_rankings_are_a_400_naming_the_field(api_for, lead, imported, make, message):
    prompt = imported.prompts.first()
    url = f"/api/projects/{imported.pk}/prompts/{prompt.pk}/gold/"
    response = api_for(lead).put(url, {"gold_ranking": make(ids_of(prompt))}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "gold_ranking"
    assert message in response.json()["detail"]
    prompt.refresh_from_db()
    assert not prompt.is_gold


def test_raters_cannot_mark_gold_and_other_projects_prompts_are_not_found(
    api_for, lead, rater, imported, make_user
):
    from labeling import services

    prompt = imported.prompts.first()
    body = {"gold_ranking": [[i] for i in ids_of(prompt)]}
    url = f"/api/projects/{imported.pk}/prompts/{prompt.pk}/gold/"
    assert api_for(rater).put(url, body, format="json").status_code == 403
    other = services.project_create(creator=lead, name="Other")
    elsewhere = f"/api/projects/{other.pk}/prompts/{prompt.pk}/gold/"
    assert api_for(lead).put(elsewhere, body, format="json").status_code == 404


def test_lead_marks_gold_on_the_project_page_with_letters(client, lead, imported):
    client.force_login(lead)
    prompt = imported.prompts.get(external_id="p2")
    first, second, third = ids_of(prompt)
    response = client.post(
        f"/projects/{imported.pk}/gold/",
        {"prompt": "p2", "ranking": "C > A = B"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "p2 is now gold: C &gt; A = B" in response.text
    prompt.refresh_from_db()
    assert prompt.gold_ranking == [[third], [first, second]]
    bad = client.post(
        f"/projects/{imported.pk}/gold/",
        {"prompt": "p2", "ranking": "A > Z"},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 400 and "Z is not a response label A to C" in bad.text
    missing = client.post(
        f"/projects/{imported.pk}/gold/",
        {"prompt": "nope", "ranking": "A"},
        headers={"HX-Request": "true"},
    )
    assert "no prompt &#x27;nope&#x27; in this project" in missing.text
