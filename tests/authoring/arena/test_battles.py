"""The arena through its API: battles, streamed turns, votes, context, reveal, daily cap."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from authoring.arena.models import Battle, Turn
from authoring.arena.services import battles, turns
from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Membership, MemberStatus, Prompt
from rankings.models import Ranking
from tests.authoring.arena.helpers import stream_text
from tests.llm.helpers import SECRET


def _next_task(client, project):
    response = client.get(f"/api/projects/{project.pk}/next-task/")
    assert response.status_code == 200, response.content
    return response.json()


def _say(client, battle, content):
    return client.post(battle["turns_url"], {"content": content}, format="json")


def _stream_both(client, turn):
    return {side: stream_text(client.get(turn[side]["stream_url"])) for side in ("a", "b")}


def _vote(client, turn, choice, strength=None):
    body = {"choice": choice} if strength is None else {"choice": choice, "strength": strength}
    return client.post(turn["vote_url"], body, format="json")


def _turn(client, battle, content, choice="a", strength=2):
    battle = _say(client, battle, content).json()
    turn = battle["turns"][-1]
    _stream_both(client, turn)
    response = _vote(client, turn, choice, strength)
    assert response.status_code == 201, response.content
    return response.json()


def test_next_task_opens_a_battle_with_no_models_named(api_for, arena, arena_rater):
    client = api_for(arena_rater)
    task = _next_task(client, arena)
    assert task["kind"] == "arena" and task["turns"] == [] and task["can_continue"]
    assert task["revealed"] is None
    assert "model-0" not in str(task) and "model-1" not in str(task)
    assert _next_task(client, arena)["battle_id"] == task["battle_id"]  # the same battle back


def test_both_sides_stream_in_pieces_and_are_stored(api_for, arena, arena_rater, fake_llm):
    client = api_for(arena_rater)
    battle = _say(client, _next_task(client, arena), "Explain **tides**").json()
    turn = battle["turns"][0]
    assert (
        turn["content"] == "Explain **tides**" and "<strong>tides</strong>" in turn["content_html"]
    )
    streamed = _stream_both(client, turn)
    for side, events in streamed.items():
        names = [name for name, _ in events]
        assert names[-1] == "done" and names.count("delta") > 3
        text = "".join(data["text"] for name, data in events if name == "delta")
        stored = Turn.objects.get(pk=turn["number"] and Turn.objects.get().pk)
        response = stored.response_a if side == "a" else stored.response_b
        assert response.text == text
    stored = Turn.objects.get()
    assert {stored.response_a.text[:9], stored.response_b.text[:9]} == {"[fake-0] ", "[fake-1] "}
    assert all(body["stream"] is True for body in fake_llm.state.bodies)
    assert all(auth == f"Bearer {SECRET}" for auth in fake_llm.state.authorizations)
    # A finished reply answers its stored final event, without calling the model again.
    calls = fake_llm.state.requests
    again = stream_text(client.get(turn["a"]["stream_url"]))
    assert [name for name, _ in again] == ["done"] and fake_llm.state.requests == calls


def test_pieces_arrive_before_the_reply_ends(api_for, arena, arena_rater, fake_llm):
    fake_llm.state.stream_delay = 0.05
    client = api_for(arena_rater)
    turn = _say(client, _next_task(client, arena), "count slowly").json()["turns"][0]
    response = client.get(turn["a"]["stream_url"])
    chunks = iter(response.streaming_content)
    first = next(chunks).decode()
    assert first.startswith("event: delta")
    assert Turn.objects.get().state_a == "streaming"  # the model is still answering
    rest = b"".join(chunks).decode()
    assert "event: done" in rest
    assert Turn.objects.get().state_a == "done"


def test_a_vote_is_a_pairwise_ranking_of_the_turns_assignment(api_for, arena, arena_rater):
    client = api_for(arena_rater)
    battle = _turn(client, _next_task(client, arena), "hello", choice="b", strength=3)
    turn = Turn.objects.get()
    ranking = Ranking.objects.get()
    assert ranking.assignment_id == turn.assignment_id
    assert ranking.groups == [[turn.response_b_id], [turn.response_a_id]]
    assert ranking.strength == 3
    assert turn.assignment.status == AssignmentStatus.SUBMITTED
    assert turn.prompt.is_complete
    assert battle["turns"][0]["vote"] == {
        "choice": "b", "strength": 3, "counted": True, "void_reason": ""
    }  # fmt: skip
    assert battle["revealed"] is None  # not before the rater asks


def test_ties_and_both_bad_are_tied_rankings(api_for, arena, arena_rater):
    client = api_for(arena_rater)
    _turn(client, _next_task(client, arena), "one", choice="tie", strength=None)
    client.post(f"/api/projects/{arena.pk}/arena/battles/")
    _turn(client, _next_task(client, arena), "two", choice="both_bad", strength=None)
    groups = [ranking.groups for ranking in Ranking.objects.order_by("id")]
    assert all(len(group) == 1 and len(group[0]) == 2 for group in groups)
    assert list(Turn.objects.order_by("id").values_list("choice", flat=True)) == ["tie", "both_bad"]
    assert [ranking.strength for ranking in Ranking.objects.all()] == [0, 0]


def test_the_same_vote_again_answers_the_stored_one_another_is_refused(api_for, arena, arena_rater):
    client = api_for(arena_rater)
    battle = _turn(client, _next_task(client, arena), "hello", choice="a", strength=1)
    turn = battle["turns"][0]
    assert _vote(client, turn, "a", 1).status_code == 200
    refused = _vote(client, turn, "b", 1)
    assert refused.status_code == 409 and refused.json()["code"] == "voted"
    assert Ranking.objects.count() == 1


def test_the_next_turn_continues_from_the_preferred_reply(api_for, arena, arena_rater, fake_llm):
    client = api_for(arena_rater)
    battle = _turn(client, _next_task(client, arena), "first question", choice="b")
    first = Turn.objects.get()
    preferred = first.response_b.text
    fake_llm.state.reset_counts()
    battle = _say(client, battle, "and then?").json()
    assert [turn["number"] for turn in battle["turns"]] == [1, 2]
    _stream_both(client, battle["turns"][1])
    expected = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": preferred},
        {"role": "user", "content": "and then?"},
    ]
    assert len(fake_llm.state.bodies) == 2
    assert all(body["messages"] == expected for body in fake_llm.state.bodies)
    second = Turn.objects.get(number=2)
    assert second.prompt.messages == expected
    assert second.battle_id == first.battle_id


def test_writing_before_voting_and_continuing_after_both_bad_are_refused(
    api_for, arena, arena_rater
):
    client = api_for(arena_rater)
    battle = _say(client, _next_task(client, arena), "q1").json()
    pending = _say(client, battle, "q2")
    assert pending.status_code == 409 and pending.json()["code"] == "vote_pending"
    early = _vote(client, battle["turns"][0], "a")
    assert early.status_code == 409 and early.json()["code"] == "streaming"
    _stream_both(client, battle["turns"][0])
    battle = _vote(client, battle["turns"][0], "both_bad").json()
    assert battle["can_continue"] is False
    refused = _say(client, battle, "q2")
    assert refused.status_code == 409 and refused.json()["code"] == "nothing_to_continue"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"choice": "c"}, "choice"),
        ({"choice": "a", "strength": 5}, "strength"),
        ({"choice": "tie", "strength": 2}, "strength"),
        ({"choice": "a", "strength": True}, "strength"),
        ({"choice": "a", "why": 1}, "why"),
        ({}, "choice"),
    ],
)
def test_bad_votes_are_400s_naming_the_field(api_for, arena, arena_rater, body, field):
    client = api_for(arena_rater)
    battle = _say(client, _next_task(client, arena), "q").json()
    _stream_both(client, battle["turns"][0])
    response = client.post(battle["turns"][0]["vote_url"], body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not Ranking.objects.exists() and Turn.objects.get().voted_at is None


@pytest.mark.parametrize(
    ("body", "field"),
    [({"content": "  "}, "content"), ({"content": 3}, "content"), ({"text": "x"}, "text"),
     ({"content": "x" * 20_001}, "content"), ({"content": "a\x00b"}, "content")],
)  # fmt: skip
def test_bad_messages_are_400s_naming_the_field(api_for, arena, arena_rater, body, field):
    client = api_for(arena_rater)
    battle = _next_task(client, arena)
    response = client.post(battle["turns_url"], body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not Prompt.objects.filter(project=arena).exists()


def test_stream_side_must_be_a_or_b_and_others_battles_are_not_found(
    api_for, arena, arena_rater, make_user, add_member
):
    client = api_for(arena_rater)
    battle = _say(client, _next_task(client, arena), "q").json()
    url = battle["turns"][0]["a"]["stream_url"].split("?")[0]
    bad = client.get(f"{url}?side=c", HTTP_ACCEPT="text/event-stream")
    assert bad.status_code == 400 and bad.json()["field"] == "side"
    other = api_for(add_member(make_user("other"), target=arena))
    assert other.get(battle["turns"][0]["a"]["stream_url"]).status_code == 404
    assert other.post(battle["turns_url"], {"content": "x"}, format="json").status_code == 404
    assert other.get(f"/api/arena/battles/{battle['battle_id']}/").status_code == 404


def test_a_failed_stream_is_stored_and_the_turn_can_still_be_voted(
    api_for, arena, arena_rater, fake_llm
):
    client = api_for(arena_rater)
    battle = _say(client, _next_task(client, arena), "please FAIL500").json()
    events = _stream_both(client, battle["turns"][0])
    assert events["a"][-1][0] == "failed" and "500" in events["a"][-1][1]["detail"]
    assert SECRET not in str(events)
    assert Turn.objects.get().state_a == "failed"
    assert _vote(client, battle["turns"][0], "tie").status_code == 201


def test_reveal_shows_the_models_and_later_votes_do_not_count(api_for, arena, arena_rater):
    client = api_for(arena_rater)
    battle = _next_task(client, arena)
    early = client.post(battle["reveal_url"])
    assert early.status_code == 409 and early.json()["code"] == "no_vote"
    battle = _turn(client, battle, "q1", choice="a")
    battle = _say(client, battle, "q2").json()  # a turn in flight when the rater reveals
    revealed = client.post(battle["reveal_url"]).json()
    stored = Battle.objects.get()
    assert revealed["revealed"] == {"a": stored.model_a, "b": stored.model_b}
    _stream_both(client, revealed["turns"][1])
    after = _vote(client, revealed["turns"][1], "b")
    assert after.status_code == 201
    assert after.json()["turns"][1]["vote"]["counted"] is False
    assert after.json()["turns"][1]["vote"]["void_reason"] == "revealed"
    assert Ranking.objects.count() == 1  # only the vote cast before the reveal
    second = Turn.objects.get(number=2)
    assert second.assignment.status == AssignmentStatus.SKIPPED
    assert "revealed" in second.assignment.skip_reason
    refused = _say(client, after.json(), "q3")
    assert refused.status_code == 409 and refused.json()["code"] == "revealed"


def test_a_project_that_does_not_reveal_refuses_it(api_for, make_arena, make_user, add_member):
    project = make_arena(reveal=False)
    client = api_for(add_member(make_user("v"), target=project))
    battle = _turn(client, _next_task(client, project), "q")
    assert battle["reveal_url"] is None
    response = client.post(f"/api/arena/battles/{battle['battle_id']}/reveal/")
    assert response.status_code == 403 and response.json()["code"] == "reveal_off"


def test_the_daily_cap_stops_new_turns_and_next_task(api_for, make_arena, make_user, add_member):
    project = make_arena(daily_cap=2)
    client = api_for(add_member(make_user("v"), target=project))
    battle = _turn(client, _next_task(client, project), "q1")
    assert battle["votes_left"] == 1
    battle = _turn(client, battle, "q2")
    assert battle["votes_left"] == 0 and battle["can_continue"] is False
    refused = _say(client, battle, "q3")
    assert refused.status_code == 409 and refused.json()["code"] == "daily_cap"
    start = client.post(f"/api/projects/{project.pk}/arena/battles/")
    assert start.status_code == 409 and start.json()["code"] == "daily_cap"
    assert client.get(f"/api/projects/{project.pk}/next-task/").status_code == 204
    assert Ranking.objects.filter(project=project).count() == 2


def test_a_vote_over_the_cap_is_kept_but_not_counted(arena, arena_rater):
    def cap(value):
        arena.task_options = {**arena.task_options, "daily_cap": value}
        arena.save(update_fields=["task_options"])

    def answered_turn(battle_id, content):
        turn = turns.turn_create(battle_id=battle_id, rater=arena_rater, content=content)
        Turn.objects.filter(pk=turn.pk).update(state_a="done", state_b="done")
        return turn

    battle = battles.battle_current(project=arena, rater=arena_rater)
    cap(2)
    answered_turn(battle.pk, "q1")
    turns.turn_vote(battle_id=battle.pk, number=1, rater=arena_rater, choice="a")
    second = answered_turn(battle.pk, "q2")
    cap(1)  # the lead lowers the cap while the second turn waits for its vote
    turn, created = turns.turn_vote(
        battle_id=battle.pk, number=2, rater=arena_rater, choice="b", strength=3
    )
    assert created and not turn.counted and turn.void_reason == "daily_cap"
    assert turn.choice == "b" and turn.strength == 3  # kept, not counted
    assert Ranking.objects.count() == 1
    second.assignment.refresh_from_db()
    assert second.assignment.status == AssignmentStatus.SKIPPED


def test_starting_a_new_battle_skips_the_unvoted_turn(api_for, arena, arena_rater):
    client = api_for(arena_rater)
    battle = _say(client, _next_task(client, arena), "q").json()
    fresh = client.post(f"/api/projects/{arena.pk}/arena/battles/")
    assert fresh.status_code == 201 and fresh.json()["battle_id"] != battle["battle_id"]
    old = Turn.objects.get()
    assert old.assignment.status == AssignmentStatus.SKIPPED
    assert Battle.objects.get(pk=battle["battle_id"]).closed_at is not None
    assert _next_task(client, arena)["battle_id"] == fresh.json()["battle_id"]


def test_skipping_the_turns_assignment_ends_the_battle(api_for, arena, arena_rater):
    client = api_for(arena_rater)
    battle = _say(client, _next_task(client, arena), "q").json()
    skipped = client.post(
        f"/api/assignments/{battle['assignment_id']}/skip/", {"reason": "no"}, format="json"
    )
    assert skipped.status_code == 200
    assert _next_task(client, arena)["battle_id"] != battle["battle_id"]


def test_a_paused_rater_gets_no_battle_and_cannot_write(api_for, arena, arena_rater):
    client = api_for(arena_rater)
    battle = _next_task(client, arena)
    Membership.objects.filter(user=arena_rater).update(status=MemberStatus.PAUSED)
    assert client.get(f"/api/projects/{arena.pk}/next-task/").status_code == 403
    assert _say(client, battle, "q").status_code == 403


def test_arena_prompts_are_never_served_by_the_lease_queue(
    arena, arena_rater, make_user, add_member
):
    battle = battles.battle_current(project=arena, rater=arena_rater)
    turns.turn_create(battle_id=battle.pk, rater=arena_rater, content="q")
    Prompt.objects.filter(project=arena).update(is_complete=False)  # e.g. an overlap change
    other = add_member(make_user("other"), target=arena)
    assert labeling_services.lease_next_assignment(project=arena, rater=other) is None
    assert Assignment.objects.filter(project=arena).count() == 1


def test_a_project_with_one_endpoint_says_what_is_missing(
    api_for, make_arena, make_user, add_member
):
    project = make_arena(endpoints=1)
    client = api_for(add_member(make_user("v"), target=project))
    response = client.get(f"/api/projects/{project.pk}/next-task/")
    assert response.status_code == 409
    assert response.json()["field"] == "task_options.endpoints"


def test_pairs_are_drawn_evenly_and_sides_at_random(arena, arena_rater, lead, fake_llm):
    from tests.llm.helpers import make_endpoint

    make_endpoint(arena, fake_llm.base_url, name="model-2", model="fake-2")
    rng = random.Random(7)
    for _ in range(30):
        battles.battle_start(project=arena, rater=arena_rater, rng=rng)
    pairs = Counter(frozenset(pair) for pair in Battle.objects.values_list("model_a", "model_b"))
    assert sorted(pairs.values()) == [10, 10, 10]
    on_a = Counter(Battle.objects.values_list("model_a", flat=True))
    assert all(5 <= count <= 15 for count in on_a.values())


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"endpoints": [1]}, "task_options.endpoints"),
        ({"endpoints": [1, 1]}, "task_options.endpoints"),
        ({"endpoints": "1,2"}, "task_options.endpoints"),
        ({"daily_cap": 0}, "task_options.daily_cap"),
        ({"reveal": "yes"}, "task_options.reveal"),
        ({"outlier_z": -1}, "task_options.outlier_z"),
        ({"colour": 1}, "task_options.colour"),
    ],
)
def test_bad_options_are_refused_naming_the_option(api_for, lead, options, field):
    client = api_for(lead)
    lead.is_staff = True
    lead.save()
    response = client.post(
        "/api/projects/",
        {"name": "A", "task_kind": "arena", "task_options": options},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_listed_endpoints_must_be_the_projects(api_for, make_arena, make_user, add_member):
    project = make_arena()
    project.task_options = {**project.task_options, "endpoints": [999_998, 999_999]}
    project.save(update_fields=["task_options"])
    client = api_for(add_member(make_user("v"), target=project))
    response = client.get(f"/api/projects/{project.pk}/next-task/")
    assert response.status_code == 409 and response.json()["field"] == "task_options.endpoints"


def test_a_battle_is_refused_in_a_project_of_another_kind(api_for, project, rater):
    response = api_for(rater).post(f"/api/projects/{project.pk}/arena/battles/")
    assert response.status_code == 409 and response.json()["field"] == "task_kind"
    assert not Battle.objects.exists()
