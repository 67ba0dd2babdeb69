"""The admin lets an operator inspect every domain object: each list and change page
renders, and submitted rankings cannot be edited or deleted there."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from labeling.models import Prompt
from rankings.models import Ranking
from tests.rankings.agreement_helpers import rank_in_turns

pytestmark = pytest.mark.django_db


@pytest.fixture
def ranked(imported, make_user, add_member):
    raters = [add_member(make_user(f"crowd{index}")) for index in range(2)]
    rank_in_turns(imported, raters, seed=3)
    return imported


def test_every_registered_model_has_working_list_and_change_pages(admin_client: Client, ranked):
    project_models = [
        model
        for model in admin.site._registry
        if model._meta.app_label in {"labeling", "rankings", "exports"}
    ]
    assert {model.__name__ for model in project_models} >= {
        "Project",
        "Prompt",
        "Membership",
        "Ranking",
        "AgreementRun",
        "Flag",
        "ExportJob",
    }
    for model in project_models:
        meta = model._meta
        listing = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert listing.status_code == 200, meta.label
        first = model._default_manager.first()
        if first is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])
            assert admin_client.get(change).status_code == 200, meta.label


def test_a_submitted_ranking_cannot_be_changed_or_deleted(admin_client: Client, ranked):
    ranking = Ranking.objects.first()
    assert ranking is not None
    delete = reverse("admin:rankings_ranking_delete", args=[ranking.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Ranking.objects.filter(pk=ranking.pk).exists()


def test_prompt_page_shows_its_responses(admin_client: Client, ranked):
    prompt = Prompt.objects.first()
    assert prompt is not None
    page = admin_client.get(reverse("admin:labeling_prompt_change", args=[prompt.pk]))
    assert page.status_code == 200
    assert prompt.responses.first().text in page.content.decode()


def test_an_endpoint_shows_in_the_admin_without_its_key(admin_client: Client, project):
    from llm.models import ModelEndpoint
    from llm.services.endpoints import endpoint_create

    secret = "sk-admin-should-never-see-this"
    endpoint = endpoint_create(
        project=project,
        values={
            "name": "local",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "m",
            "api_key": secret,
        },
    )
    stored = ModelEndpoint.objects.get(pk=endpoint.pk).api_key_encrypted
    for url in (
        reverse("admin:llm_modelendpoint_changelist"),
        reverse("admin:llm_modelendpoint_change", args=[endpoint.pk]),
    ):
        page = admin_client.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert "local" in html
        assert secret not in html and stored not in html
