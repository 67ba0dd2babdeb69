"""The routing button on the Models page: reopens the prompts the judge disagrees on and
lists each with its reason; bad input is shown on the page, not a 500."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling import services as labeling_services
from labeling.models import Prompt

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_button_reopens_and_shows_why(lead, project, ranked_and_judged):
    client = signed_in(lead)
    page = client.get(f"/models/{project.pk}/").content.decode()
    assert "data-routing" in page and f'<option value="{ranked_and_judged.pk}">' in page
    assert "data-judge-reopened" not in page
    response = client.post(
        f"/models/{project.pk}/judge/routing/",
        {"endpoint": ranked_and_judged.pk, "max_agreement": "0.5", "include_inconsistent": "on"},
    )
    assert response.status_code == 302 and response["Location"].endswith("#routing-title")
    page = client.get(response["Location"]).content.decode()
    assert "2 prompts reopened" in page
    for external_id, why in [("p1", "disagrees with the first 2 human"), ("p2", "contradicts")]:
        prompt = Prompt.objects.get(external_id=external_id)
        assert prompt.extra_raters == 1
        row = page.split(f'data-reopened="{prompt.pk}"')[1].split("</tr>")[0]
        assert why in row and f"/prompts/{prompt.pk}/" in row
    assert f'data-reopened="{Prompt.objects.get(external_id="p0").pk}"' not in page
    assert "<script>" not in page.split("data-routing")[1].split("</section>")[0]


def test_without_inconsistent_only_disagreements_are_reopened(lead, project, ranked_and_judged):
    signed_in(lead).post(
        f"/models/{project.pk}/judge/routing/",
        {"endpoint": ranked_and_judged.pk, "max_agreement": "0.5"},
    )
    reopened = set(Prompt.objects.filter(extra_raters__gt=0).values_list("external_id", flat=True))
    assert reopened == {"p1"}


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"max_agreement": "1.5"}, "between 0 and 1"),
        ({"max_agreement": "nan"}, "between 0 and 1"),
        ({"max_agreement": "lots"}, "between 0 and 1"),
        ({"endpoint": "x"}, "choose one"),
        ({"endpoint": "999999"}, "endpoint not found"),
    ],
)
def test_bad_input_is_shown_on_the_page(lead, project, ranked_and_judged, form, message):
    data = {"endpoint": ranked_and_judged.pk, "max_agreement": "0.5", **form}
    response = signed_in(lead).post(f"/models/{project.pk}/judge/routing/", data)
    assert response.status_code in (400, 404)
    assert (
        message in response.content.decode() and "data-routing-error" in response.content.decode()
    )
    assert not Prompt.objects.filter(extra_raters__gt=0).exists()


def test_adaptive_overlap_off_is_explained(lead, project, ranked_and_judged):
    labeling_services.project_update(project=project, max_overlap=None)
    response = signed_in(lead).post(
        f"/models/{project.pk}/judge/routing/", {"endpoint": ranked_and_judged.pk}
    )
    assert response.status_code == 400 and "adaptive overlap is off" in response.content.decode()


def test_raters_cannot_route(rater, project, ranked_and_judged):
    response = signed_in(rater).post(
        f"/models/{project.pk}/judge/routing/", {"endpoint": ranked_and_judged.pk}
    )
    assert response.status_code == 403
    assert not Prompt.objects.filter(extra_raters__gt=0).exists()
