"""The rater loop's answers, built without serializers, are what the documented serializers
write: the same keys, values and formats."""

from __future__ import annotations

import pytest

from labeling import selectors, services
from labeling.api.serializers import TaskSerializer
from rankings.rating import services as rating
from rankings.rating.api.serializers import RankingSerializer
from rankings.rating.api.views import rank_task_json, ranking_json

pytestmark = pytest.mark.django_db


def test_a_task_and_a_ranking_are_answered_as_their_serializers_write_them(imported, rater):
    membership = services.rater_membership(project_id=imported.pk, rater=rater)
    lease = services.lease_next_assignment(project=imported, rater=rater, membership=membership)
    assert lease is not None
    payload = selectors.task_payload(lease, membership=membership)
    assert rank_task_json(payload) == dict(TaskSerializer(payload).data)

    groups = [[response_id] for response_id in lease.shown_order]
    ranking, created = rating.ranking_submit(
        assignment_id=lease.pk, rater=rater, ranking=groups, seconds=12, rationale="  why  "
    )
    assert created
    assert ranking_json(ranking) == dict(RankingSerializer(ranking).data)
    assert ranking_json(ranking)["seconds"] == 12.0


def test_the_api_answers_next_task_and_submit_in_the_documented_shape(imported, rater, api_for):
    client = api_for(rater)
    task = client.get(f"/api/projects/{imported.pk}/next-task/").json()
    assert task["kind"] == "rank"
    assert set(task) == set(TaskSerializer().fields)
    assert task["expires_at"].endswith("Z")
    answer = client.post(
        f"/api/assignments/{task['assignment_id']}/ranking/",
        {"ranking": [[item["id"]] for item in task["responses"]]},
        format="json",
    )
    assert answer.status_code == 201
    assert set(answer.json()) == set(RankingSerializer().fields)
    again = client.post(
        f"/api/assignments/{task['assignment_id']}/ranking/",
        {"ranking": [[item["id"]] for item in task["responses"]]},
        format="json",
    )
    assert again.status_code == 200 and again.json() == answer.json()
