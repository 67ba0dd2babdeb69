"""Server-side rules for a submitted ranking: rubric, rationale, pairwise strength."""

from __future__ import annotations

import json

import pytest

from labeling import services
from rankings.models import Ranking
from tests.helpers import sample_records

pytestmark = pytest.mark.django_db

RUBRIC = [
    {"key": "helpful", "label": "Helpful", "kind": "scale", "min": 1, "max": 7, "required": True},
    {"key": "unsafe", "label": "Unsafe", "kind": "checkbox"},
]


def lease(client, project):
    return client.get(f"/api/projects/{project.pk}/next-task/").json()


def submit(client, task, **body):
    body.setdefault("ranking", [[item["id"]] for item in task["responses"]])
    return client.post(f"/api/assignments/{task['assignment_id']}/ranking/", body, format="json")


def test_lead_sets_a_rubric_and_bad_rubrics_name_the_field(api_for, lead, project):
    client = api_for(lead)
    ok = client.patch(f"/api/projects/{project.pk}/", {"rubric": RUBRIC}, format="json")
    assert ok.status_code == 200 and ok.json()["rubric"][1]["required"] is False
    preset = client.patch(f"/api/projects/{project.pk}/", {"rubric": "hhh"}, format="json")
    assert [item["key"] for item in preset.json()["rubric"]] == ["helpful", "honest", "harmless"]
    bad = client.patch(
        f"/api/projects/{project.pk}/", {"rubric": [{"key": "Bad Key"}]}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["field"] == "rubric"


def test_required_ratings_are_enforced_per_response(api_for, rater, imported):
    imported.rubric = RUBRIC
    imported.save()
    client = api_for(rater)
    task = lease(client, imported)
    ids = [item["id"] for item in task["responses"]]
    missing = submit(client, task, ratings={str(ids[0]): {"helpful": 5}})
    assert missing.status_code == 400
    assert missing.json()["field"] == f"ratings.{ids[1]}.helpful"
    assert "Helpful is required" in missing.json()["detail"]
    out_of_range = submit(client, task, ratings={str(i): {"helpful": 9} for i in ids})
    assert out_of_range.json()["detail"].endswith("must be a whole number from 1 to 7")
    unknown = submit(client, task, ratings={str(i): {"helpful": 3, "funny": 1} for i in ids})
    assert "is not on this project's rubric" in unknown.json()["detail"]
    not_bool = submit(client, task, ratings={str(i): {"helpful": 3, "unsafe": 1} for i in ids})
    assert not_bool.json()["detail"].endswith("must be true or false")
    assert not Ranking.objects.exists()
    good = submit(
        client, task, ratings={str(i): {"helpful": 4, "unsafe": i == ids[0]} for i in ids}
    )
    assert good.status_code == 201
    assert Ranking.objects.get().ratings[str(ids[0])] == {"helpful": 4, "unsafe": True}


def test_required_rationale(api_for, rater, imported):
    imported.require_rationale = True
    imported.save()
    client = api_for(rater)
    task = lease(client, imported)
    refused = submit(client, task, rationale="   ")
    assert refused.status_code == 400 and refused.json()["field"] == "rationale"
    assert submit(client, task, rationale="B is accurate").status_code == 201


@pytest.fixture
def pairwise(project):
    services.prompts_import(project=project, raw=json.dumps(sample_records(3, responses=2)))
    return project


def test_pairwise_strength_is_stored(api_for, rater, pairwise):
    client = api_for(rater)
    task = lease(client, pairwise)
    first, second = (item["id"] for item in task["responses"])
    assert submit(client, task, ranking=[[second], [first]], strength=3).status_code == 201
    assert Ranking.objects.get().strength == 3


@pytest.mark.parametrize(
    ("tie", "strength", "message"),
    [
        (True, 2, "0 (about the same) goes with a tie"),
        (False, 0, "0 (about the same) goes with a tie"),
        (False, 5, "must be 0, 1, 2 or 3"),
    ],
)
def test_pairwise_strength_must_match_the_ranking(api_for, rater, pairwise, tie, strength, message):
    client = api_for(rater)
    task = lease(client, pairwise)
    first, second = (item["id"] for item in task["responses"])
    ranking = [[first, second]] if tie else [[first], [second]]
    response = submit(client, task, ranking=ranking, strength=strength)
    assert response.status_code == 400
    assert response.json()["field"] == "strength"
    assert message in response.json()["detail"]


def test_strength_is_refused_for_more_than_two_responses(api_for, rater, imported):
    client = api_for(rater)
    task = lease(client, imported)
    response = submit(client, task, strength=2)
    assert response.status_code == 400
    assert "only for pairwise" in response.json()["detail"]
