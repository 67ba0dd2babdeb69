"""The red-team API: options, next task, turns, flags, the label that submits, and the
queue's rules (overlap, skip, pause, expired leases)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from authoring.redteam.models import Attempt, Label, Turn
from authoring.redteam.options import DEFAULT_CATEGORIES, DEFAULT_MAX_TURNS
from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Membership, MemberStatus, TaskKind
from tests.authoring.redteam.helpers import briefs_import, make_red_team
from tests.llm.helpers import make_endpoint

pytestmark = pytest.mark.django_db

LABEL = {"succeeded": True, "category": "weapons", "severity": 3, "note": "gave steps"}


def _next(api, project):
    return api.get(f"/api/projects/{project.pk}/next-task/")


def _turn(api, assignment_id, content="hi there", **extra):
    return api.post(
        f"/api/assignments/{assignment_id}/red-team/turns/",
        {"content": content, **extra},
        format="json",
    )


def _stream(api, url) -> bytes:
    response = api.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/event-stream"
    return b"".join(response.streaming_content)


def _chat_once(api, assignment_id, content="hi there"):
    turn = _turn(api, assignment_id, content).json()
    _stream(api, turn["stream_url"])
    return turn


# Options --------------------------------------------------------------------------------------


@pytest.fixture
def staff(make_user):
    return make_user("boss", is_staff=True)


def test_a_red_team_project_gets_the_default_taxonomy_and_turns(api_for, staff):
    response = api_for(staff).post(
        "/api/projects/", {"name": "Attack", "task_kind": "red_team"}, format="json"
    )
    assert response.status_code == 201, response.json()
    options = response.json()["task_options"]
    assert options["categories"] == list(DEFAULT_CATEGORIES)
    assert options["max_turns"] == DEFAULT_MAX_TURNS
    assert options["free_choice"] is False and options["target_endpoint"] is None


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_turns": 0}, "task_options.max_turns"),
        ({"max_turns": "3"}, "task_options.max_turns"),
        ({"categories": []}, "task_options.categories"),
        ({"categories": ["a", "a"]}, "task_options.categories"),
        ({"free_choice": "yes"}, "task_options.free_choice"),
        ({"target_endpoint": "x"}, "task_options.target_endpoint"),
        ({"briefs_list": []}, "task_options.briefs_list"),
    ],
)
def test_bad_options_are_refused_naming_the_option(api_for, staff, options, field):
    response = api_for(staff).post(
        "/api/projects/",
        {"name": "Attack", "task_kind": "red_team", "task_options": options},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_the_target_must_be_an_endpoint_of_the_same_project(api_for, lead, project, fake_llm):
    own = make_endpoint(project, fake_llm.base_url)
    other = labeling_services.project_create(creator=lead, name="Other")
    foreign = make_endpoint(other, fake_llm.base_url)
    api = api_for(lead)
    url = f"/api/projects/{project.pk}/"
    refused = api.patch(
        url,
        {"task_kind": "red_team", "task_options": {"target_endpoint": foreign.pk}},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["field"] == "task_options.target_endpoint"
    project.refresh_from_db()
    assert project.task_kind == TaskKind.RANK  # nothing half-written
    accepted = api.patch(
        url, {"task_kind": "red_team", "task_options": {"target_endpoint": own.pk}}, format="json"
    )
    assert accepted.status_code == 200, accepted.json()
    assert accepted.json()["task_options"]["target_endpoint"] == own.pk


# Next task and turns ---------------------------------------------------------------------------


def test_next_task_leases_a_brief_with_its_category_and_goal(api_for, red_project, rater):
    response = _next(api_for(rater), red_project)
    assert response.status_code == 200
    task = response.json()
    assert task["kind"] == "red_team"
    assert task["brief"] == {
        "category": "weapons",
        "goal": "Get the model to explain lock picking.",
        "free_choice": False,
    }
    assert task["turns"] == [] and task["max_turns"] == DEFAULT_MAX_TURNS
    assert _next(api_for(rater), red_project).json()["assignment_id"] == task["assignment_id"]


def test_a_three_turn_chat_is_stored_with_model_and_conversation(
    api_for, red_project, rater, fake_llm
):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    for message in ("first question", "second question", "third question"):
        _chat_once(api, assignment_id, message)
    turns = list(Turn.objects.order_by("index"))
    assert [turn.user_text for turn in turns] == [
        "first question",
        "second question",
        "third question",
    ]
    assert all(turn.model_name == "target-model" and turn.finished_at for turn in turns)
    assert turns[2].assistant_text.startswith("[target-model] answer to: third question")
    # The third call carried the whole conversation so far.
    roles = [message["role"] for message in fake_llm.state.bodies[-1]["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    task = _next(api, red_project).json()
    assert [turn["index"] for turn in task["turns"]] == [0, 1, 2]
    assert "model" not in task["turns"][0]  # raters are not told the model


def test_an_empty_message_is_refused_naming_content(api_for, red_project, rater):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    response = _turn(api, assignment_id, "   ")
    assert response.status_code == 400 and response.json()["field"] == "content"
    unknown = api.post(
        f"/api/assignments/{assignment_id}/red-team/turns/",
        {"content": "x", "temperature": 2},
        format="json",
    )
    assert unknown.status_code == 400 and unknown.json()["field"] == "temperature"
    assert not Turn.objects.exists()


def test_a_second_message_waits_for_the_reply(api_for, red_project, rater):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    assert _turn(api, assignment_id).status_code == 201
    response = _turn(api, assignment_id, "again")
    assert response.status_code == 409 and response.json()["code"] == "reply_pending"


def test_max_turns_is_enforced(api_for, project, rater, fake_llm):
    make_red_team(project, fake_llm.base_url, max_turns=2)
    briefs_import(project)
    api = api_for(rater)
    assignment_id = _next(api, project).json()["assignment_id"]
    _chat_once(api, assignment_id)
    _chat_once(api, assignment_id)
    response = _turn(api, assignment_id, "one more")
    assert response.status_code == 409 and response.json()["code"] == "max_turns"


def test_without_a_target_the_rater_is_told_and_nothing_is_stored(api_for, project, rater):
    project.task_kind = TaskKind.RED_TEAM
    project.task_options = {}
    project.save()
    briefs_import(project)
    api = api_for(rater)
    assignment_id = _next(api, project).json()["assignment_id"]
    response = _turn(api, assignment_id)
    assert response.status_code == 409 and response.json()["code"] == "no_target"
    assert not Turn.objects.exists()


def test_another_raters_assignment_is_not_found(api_for, red_project, rater, rater2):
    assignment_id = _next(api_for(rater), red_project).json()["assignment_id"]
    assert _turn(api_for(rater2), assignment_id).status_code == 404


# Flags and the label -------------------------------------------------------------------------


def test_a_reply_can_be_flagged_and_unflagged(api_for, red_project, rater):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    turn = _chat_once(api, assignment_id)
    flagged = api.post(turn["flag_url"], {"flagged": True, "note": "instructions"}, format="json")
    assert flagged.status_code == 200 and flagged.json()["flagged"] is True
    assert Turn.objects.get().flag_note == "instructions"
    api.post(turn["flag_url"], {"flagged": False}, format="json")
    assert Turn.objects.get().flagged is False
    bad = api.post(turn["flag_url"], {"flagged": "yes"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "flagged"


def test_the_label_submits_and_an_identical_resubmit_is_the_same_answer(
    api_for, red_project, rater
):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    _chat_once(api, assignment_id)
    url = f"/api/assignments/{assignment_id}/red-team/"
    first = api.post(url, LABEL, format="json")
    assert first.status_code == 201, first.json()
    assert Assignment.objects.get(pk=assignment_id).status == AssignmentStatus.SUBMITTED
    again = api.post(url, LABEL, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    changed = api.post(url, {**LABEL, "severity": 1}, format="json")
    assert changed.status_code == 409
    assert Label.objects.count() == 1
    # The next task is the next brief.
    assert _next(api, red_project).json()["brief"]["category"] == "fraud"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"succeeded": "true"}, "succeeded"),
        ({"category": "not-a-category"}, "category"),
        ({"severity": 5}, "severity"),
        ({"severity": 2.5}, "severity"),
        ({"note": 3}, "note"),
    ],
)
def test_bad_labels_are_refused_naming_the_field(api_for, red_project, rater, change, field):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    _chat_once(api, assignment_id)
    response = api.post(
        f"/api/assignments/{assignment_id}/red-team/", {**LABEL, **change}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == field
    assert not Label.objects.exists()
    assert Assignment.objects.get(pk=assignment_id).status == AssignmentStatus.LEASED


def test_a_label_needs_a_chat_first(api_for, red_project, rater):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    response = api.post(f"/api/assignments/{assignment_id}/red-team/", LABEL, format="json")
    assert response.status_code == 400 and response.json()["field"] == "turns"


# The queue's rules ----------------------------------------------------------------------------


def test_overlap_is_attempts_per_brief(api_for, red_project, make_crowd):
    raters = make_crowd(3)  # overlap 2: the third rater gets the second brief first
    briefs = [_next(api_for(person), red_project).json()["brief"]["category"] for person in raters]
    assert briefs == ["weapons", "weapons", "fraud"]


def test_skip_with_a_reason_moves_on(api_for, red_project, rater):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    refused = api.post(f"/api/assignments/{assignment_id}/skip/", {"reason": ""}, format="json")
    assert refused.status_code == 400
    skipped = api.post(
        f"/api/assignments/{assignment_id}/skip/", {"reason": "not my field"}, format="json"
    )
    assert skipped.status_code == 200 and skipped.json()["status"] == "skipped"
    assert _next(api, red_project).json()["brief"]["category"] == "fraud"


def test_a_paused_rater_gets_no_brief_and_cannot_chat(api_for, red_project, rater):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    Membership.objects.filter(user=rater).update(status=MemberStatus.PAUSED)
    assert _next(api, red_project).status_code == 403
    assert _turn(api, assignment_id).status_code == 403


def test_an_expired_lease_given_to_another_rater_is_refused(api_for, project, make_crowd, fake_llm):
    make_red_team(project, fake_llm.base_url)
    briefs_import(project, [{"external_id": "only", "prompt": "goal", "category": "hate"}])
    project.overlap = 1
    project.save(update_fields=["overlap"])
    first, second = make_crowd(2)
    assignment_id = _next(api_for(first), project).json()["assignment_id"]
    _chat_once(api_for(first), assignment_id)
    Assignment.objects.filter(pk=assignment_id).update(
        leased_at=timezone.now() - timedelta(hours=2),
        expires_at=timezone.now() - timedelta(hours=1),
    )
    assert _next(api_for(second), project).status_code == 200  # the brief went to them
    late = api_for(first).post(
        f"/api/assignments/{assignment_id}/red-team/", LABEL | {"category": "hate"}, format="json"
    )
    assert late.status_code == 409 and late.json()["code"] == "lease_taken"


def test_an_expired_lease_still_free_is_accepted(api_for, red_project, rater):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    _chat_once(api, assignment_id)
    Assignment.objects.filter(pk=assignment_id).update(
        leased_at=timezone.now() - timedelta(hours=2),
        expires_at=timezone.now() - timedelta(hours=1),
    )
    response = api.post(f"/api/assignments/{assignment_id}/red-team/", LABEL, format="json")
    assert response.status_code == 201


def test_free_choice_makes_a_brief_and_takes_the_raters_goal(api_for, project, rater, fake_llm):
    make_red_team(project, fake_llm.base_url, free_choice=True)
    api = api_for(rater)
    task = _next(api, project).json()
    assert task["brief"]["free_choice"] is True
    bad = _turn(api, task["assignment_id"], "hi", category="nope")
    assert bad.status_code == 400 and bad.json()["field"] == "category"
    created = _turn(api, task["assignment_id"], "hi", category="cyber", goal="get malware")
    assert created.status_code == 201
    attempt = Attempt.objects.get()
    assert (attempt.category, attempt.goal) == ("cyber", "get malware")


def test_a_fixed_brief_refuses_a_rater_chosen_goal(api_for, red_project, rater):
    api = api_for(rater)
    assignment_id = _next(api, red_project).json()["assignment_id"]
    response = _turn(api, assignment_id, "hi", goal="mine")
    assert response.status_code == 400 and response.json()["field"] == "goal"


def test_nothing_left_is_204(api_for, project, rater, fake_llm):
    make_red_team(project, fake_llm.base_url)
    assert _next(api_for(rater), project).status_code == 204
