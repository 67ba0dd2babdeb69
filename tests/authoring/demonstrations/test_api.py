"""The demonstration kind through the API: next task, submit, review, skip, leases."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from authoring.demonstrations.models import (
    Demonstration,
    DemonstrationReview,
    DemonstrationStatus,
)
from authoring.demonstrations.services import demonstration_submit
from labeling.models import Assignment, AssignmentStatus, Membership, MemberStatus
from rankings.models import Ranking
from tests.authoring.demonstrations.helpers import make_demo_project
from tests.helpers import import_prompts, sample_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def writers(make_user, demo_project, join):
    return join(demo_project, make_user("writer"), make_user("reviewer"))


def _next(client, project):
    return client.get(f"/api/projects/{project.pk}/next-task/")


def test_write_task_payload_names_the_kind_and_mode(api_for, demo_project, writers):
    response = _next(api_for(writers[0]), demo_project)
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "demonstration"
    assert body["task"] == "write"
    assert body["mode"] == "write"
    assert body["responses"] == []
    assert body["prompt"]["messages"][0]["role"] == "user"
    assert body["guidelines_version"] == demo_project.guidelines_version
    assert body["submit_url"] == f"/api/assignments/{body['assignment_id']}/demonstration/"


def test_write_mode_serves_prompts_without_responses(api_for, demo_project, writers):
    body = _next(api_for(writers[0]), demo_project).json()
    assert Assignment.objects.get(pk=body["assignment_id"]).prompt.n_responses == 0


def test_submit_stores_the_reply_and_routes_it_to_review(api_for, demo_project, writers):
    client = api_for(writers[0])
    task = _next(client, demo_project).json()
    response = client.post(
        task["submit_url"], {"text": "  The answer is **42**.\r\n"}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["text"] == "The answer is **42**."
    assert body["status"] == DemonstrationStatus.PENDING_REVIEW
    assignment = Assignment.objects.get(pk=task["assignment_id"])
    assert assignment.status == AssignmentStatus.SUBMITTED
    # The same again is answered with the stored reply; another reply is a conflict.
    again = client.post(task["submit_url"], {"text": "The answer is **42**."}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    other = client.post(task["submit_url"], {"text": "Something else"}, format="json")
    assert other.status_code == 409 and other.json()["code"] == "submitted"
    assert Demonstration.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "text"),
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": 12}, "text"),
        ({"text": "x" * 20_001}, "text"),
        ({"text": "nul \x00 here"}, "text"),
        ({"text": "ok", "ranking": [[1]]}, "ranking"),
        ({"text": "ok", "original_response": 3}, "original_response"),
        ({"text": "ok", "seconds": -1}, "seconds"),
        ({"text": "ok", "colour": "red"}, "colour"),
    ],
)
def test_bad_submit_names_the_field_and_writes_nothing(api_for, demo_project, writers, body, field):
    client = api_for(writers[0])
    task = _next(client, demo_project).json()
    response = client.post(task["submit_url"], body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Demonstration.objects.exists()
    assert Assignment.objects.get(pk=task["assignment_id"]).status == AssignmentStatus.LEASED


def test_someone_elses_assignment_is_not_found(api_for, demo_project, writers):
    task = _next(api_for(writers[0]), demo_project).json()
    response = api_for(writers[1]).post(task["submit_url"], {"text": "mine"}, format="json")
    assert response.status_code == 404


def test_reviews_go_to_another_rater_never_the_writer(api_for, demo_project, writers):
    writer, reviewer = writers
    writer_client, reviewer_client = api_for(writer), api_for(reviewer)
    task = _next(writer_client, demo_project).json()
    writer_client.post(task["submit_url"], {"text": "A reply"}, format="json")
    # The writer is served more writing, never their own reply to review.
    for _ in range(2):
        following = _next(writer_client, demo_project).json()
        assert following["task"] == "write"
        writer_client.post(following["submit_url"], {"text": "More"}, format="json")
    assert _next(writer_client, demo_project).status_code == 204
    review = _next(reviewer_client, demo_project).json()
    assert review["kind"] == "demonstration" and review["task"] == "review"
    assert review["text"] == "A reply"
    # Reloading gives the same review back.
    assert _next(reviewer_client, demo_project).json()["review_id"] == review["review_id"]


def test_review_accept_edit_reject(api_for, demo_project, writers):
    writer, reviewer = writers
    writer_client, reviewer_client = api_for(writer), api_for(reviewer)
    for text in ("first", "second", "third"):
        task = _next(writer_client, demo_project).json()
        assert (
            writer_client.post(task["submit_url"], {"text": text}, format="json").status_code == 201
        )
    decisions = [
        ({"decision": "accept"}, DemonstrationStatus.ACCEPTED, "first"),
        (
            {"decision": "edit", "text": "second, better"},
            DemonstrationStatus.EDITED,
            "second, better",
        ),
        ({"decision": "reject", "reason": "off topic"}, DemonstrationStatus.REJECTED, "third"),
    ]
    for body, status, final_text in decisions:
        review = _next(reviewer_client, demo_project).json()
        response = reviewer_client.post(review["submit_url"], body, format="json")
        assert response.status_code == 201, response.json()
        demonstration = Demonstration.objects.get(pk=review["demonstration_id"])
        assert demonstration.status == status
        assert demonstration.final_text == final_text
    edited = DemonstrationReview.objects.get(decision="edit")
    assert edited.edit_distance == len(", better")
    assert _next(reviewer_client, demo_project).status_code == 204  # every prompt written once


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "decision"),
        ({"decision": "maybe"}, "decision"),
        ({"decision": "reject"}, "reason"),
        ({"decision": "reject", "reason": "   "}, "reason"),
        ({"decision": "edit"}, "text"),
        ({"decision": "edit", "text": "A reply"}, "text"),
        ({"decision": "accept", "text": "sneaky edit"}, "text"),
        ({"decision": "accept", "extra": 1}, "extra"),
    ],
)
def test_bad_review_names_the_field(api_for, demo_project, writers, body, field):
    writer, reviewer = writers
    task = _next(api_for(writer), demo_project).json()
    api_for(writer).post(task["submit_url"], {"text": "A reply"}, format="json")
    review = _next(api_for(reviewer), demo_project).json()
    response = api_for(reviewer).post(review["submit_url"], body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert Demonstration.objects.get().status == DemonstrationStatus.PENDING_REVIEW


def test_review_resubmit_is_idempotent_and_a_change_conflicts(api_for, demo_project, writers):
    writer, reviewer = writers
    task = _next(api_for(writer), demo_project).json()
    api_for(writer).post(task["submit_url"], {"text": "A reply"}, format="json")
    client = api_for(reviewer)
    review = _next(client, demo_project).json()
    assert (
        client.post(review["submit_url"], {"decision": "accept"}, format="json").status_code == 201
    )
    assert (
        client.post(review["submit_url"], {"decision": "accept"}, format="json").status_code == 200
    )
    changed = client.post(
        review["submit_url"], {"decision": "reject", "reason": "no"}, format="json"
    )
    assert changed.status_code == 409


def test_expired_review_lease_taken_over_is_refused(
    api_for, make_user, demo_project, writers, join
):
    writer, reviewer = writers
    (second,) = join(demo_project, make_user("second_reviewer"))
    task = _next(api_for(writer), demo_project).json()
    api_for(writer).post(task["submit_url"], {"text": "A reply"}, format="json")
    review = _next(api_for(reviewer), demo_project).json()
    past = timezone.now() - timedelta(seconds=5)
    DemonstrationReview.objects.filter(pk=review["review_id"]).update(
        leased_at=past - timedelta(seconds=700), expires_at=past
    )
    taken = _next(api_for(second), demo_project).json()
    assert taken["task"] == "review" and taken["demonstration_id"] == review["demonstration_id"]
    late = api_for(reviewer).post(review["submit_url"], {"decision": "accept"}, format="json")
    assert late.status_code == 409 and late.json()["code"] == "lease_taken"
    assert (
        api_for(second).post(taken["submit_url"], {"decision": "accept"}, format="json").status_code
        == 201
    )


def test_expired_review_lease_still_free_is_accepted(api_for, demo_project, writers):
    writer, reviewer = writers
    task = _next(api_for(writer), demo_project).json()
    api_for(writer).post(task["submit_url"], {"text": "A reply"}, format="json")
    review = _next(api_for(reviewer), demo_project).json()
    past = timezone.now() - timedelta(seconds=5)
    DemonstrationReview.objects.filter(pk=review["review_id"]).update(
        leased_at=past - timedelta(seconds=700), expires_at=past
    )
    late = api_for(reviewer).post(review["submit_url"], {"decision": "accept"}, format="json")
    assert late.status_code == 201


def test_expired_write_lease_taken_over_is_refused(api_for, make_user, lead, join):
    project = make_demo_project(lead, overlap=1)
    import_prompts(project, sample_records(1, responses=0))
    first, second = join(project, make_user("w1"), make_user("w2"))
    task = _next(api_for(first), project).json()
    past = timezone.now() - timedelta(seconds=5)
    Assignment.objects.filter(pk=task["assignment_id"]).update(
        leased_at=past - timedelta(seconds=700), expires_at=past
    )
    assert _next(api_for(second), project).json()["task"] == "write"
    late = api_for(first).post(task["submit_url"], {"text": "late"}, format="json")
    assert late.status_code == 409 and late.json()["code"] == "lease_taken"


def test_overlap_gives_each_prompt_to_distinct_writers(api_for, make_user, lead, join):
    project = make_demo_project(lead, overlap=2, review_rate=0.0)
    import_prompts(project, sample_records(1, responses=0))
    users = join(project, make_user("w1"), make_user("w2"), make_user("w3"))
    for user in users[:2]:
        task = _next(api_for(user), project).json()
        assert (
            api_for(user).post(task["submit_url"], {"text": "hi"}, format="json").status_code == 201
        )
    assert _next(api_for(users[2]), project).status_code == 204
    assert Demonstration.objects.filter(status=DemonstrationStatus.UNREVIEWED).count() == 2


def test_paused_rater_gets_no_task_and_cannot_submit(api_for, demo_project, writers):
    writer = writers[0]
    task = _next(api_for(writer), demo_project).json()
    Membership.objects.filter(project=demo_project, user=writer).update(status=MemberStatus.PAUSED)
    assert _next(api_for(writer), demo_project).status_code == 403
    response = api_for(writer).post(task["submit_url"], {"text": "hi"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "paused"


def test_paused_reviewer_cannot_decide(api_for, demo_project, writers):
    writer, reviewer = writers
    task = _next(api_for(writer), demo_project).json()
    api_for(writer).post(task["submit_url"], {"text": "A reply"}, format="json")
    review = _next(api_for(reviewer), demo_project).json()
    Membership.objects.filter(project=demo_project, user=reviewer).update(
        status=MemberStatus.PAUSED
    )
    response = api_for(reviewer).post(review["submit_url"], {"decision": "accept"}, format="json")
    assert response.status_code == 403


def test_skip_write_and_review_tasks(api_for, demo_project, writers):
    writer, reviewer = writers
    task = _next(api_for(writer), demo_project).json()
    skipped = api_for(writer).post(task["skip_url"], {"reason": "no idea"}, format="json")
    assert skipped.status_code == 200
    assert _next(api_for(writer), demo_project).json()["assignment_id"] != task["assignment_id"]
    task = _next(api_for(writer), demo_project).json()
    api_for(writer).post(task["submit_url"], {"text": "A reply"}, format="json")
    review = _next(api_for(reviewer), demo_project).json()
    assert api_for(reviewer).post(review["skip_url"], {}, format="json").json()["field"] == "reason"
    assert (
        api_for(reviewer)
        .post(review["skip_url"], {"reason": "can't judge"}, format="json")
        .status_code
        == 200
    )
    # A skipped review is not served to the same reviewer again.
    following = _next(api_for(reviewer), demo_project).json()
    assert following["task"] == "write"


def test_review_rate_zero_routes_nothing(make_user, lead, join):
    project = make_demo_project(lead, review_rate=0.0)
    import_prompts(project, sample_records(1, responses=0))
    (writer,) = join(project, make_user("w"))
    from authoring.demonstrations.services import task_for_rater

    task = task_for_rater(project=project, rater=writer)
    demonstration, _ = demonstration_submit(
        assignment_id=task.assignment.pk, rater=writer, text="x"
    )
    assert demonstration.status == DemonstrationStatus.UNREVIEWED


def test_review_rate_routes_about_that_share(make_user, lead, join):
    project = make_demo_project(lead, review_rate=0.3)
    import_prompts(project, sample_records(200, responses=0))
    (writer,) = join(project, make_user("w"))
    from authoring.demonstrations.services import task_for_rater

    rng = random.Random(7)
    for _ in range(200):
        task = task_for_rater(project=project, rater=writer)
        demonstration_submit(assignment_id=task.assignment.pk, rater=writer, text="x", rng=rng)
    routed = Demonstration.objects.filter(status=DemonstrationStatus.PENDING_REVIEW).count()
    assert 40 <= routed <= 80  # 60 expected; binomial sd 6.5


# Rank then rewrite ------------------------------------------------------------------------------


@pytest.fixture
def rewriters(make_user, rewrite_project, join):
    return join(rewrite_project, make_user("writer"), make_user("reviewer"))


def test_rank_then_rewrite_payload_has_the_responses(api_for, rewrite_project, rewriters):
    body = _next(api_for(rewriters[0]), rewrite_project).json()
    assert body["mode"] == "rank_then_rewrite"
    assert [response["label"] for response in body["responses"]] == ["A", "B", "C"]


def test_rank_then_rewrite_stores_a_ranking_and_the_diff(api_for, rewrite_project, rewriters):
    client = api_for(rewriters[0])
    task = _next(client, rewrite_project).json()
    ids = [response["id"] for response in task["responses"]]
    texts = {response["id"]: response["text"] for response in task["responses"]}
    ranking = [[ids[2]], [ids[0], ids[1]]]
    new_text = texts[ids[2]] + ", with more detail."
    response = client.post(
        task["submit_url"], {"text": new_text, "ranking": ranking, "seconds": 12.5}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["ranking"] == ranking
    assert body["original_response_id"] == ids[2]
    assert body["edit_distance"] == len(", with more detail.")
    assert body["diff"].startswith(f"--- response-{ids[2]}\n+++ demonstration\n")
    stored = Ranking.objects.get()
    assert stored.groups == ranking and stored.assignment_id == task["assignment_id"]
    assert Demonstration.objects.get().ranking == stored
    # The same again: the stored reply; a different ranking: a conflict.
    again = client.post(task["submit_url"], {"text": new_text, "ranking": ranking}, format="json")
    assert again.status_code == 200
    other = client.post(
        task["submit_url"],
        {"text": new_text, "ranking": [[ids[0]], [ids[1]], [ids[2]]]},
        format="json",
    )
    assert other.status_code == 409


@pytest.mark.parametrize(
    ("make_body", "field"),
    [
        (lambda ids: {"text": "x"}, "ranking"),
        (lambda ids: {"text": "x", "ranking": [[ids[0]]]}, "ranking"),
        (lambda ids: {"text": "x", "ranking": [[ids[0]], [ids[1]], [ids[2]], [999]]}, "ranking[3]"),
        (
            lambda ids: {
                "text": "x",
                "ranking": [[ids[0]], [ids[1]], [ids[2]]],
                "original_response": ids[1],
            },
            "original_response",
        ),
        (lambda ids: {"text": "", "ranking": [[ids[0]], [ids[1]], [ids[2]]]}, "text"),
    ],
)
def test_bad_rank_then_rewrite_names_the_field(
    api_for, rewrite_project, rewriters, make_body, field
):
    client = api_for(rewriters[0])
    task = _next(client, rewrite_project).json()
    ids = [response["id"] for response in task["responses"]]
    response = client.post(task["submit_url"], make_body(ids), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Ranking.objects.exists() and not Demonstration.objects.exists()


def test_rewrite_of_a_tied_best_response_names_which(api_for, rewrite_project, rewriters):
    client = api_for(rewriters[0])
    task = _next(client, rewrite_project).json()
    ids = [response["id"] for response in task["responses"]]
    response = client.post(
        task["submit_url"],
        {"text": "new", "ranking": [[ids[0], ids[1]], [ids[2]]], "original_response": ids[1]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["original_response_id"] == ids[1]


def test_review_of_a_rewrite_shows_the_original_and_diff(api_for, rewrite_project, rewriters):
    writer, reviewer = rewriters
    task = _next(api_for(writer), rewrite_project).json()
    ids = [response["id"] for response in task["responses"]]
    api_for(writer).post(
        task["submit_url"],
        {"text": "rewritten", "ranking": [[ids[1]], [ids[0]], [ids[2]]]},
        format="json",
    )
    review = _next(api_for(reviewer), rewrite_project).json()
    assert review["task"] == "review" and review["mode"] == "rank_then_rewrite"
    assert review["original_response"]["id"] == ids[1]
    assert "+rewritten" in review["diff"]


def test_options_are_checked_when_the_project_is_created(api_for, lead):
    lead.is_staff = True
    lead.save(update_fields=["is_staff"])
    client = api_for(lead)
    for options, field in (
        ({"mode": "sing"}, "task_options.mode"),
        ({"review_rate": 2}, "task_options.review_rate"),
        ({"review_rate": True}, "task_options.review_rate"),
        ({"flag_min_reviews": 0}, "task_options.flag_min_reviews"),
        ({"colour": 1}, "task_options.colour"),
    ):
        response = client.post(
            "/api/projects/",
            {"name": "D", "task_kind": "demonstration", "task_options": options},
            format="json",
        )
        assert response.status_code == 400, options
        assert response.json()["field"] == field
    created = client.post(
        "/api/projects/", {"name": "D", "task_kind": "demonstration"}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["task_options"]["review_rate"] == 1.0


def test_undo_of_a_written_demonstration_is_refused_not_a_500(api_for, demo_project, writers):
    client = api_for(writers[0])
    task = _next(client, demo_project).json()
    client.post(task["submit_url"], {"text": "A reply"}, format="json")
    response = client.post(f"/api/assignments/{task['assignment_id']}/undo/")
    assert response.status_code == 409 and response.json()["code"] == "not_a_ranking"


def test_undo_then_resubmit_of_a_rewrite_replaces_the_demonstration(
    api_for, rewrite_project, rewriters
):
    client = api_for(rewriters[0])
    task = _next(client, rewrite_project).json()
    ids = [response["id"] for response in task["responses"]]
    ranking = [[ids[0]], [ids[1]], [ids[2]]]
    first = client.post(
        task["submit_url"], {"text": "first try", "ranking": ranking}, format="json"
    )
    assert client.post(f"/api/assignments/{task['assignment_id']}/undo/").status_code == 200
    again = client.post(
        task["submit_url"], {"text": "second try", "ranking": ranking[::-1]}, format="json"
    )
    assert again.status_code == 201, again.json()
    assert again.json()["id"] == first.json()["id"]
    stored = Demonstration.objects.get()
    assert stored.text == "second try" and stored.original_response_id == ids[2]
    assert Ranking.objects.get().groups == ranking[::-1]
