"""The factories build rows the services would accept: what tests build is what users make."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling.models import Membership, Role
from tests.factories import PromptFactory, RankingFactory, UserFactory
from tests.helpers import PASSWORD, response_ids

pytestmark = pytest.mark.django_db


def test_a_user_signs_in_with_the_test_password():
    user = UserFactory.create(username="someone")
    assert Client().login(username="someone", password=PASSWORD)
    assert not Client().login(username=user.username, password=PASSWORD + "x")


def test_a_prompt_comes_with_its_responses_in_order_and_its_project_with_a_lead():
    prompt = PromptFactory.create(responses=4)
    assert [r.position for r in prompt.responses.order_by("position")] == [0, 1, 2, 3]
    lead = Membership.objects.get(project=prompt.project, user=prompt.project.created_by)
    assert lead.role == Role.LEAD


def test_a_ranking_names_positions_and_stores_response_ids_with_its_assignment():
    prompt = PromptFactory.create(responses=3)
    rater = UserFactory.create()
    ranking = RankingFactory.create(
        prompt=prompt, rater=rater, positions=[[2], [0, 1]], seconds=12.0
    )
    ids = response_ids(prompt)
    assert ranking.groups == [[ids[2]], [ids[0], ids[1]]]
    assert ranking.assignment.rater == rater
    assert ranking.assignment.shown_order == ids
    assert ranking.assignment.finished_at == ranking.created_at
    assert ranking.project == prompt.project


def test_without_positions_the_rater_ranks_in_import_order():
    ranking = RankingFactory.create()
    assert ranking.groups == [[response_id] for response_id in response_ids(ranking.prompt)]
