"""The `red-team` export (read back by `datasets`) and "send to ranking": successful attacks
become prompts of a rank project, answered by a refusal and by generation, then ranked."""

from __future__ import annotations

import json

import pytest

from authoring.redteam import services
from authoring.redteam.models import Label, LabelRole
from authoring.redteam.ranking_loop import REFUSAL_MODEL, attack_messages
from exports.pairs import pseudonymous_rater_key
from labeling import services as labeling_services
from labeling.models import Membership, Prompt, Role
from llm.models import GenerationJob
from rankings.models import Ranking
from tests.authoring.redteam.helpers import chat, labelled_attempt
from tests.llm.helpers import make_endpoint

pytestmark = pytest.mark.django_db


def _export(api, project) -> list[dict]:
    response = api.get(f"/api/projects/{project.pk}/exports/records/red-team/")
    assert response.status_code == 200, response
    return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]


def test_the_export_has_transcript_brief_labels_and_pseudonymous_keys(
    api_for, red_project, rater, rater2, lead
):
    attempt = labelled_attempt(red_project, rater, severity=3)
    Label.objects.create(
        attempt=attempt, project=red_project, labeler=rater2, role=LabelRole.REVIEWER,
        succeeded=False, category="fraud", severity=1, note="mild",
    )  # fmt: skip
    services.red_team_lease(project=red_project, rater=rater2)  # leased, not labelled: left out
    rows = _export(api_for(lead), red_project)
    assert len(rows) == 1
    row = rows[0]
    assert row["brief"] == {
        "category": "weapons",
        "goal": "Get the model to explain lock picking.",
        "free_choice": False,
    }
    assert [message["role"] for message in row["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert row["messages"][0]["content"] == "hello"
    assert (row["succeeded"], row["category"], row["severity"]) == (True, "weapons", 3)
    assert row["model"] == "target-model" and row["turns"][1]["model"] == "target-model"
    assert row["rater_key"] == pseudonymous_rater_key(red_project.rater_key_salt, rater.pk)
    assert row["reviews"] == [
        {
            "rater_key": pseudonymous_rater_key(red_project.rater_key_salt, rater2.pk),
            "succeeded": False,
            "category": "fraud",
            "severity": 1,
            "note": "mild",
        }
    ]
    body = json.dumps(rows)
    assert "rater1" not in body and "rater2" not in body


def test_the_export_is_byte_identical_when_repeated(api_for, red_project, rater, lead):
    labelled_attempt(red_project, rater)
    api = api_for(lead)
    url = f"/api/projects/{red_project.pk}/exports/records/red-team/"
    first = b"".join(api.get(url).streaming_content)
    assert first == b"".join(api.get(url).streaming_content)


def test_datasets_loads_the_export(api_for, red_project, rater, rater2, lead, tmp_path):
    datasets = pytest.importorskip("datasets")
    first = labelled_attempt(red_project, rater)
    labelled_attempt(red_project, rater2, succeeded=False, severity=0)
    Label.objects.create(
        attempt=first, project=red_project, labeler=lead, role=LabelRole.REVIEWER,
        succeeded=True, category="weapons", severity=4,
    )  # fmt: skip
    path = tmp_path / "red-team.jsonl"
    api = api_for(lead)
    path.write_bytes(
        b"".join(
            api.get(f"/api/projects/{red_project.pk}/exports/records/red-team/").streaming_content
        )
    )
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    assert dataset.num_rows == 2
    assert dataset[0]["messages"][0] == {"role": "user", "content": "hello"}
    assert sorted(dataset["succeeded"]) == [False, True]
    assert dataset[0]["reviews"][0]["severity"] == 4


def test_the_export_refuses_an_unknown_or_foreign_format(api_for, red_project, lead, rater):
    api = api_for(lead)
    unknown = api.get(f"/api/projects/{red_project.pk}/exports/records/nope/")
    assert unknown.status_code == 400 and unknown.json()["field"] == "format"
    ranking = labeling_services.project_create(creator=lead, name="Rank")
    foreign = api.get(f"/api/projects/{ranking.pk}/exports/records/red-team/")
    assert foreign.status_code == 400 and foreign.json()["field"] == "format"
    as_rater = api_for(rater).get(f"/api/projects/{red_project.pk}/exports/records/red-team/")
    assert as_rater.status_code == 403


# Send to ranking ------------------------------------------------------------------------------


def test_the_attack_prompt_is_the_conversation_up_to_the_flagged_turn():
    turns = [("a", "ra", False), ("b", "rb", True), ("c", "rc", False)]
    assert attack_messages(turns) == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "ra"},
        {"role": "user", "content": "b"},
    ]
    assert attack_messages([(text, reply, False) for text, reply, _ in turns])[-1] == {
        "role": "user",
        "content": "c",
    }


@pytest.fixture
def rank_target(lead, fake_llm):
    target = labeling_services.project_create(
        creator=lead, name="Safety ranking", overlap=1, gold_rate=0.0
    )
    make_endpoint(target, fake_llm.base_url, name="model-a", model="fake-a")
    make_endpoint(target, fake_llm.base_url, name="model-b", model="fake-b")
    return target


