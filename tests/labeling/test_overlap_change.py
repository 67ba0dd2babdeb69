"""Overlap changes take effect at once, in the browser and the API: raising it reopens
complete prompts to new raters, lowering it closes prompts that have enough rankings."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling import services
from labeling.models import Prompt
from tests.rankings.agreement_helpers import rank_in_turns

pytestmark = pytest.mark.django_db


@pytest.fixture
def complete_project(imported, make_user, add_member):
    """Five prompts, each ranked by the project's two raters: all complete."""
    raters = [add_member(make_user(f"first{index}")) for index in range(2)]
    rank_in_turns(imported, raters, seed=7)
    assert Prompt.objects.filter(project=imported, is_complete=False).count() == 0
    return imported


def test_raising_overlap_through_the_api_reopens_prompts_for_a_new_rater(
    complete_project, lead, api_for, make_user, add_member
):
    newcomer = add_member(make_user("newcomer"))
    assert (
        api_for(newcomer).get(f"/api/projects/{complete_project.pk}/next-task/").status_code == 204
    )
    response = api_for(lead).patch(
        f"/api/projects/{complete_project.pk}/", {"overlap": 3}, format="json"
    )
    assert response.status_code == 200
    assert Prompt.objects.filter(project=complete_project, is_complete=True).count() == 0
    task = api_for(newcomer).get(f"/api/projects/{complete_project.pk}/next-task/")
    assert task.status_code == 200


def test_lowering_overlap_closes_prompts_with_enough_rankings(imported, make_user, add_member):
    rater = add_member(make_user("only"))
    rank_in_turns(imported, [rater], seed=1)  # one ranking each, overlap 2: all open
    assert Prompt.objects.filter(project=imported, is_complete=True).count() == 0
    services.project_update(project=imported, overlap=1)
    assert Prompt.objects.filter(project=imported, is_complete=False).count() == 0


def test_raising_overlap_on_the_manage_page_reopens_prompts(complete_project, lead):
    client = Client()
    client.force_login(lead)
    form = {
        field: value
        for field, value in client.get(f"/projects/{complete_project.pk}/")
        .context["settings_form"]
        .initial.items()
        if value is not None
    }
    form.update(overlap=4, rubric="[]", quality_settings="{}")
    response = client.post(
        f"/projects/{complete_project.pk}/settings/", form, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    assert Prompt.objects.filter(project=complete_project, is_complete=False).count() == 5


def test_other_settings_leave_completion_alone(complete_project):
    assert services.prompts_completion_refresh(project=complete_project) == 0
    services.project_update(project=complete_project, lease_seconds=900)
    assert Prompt.objects.filter(project=complete_project, is_complete=True).count() == 5
