"""The rater API: next task, submit, skip, undo, renew — the page's flow over REST."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from core import db as database
from labeling import services
from labeling.models import Assignment, AssignmentStatus
from rankings.models import Ranking
from tests.rankings.rating.page_helpers import leased, set_project

pytestmark = pytest.mark.django_db


def next_task(client, project):
    return client.get(f"/api/projects/{project.pk}/next-task/")


def submit(client, assignment_id, ranking, **extra):
    return client.post(
        f"/api/assignments/{assignment_id}/ranking/", {"ranking": ranking, **extra}, format="json"
    )


def test_next_task_shows_responses_in_shown_order_without_models(api_for, rater, imported):
    response = next_task(api_for(rater), imported)
    assert response.status_code == 200
    task = response.json()
    assignment = Assignment.objects.get(pk=task["assignment_id"])
    assert [item["id"] for item in task["responses"]] == assignment.shown_order
    assert [item["label"] for item in task["responses"]] == ["A", "B", "C"]
    assert "model" not in str(task["responses"])
    assert task["prompt"]["messages"][0]["role"] == "user"


def test_submit_stores_the_ranking_and_the_next_task_moves_on(api_for, rater, imported):
    client = api_for(rater)
    task = next_task(client, imported).json()
    ids = [item["id"] for item in task["responses"]]
    response = submit(client, task["assignment_id"], [[ids[1]], [ids[0], ids[2]]], seconds=12.5)
    assert response.status_code == 201, response.json()
    ranking = Ranking.objects.get()
    assert ranking.groups == [[ids[1]], [ids[0], ids[2]]]
    assert ranking.seconds == 12.5
    assert next_task(client, imported).json()["assignment_id"] != task["assignment_id"]


@pytest.mark.parametrize(
    ("make_ranking", "field", "message"),
    [
        (lambda ids: [[ids[0]], [ids[1]]], "ranking", "missing"),
        (lambda ids: [[ids[0]], [ids[0]], [ids[1], ids[2]]], "ranking[1]", "appears twice"),
        (lambda ids: [[ids[0]], [ids[1]], [ids[2]], [999999]], "ranking[3]", "is not one of"),
        (lambda ids: [], "ranking", "non-empty"),
        (lambda ids: [[ids[0]], [], [ids[1], ids[2]]], "ranking[1]", "empty tie group"),
    ],
)
def test_bad_rankings_are_a_400_naming_the_problem(
    api_for, rater, imported, make_ranking, field, message
):
    client = api_for(rater)
    task = next_task(client, imported).json()
    ids = [item["id"] for item in task["responses"]]
    response = submit(client, task["assignment_id"], make_ranking(ids))
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert message in response.json()["detail"]
    assert not Ranking.objects.exists()


def test_ties_are_refused_when_the_project_does_not_allow_them(api_for, rater, imported):
    imported.allow_ties = False
    imported.save()
    client = api_for(rater)
    task = next_task(client, imported).json()
    ids = [item["id"] for item in task["responses"]]
    response = submit(client, task["assignment_id"], [[ids[0], ids[1]], [ids[2]]])
    assert response.status_code == 400
    assert response.json()["detail"] == "ranking[0]: ties are not allowed in this project"
    assert submit(client, task["assignment_id"], [ids[0], ids[1], ids[2]]).status_code == 201


def test_a_second_submit_does_not_create_a_second_ranking(api_for, rater, imported):
    client = api_for(rater)
    task = next_task(client, imported).json()
    ranking = [[item["id"]] for item in task["responses"]]
    assert submit(client, task["assignment_id"], ranking).status_code == 201
    repeated = submit(client, task["assignment_id"], ranking)
    assert repeated.status_code == 200
    different = submit(client, task["assignment_id"], list(reversed(ranking)))
    assert different.status_code == 409
    assert Ranking.objects.count() == 1


def test_submit_on_a_lease_taken_over_by_another_rater_is_a_409(api_for, rater, rater2, imported):
    imported.overlap = 1
    imported.save()
    client = api_for(rater)
    task = next_task(client, imported).json()
    past = timezone.now() - timedelta(hours=1)
    Assignment.objects.filter(pk=task["assignment_id"]).update(
        leased_at=past, expires_at=past + timedelta(minutes=10)
    )
    taken = leased(imported, rater2)
    assert taken.prompt_id == task["prompt"]["id"]
    response = submit(client, task["assignment_id"], [[item["id"]] for item in task["responses"]])
    assert response.status_code == 409
    assert response.json()["code"] == "lease_taken"
    assert not Ranking.objects.exists()


def test_submit_on_an_expired_lease_that_is_still_free_is_accepted(api_for, rater, imported):
    client = api_for(rater)
    task = next_task(client, imported).json()
    past = timezone.now() - timedelta(hours=1)
    Assignment.objects.filter(pk=task["assignment_id"]).update(
        leased_at=past, expires_at=past + timedelta(minutes=10)
    )
    response = submit(client, task["assignment_id"], [[item["id"]] for item in task["responses"]])
    assert response.status_code == 201


def test_a_rater_cannot_submit_another_raters_assignment(api_for, rater, rater2, imported):
    task = next_task(api_for(rater), imported).json()
    response = submit(
        api_for(rater2), task["assignment_id"], [[r["id"]] for r in task["responses"]]
    )
    assert response.status_code == 404


def test_skip_needs_a_reason_and_moves_on(api_for, rater, imported):
    client = api_for(rater)
    task = next_task(client, imported).json()
    missing = client.post(f"/api/assignments/{task['assignment_id']}/skip/", {}, format="json")
    assert missing.status_code == 400
    assert missing.json()["field"] == "reason"
    skipped = client.post(
        f"/api/assignments/{task['assignment_id']}/skip/",
        {"reason": "not my language"},
        format="json",
    )
    assert skipped.status_code == 200
    assert next_task(client, imported).json()["prompt"]["id"] != task["prompt"]["id"]


def test_empty_queue_is_a_204(api_for, rater, project):
    assert next_task(api_for(rater), project).status_code == 204


def test_rater_cannot_read_another_projects_tasks(api_for, rater, imported, make_user):
    other_lead = make_user("otherlead")
    other = services.project_create(creator=other_lead, name="Other")
    response = next_task(api_for(rater), other)
    assert response.status_code == 404


def test_a_paused_rater_cannot_submit_an_open_task(api_for, rater, imported):
    client = api_for(rater)
    task = next_task(client, imported).json()
    services.member_update(project=imported, username=rater.username, status="paused")
    response = submit(client, task["assignment_id"], [[r["id"]] for r in task["responses"]])
    assert response.status_code == 403
    assert response.json()["code"] == "paused"
    assert not Ranking.objects.exists()


# Undo and renew, in the page's sequence ---------------------------------------------------------


def whole(task) -> list[list[int]]:
    return [[item["id"]] for item in task["responses"]]


def undo(client, assignment_id):
    return client.post(f"/api/assignments/{assignment_id}/undo/")


def test_after_an_undo_next_task_gives_back_the_reopened_task_first(api_for, rater, imported):
    client = api_for(rater)
    first = next_task(client, imported).json()
    assert submit(client, first["assignment_id"], whole(first)).status_code == 201
    second = next_task(client, imported).json()
    assert second["assignment_id"] != first["assignment_id"]
    reopened = undo(client, first["assignment_id"])
    assert reopened.status_code == 200
    assert reopened.json()["assignment_id"] == first["assignment_id"]
    assert next_task(client, imported).json()["assignment_id"] == first["assignment_id"]
    resubmitted = submit(client, first["assignment_id"], whole(first)[::-1])
    assert resubmitted.status_code == 201
    ranking = Ranking.objects.get(assignment_id=first["assignment_id"])
    assert ranking.groups == whole(first)[::-1]
    assert ranking.revisions[0]["groups"] == whole(first)
    assert next_task(client, imported).json()["assignment_id"] == second["assignment_id"]


def test_an_undo_on_the_page_is_served_first_by_the_api_too(client, api_for, rater, imported):
    client.force_login(rater)
    client.get(f"/rate/{imported.pk}/")
    current = Assignment.objects.filter(rater=rater).order_by("id").first()
    assert current is not None
    groups = json.dumps([[response_id] for response_id in current.shown_order])
    json_accept = {"HTTP_ACCEPT": "application/json"}
    client.post(f"/rate/assignments/{current.pk}/submit/", {"ranking": groups}, **json_accept)
    client.post(f"/rate/assignments/{current.pk}/undo/", **json_accept)
    assert next_task(api_for(rater), imported).json()["assignment_id"] == current.pk


def test_next_task_restores_an_abandoned_undo_like_the_page(api_for, rater, imported):
    client = api_for(rater)
    first = next_task(client, imported).json()
    submit(client, first["assignment_id"], whole(first))
    undo(client, first["assignment_id"])
    Assignment.objects.filter(pk=first["assignment_id"]).update(expires_at=timezone.now())
    task = next_task(client, imported).json()
    assert task["prompt"]["id"] != first["prompt"]["id"]
    abandoned = Assignment.objects.get(pk=first["assignment_id"])
    assert abandoned.status == AssignmentStatus.SUBMITTED  # the earlier ranking stands
    assert Ranking.objects.get(assignment=abandoned).groups == whole(first)


def test_undo_too_late_is_a_409_in_the_error_shape(api_for, rater, imported):
    client = api_for(rater)
    task = next_task(client, imported).json()
    submit(client, task["assignment_id"], whole(task))
    Assignment.objects.filter(pk=task["assignment_id"]).update(
        finished_at=timezone.now() - timedelta(minutes=5)
    )
    response = undo(client, task["assignment_id"])
    assert response.status_code == 409
    assert response.json() == {
        "detail": "too late to undo: a submit can be undone for 30 seconds",
        "code": "undo_expired",
    }


def test_undo_of_another_raters_task_is_a_404(api_for, rater, rater2, imported):
    client = api_for(rater)
    task = next_task(client, imported).json()
    submit(client, task["assignment_id"], whole(task))
    assert undo(api_for(rater2), task["assignment_id"]).status_code == 404


def test_renew_extends_the_lease_from_now(api_for, rater, imported):
    client = api_for(rater)
    task = next_task(client, imported).json()
    soon = timezone.now() + timedelta(seconds=20)
    Assignment.objects.filter(pk=task["assignment_id"]).update(expires_at=soon)
    response = client.post(f"/api/assignments/{task['assignment_id']}/renew/")
    assert response.status_code == 200
    assert response.json()["assignment_id"] == task["assignment_id"]
    renewed = Assignment.objects.get(pk=task["assignment_id"]).expires_at
    assert renewed > timezone.now() + timedelta(seconds=imported.lease_seconds - 5)


def test_renew_of_a_lease_taken_over_is_a_409(api_for, rater, rater2, imported):
    imported.overlap = 1
    imported.save(update_fields=["overlap"])
    client = api_for(rater)
    task = next_task(client, imported).json()
    past = timezone.now() - timedelta(hours=1)
    Assignment.objects.filter(pk=task["assignment_id"]).update(
        leased_at=past, expires_at=past + timedelta(minutes=10)
    )
    assert leased(imported, rater2).prompt_id == (task["prompt"]["id"])
    response = client.post(f"/api/assignments/{task['assignment_id']}/renew/")
    assert response.status_code == 409
    assert response.json()["code"] == "lease_taken"


# Queries: the rater loop stays fast --------------------------------------------------------------


def test_next_task_with_a_live_lease_runs_four_queries(
    api_for, rater, imported, django_assert_max_num_queries
):
    client = api_for(rater)
    next_task(client, imported)
    # token; membership + project + the rater's live lease; that lease with its prompt;
    # the response texts. No transaction: nothing is written.
    with django_assert_max_num_queries(4):
        assert next_task(client, imported).status_code == 200


def test_next_task_leasing_a_new_prompt_runs_four_statements(
    api_for, rater, imported, django_assert_max_num_queries
):
    set_project(imported, gold_rate=0, repeat_rate=0)  # a gold draw would add a lookup
    client = api_for(rater)
    # token; membership + project + live lease; the prompt locked with its responses; the
    # lease inserted while a slot is free, moving the rater's frontier; + the transaction's
    # begin and end. SQLite's twin reads the responses and moves the frontier apart.
    statements = 4 if database.is_postgresql() else 6
    with django_assert_max_num_queries(statements + 2):
        assert next_task(client, imported).status_code == 200


def test_submit_runs_three_statements_on_postgresql_five_elsewhere(
    api_for, rater, imported, django_assert_max_num_queries
):
    client = api_for(rater)
    task = next_task(client, imported).json()
    # token; assignment locked with the rater's membership status; ranking inserted,
    # assignment marked submitted, prompt marked complete if its overlap is reached (one
    # statement on PostgreSQL, three elsewhere); + the transaction's begin and end. The
    # agreement trigger is a cache counter: no query.
    statements = 3 if database.is_postgresql() else 5
    with django_assert_max_num_queries(statements + 2):
        assert submit(client, task["assignment_id"], whole(task)).status_code == 201