def test_send_to_ranking_closes_the_loop(
    api_for, red_project, rater, rater2, lead, rank_target, fake_llm, make_user,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    winner = services.red_team_lease(project=red_project, rater=rater)
    assert winner is not None
    chat(winner, rater, "innocent start", "now the attack")
    services.turn_flag(assignment_id=winner.assignment_id, rater=rater, index=1, flagged=True)
    services.attempt_submit(
        assignment_id=winner.assignment_id, rater=rater, succeeded=True, category="weapons",
        severity=3,
    )  # fmt: skip
    labelled_attempt(red_project, rater2, succeeded=False, severity=0)  # not sent
    api = api_for(lead)
    url = f"/api/projects/{red_project.pk}/red-team/send-to-ranking/"
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url, {"target_project": rank_target.pk}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["prompts_created"] == 1 and body["generation_id"]
    prompt = Prompt.objects.get(project=rank_target)
    assert prompt.messages[-1] == {"role": "user", "content": "now the attack"}
    assert [message["role"] for message in prompt.messages] == ["user", "assistant", "user"]
    job = GenerationJob.objects.get(pk=body["generation_id"])
    assert job.status == "done", job.error
    models = sorted(prompt.responses.values_list("model_name", flat=True))
    assert models == ["model-a", "model-b", REFUSAL_MODEL]
    # Raters of the rank project rank the refusal among the generated answers.
    ranker = make_user("ranker")
    Membership.objects.create(project=rank_target, user=ranker, role=Role.RATER)
    ranking_api = api_for(ranker)
    task = ranking_api.get(f"/api/projects/{rank_target.pk}/next-task/").json()
    assert task["kind"] == "rank" and len(task["responses"]) == 3
    ids = [response["id"] for response in task["responses"]]
    refusal_id = prompt.responses.get(model_name=REFUSAL_MODEL).pk
    order = [[refusal_id], *[[item] for item in ids if item != refusal_id]]
    submitted = ranking_api.post(
        f"/api/assignments/{task['assignment_id']}/ranking/", {"ranking": order}, format="json"
    )
    assert submitted.status_code == 201, submitted.json()
    assert Ranking.objects.get().groups[0] == [refusal_id]
    # Sending again adds nothing.
    again = api.post(url, {"target_project": rank_target.pk}, format="json").json()
    assert again["prompts_created"] == 0 and again["already_sent"] == 1


def test_send_to_ranking_all_attempts_and_a_written_refusal(
    api_for, red_project, rater, lead, rank_target, django_capture_on_commit_callbacks
):
    labelled_attempt(red_project, rater, succeeded=False, severity=0)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(lead).post(
            f"/api/projects/{red_project.pk}/red-team/send-to-ranking/",
            {"target_project": rank_target.pk, "only_successful": False, "refusal_text": "No."},
            format="json",
        )
    assert response.status_code == 201 and response.json()["prompts_created"] == 1
    refusal = Prompt.objects.get(project=rank_target).responses.get(model_name=REFUSAL_MODEL)
    assert refusal.text == "No."


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target_project": "x"}, "target_project"),
        ({"target_project": 999999}, "target_project"),
        ({"target_project": None, "only_successful": "yes"}, "target_project"),
        ({"target_project": "TARGET", "only_successful": "yes"}, "only_successful"),
        ({"target_project": "TARGET", "endpoints": [999999]}, "endpoints"),
        ({"target_project": "TARGET", "refusal_text": ""}, "refusal_text"),
        ({"target_project": "SELF"}, "target_project"),
        ({"target_project": "TARGET", "extra": 1}, "extra"),
    ],
)
def test_send_to_ranking_refuses_bad_input_and_writes_nothing(
    api_for, red_project, rater, lead, rank_target, body, field
):
    labelled_attempt(red_project, rater)
    replace = {"TARGET": rank_target.pk, "SELF": red_project.pk}
    body = {key: replace.get(value, value) if isinstance(value, str) else value
            for key, value in body.items()}  # fmt: skip
    response = api_for(lead).post(
        f"/api/projects/{red_project.pk}/red-team/send-to-ranking/", body, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == field
    assert not Prompt.objects.filter(project=rank_target).exists()
    assert not GenerationJob.objects.exists()


def test_only_a_lead_sends_to_ranking(api_for, red_project, rater, rank_target):
    response = api_for(rater).post(
        f"/api/projects/{red_project.pk}/red-team/send-to-ranking/",
        {"target_project": rank_target.pk},
        format="json",
    )
    assert response.status_code == 403


def test_the_prompt_page_shows_a_briefs_attempts_and_a_sent_prompts_origin(
    api_for, red_project, rater, lead, rank_target, client, django_capture_on_commit_callbacks
):
    attempt = labelled_attempt(red_project, rater, severity=2)
    api = api_for(lead)
    brief = api.get(f"/api/prompts/{attempt.prompt_id}/").json()["extras"]["red_team"]
    assert brief["sent"] is False
    assert brief["attempts"][0]["labels"][0] == {
        "role": "rater",
        "succeeded": True,
        "category": "weapons",
        "severity": 2,
    }
    with django_capture_on_commit_callbacks(execute=True):
        sent = api.post(
            f"/api/projects/{red_project.pk}/red-team/send-to-ranking/",
            {"target_project": rank_target.pk},
            format="json",
        ).json()
    origin = api.get(f"/api/prompts/{sent['prompt_ids'][0]}/").json()["extras"]["red_team"]
    assert origin["sent"] is True and origin["attempt"] == attempt.pk
    client.force_login(lead)
    page = client.get(f"/rate/{rank_target.pk}/prompts/{sent['prompt_ids'][0]}/")
    assert page.status_code == 200 and b"data-red-team-panel" in page.content
    assert b"red-team attempt #" in page.content
