"""GET and PATCH /api/prompts/{id}/, and POST /api/projects/{id}/prompts/bulk/."""

from __future__ import annotations

import pytest

from labeling.models import AuditAction, AuditEvent, Prompt, Response
from rankings.models import PromptAgreement
from tests.helpers import response_ids
from tests.rankings.quality_helpers import make_ranking

pytestmark = pytest.mark.django_db


def detail_url(prompt) -> str:
    return f"/api/prompts/{prompt.pk}/"


def bulk_url(browse) -> str:
    return f"/api/projects/{browse.project.pk}/prompts/bulk/"


@pytest.fixture
def api(api_for, lead):
    return api_for(lead)


def test_detail_has_conversation_responses_rankings_and_consensus(api, browse, rater, rater2):
    prompt = browse.prompts[0]
    ids = response_ids(prompt)
    body = api.get(detail_url(prompt)).json()
    assert body["messages"] == [
        {"role": "user", "content": "How do I bake sourdough bread at home?"}
    ]
    assert [r["id"] for r in body["responses"]] == ids
    assert [r["label"] for r in body["responses"]] == ["A", "B", "C"]
    assert [r["model"] for r in body["responses"]] == ["model-a", "model-b", "model-z"]
    assert body["responses"][1]["metadata"] == {"t": 1}
    assert body["state"] == "complete" and body["agreement"] == 0.9 and body["run_id"]
    assert body["consensus"] == [[pk] for pk in ids]
    assert [r["consensus_place"] for r in body["responses"]] == [1, 2, 3]
    by_rater = {r["rater"]: r for r in body["rankings"]}
    assert by_rater["rater1"]["labels"] == [["A"], ["B"], ["C"]]
    assert by_rater["rater2"]["labels"] == [["B"], ["A", "C"]]
    assert by_rater["rater2"]["flagged"] and not by_rater["rater1"]["flagged"]
    assert by_rater["rater1"]["shown_labels"] == ["A", "B", "C"]
    assert by_rater["rater1"]["seconds"] == 30.0
    # Per pair: rater1 says A>B, A>C, B>C; rater2 says B>A, A=C, B>C.
    pairs = {(p["first_label"], p["second_label"]): p for p in body["pairs"]}
    assert (pairs["A", "B"]["first_better"], pairs["A", "B"]["second_better"]) == (1, 1)
    assert pairs["A", "B"]["agreement"] == 0.0
    assert (pairs["A", "C"]["first_better"], pairs["A", "C"]["ties"]) == (1, 1)
    assert pairs["B", "C"]["first_better"] == 2 and pairs["B", "C"]["agreement"] == 1.0
    assert body["editable"] is False and "rankings" in body["edit_refusal"]


def test_detail_marks_repeats_gold_and_the_overlap_history(api, browse, rater, lead):
    gold = browse.prompts[3]
    ids = response_ids(gold)
    make_ranking(browse.project, gold, rater, groups=[[ids[1]], [ids[0]], [ids[2]]])
    make_ranking(browse.project, browse.prompts[0], rater, is_repeat=True)
    body = api.get(detail_url(gold)).json()
    assert body["is_gold"] and body["gold_ranking"] == [[pk] for pk in ids]
    (ranking,) = body["rankings"]
    assert ranking["is_gold"] and ranking["gold_match"] == pytest.approx(2 / 3)
    assert [r["gold_place"] for r in body["responses"]] == [1, 2, 3]
    assert [h["action"] for h in body["history"]] == [AuditAction.GOLD_SET]
    repeats = api.get(detail_url(browse.prompts[0])).json()["rankings"]
    assert [r["is_repeat"] for r in repeats] == [False, False, True]
    reopened = api.get(detail_url(browse.prompts[5])).json()
    assert (reopened["extra_raters"], reopened["extra_reason"], reopened["wanted"]) == (1, "low", 3)
    assert reopened["history"][0]["action"] == AuditAction.PROMPTS_REOPEN
    assert "reason: low" in reopened["history"][0]["lines"]
    skipped = api.get(detail_url(browse.prompts[4])).json()
    assert sorted(s["rater"] for s in skipped["skips"]) == ["rater1", "rater2"]


def test_detail_permissions(api_for, browse, lead, engineer, rater, outsider, project, make_user):
    prompt = browse.prompts[0]
    assert api_for(engineer).get(detail_url(prompt)).status_code == 200
    assert api_for(rater).get(detail_url(prompt)).status_code == 403
    assert api_for(outsider).get(detail_url(prompt)).status_code == 404
    assert api_for(lead).get("/api/prompts/999999/").json()["code"] == "not_found"


def test_detail_reads_in_a_fixed_number_of_queries(api, browse, django_assert_max_num_queries):
    with django_assert_max_num_queries(16):
        api.get(detail_url(browse.prompts[0]))


# PATCH: responses change only while nobody ranked the prompt ----------------------------


def test_patch_replaces_responses_keeping_ids_by_position(api, browse):
    prompt = browse.prompts[2]  # untouched
    before = response_ids(prompt)
    body = {
        "responses": [
            {"text": "New first", "model": "m1", "metadata": {"k": 1}},
            {"text": "New second", "model": "m2"},
            {"text": "Added third", "model": "m3"},
            {"text": "Added fourth", "model": "m4"},
        ]
    }
    response = api.patch(detail_url(prompt), body, format="json")
    assert response.status_code == 200, response.json()
    after = response_ids(prompt)
    assert after[:3] == before and len(after) == 4
    rows = list(Response.objects.filter(prompt=prompt).order_by("position"))
    assert (rows[0].text, rows[0].model_name) == ("New first", "m1")
    assert rows[0].metadata == {"k": 1}
    assert [r["model"] for r in response.json()["responses"]] == ["m1", "m2", "m3", "m4"]
    shorter = api.patch(detail_url(prompt), {"responses": ["x", "y"]}, format="json")
    assert shorter.status_code == 200 and response_ids(prompt) == before[:2]
    assert AuditEvent.objects.filter(action=AuditAction.RESPONSES_EDIT).count() == 2


def test_patch_changes_the_conversation(api, browse):
    prompt = browse.prompts[2]
    response = api.patch(detail_url(prompt), {"prompt": "A new question"}, format="json")
    assert response.status_code == 200
    prompt.refresh_from_db()
    assert prompt.messages == [{"role": "user", "content": "A new question"}]


@pytest.mark.parametrize(("index", "why"), [(0, "rankings"), (7, "working"), (3, "gold")])
def test_patch_is_refused_once_ranked_leased_or_gold(api, browse, index, why):
    prompt = browse.prompts[index]
    before = list(Response.objects.filter(prompt=prompt).values_list("text", flat=True))
    response = api.patch(detail_url(prompt), {"responses": ["a", "b"]}, format="json")
    assert response.status_code == 409 and why in response.json()["detail"]
    assert list(Response.objects.filter(prompt=prompt).values_list("text", flat=True)) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"responses": [f"r{n}" for n in range(10)]}, "responses"),  # at most 9
        ({"responses": [{"text": ""}, {"text": "b"}]}, "responses[0].text"),
        ({"responses": [{"text": "a", "colour": 1}, "b"]}, "responses[0].colour"),
        ({"color": "red"}, "color"),
        ({}, "responses"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ],
)
def test_patch_bad_bodies_are_400_naming_the_field(api, browse, body, field):
    response = api.patch(detail_url(browse.prompts[2]), body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field, response.json()
    assert not response.json()["detail"].startswith("line")


def test_patch_permissions(api_for, browse, engineer, rater, outsider):
    prompt = browse.prompts[2]
    assert (
        api_for(rater).patch(detail_url(prompt), {"prompt": "x"}, format="json").status_code == 403
    )
    assert (
        api_for(outsider).patch(detail_url(prompt), {"prompt": "x"}, format="json").status_code
        == 404
    )
    ok = api_for(engineer).patch(detail_url(prompt), {"prompt": "x"}, format="json")
    assert ok.status_code == 200


# Bulk actions --------------------------------------------------------------------------


def test_bulk_archive_and_restore(api, browse):
    ids = browse.ids(0, 2, 6)
    body = api.post(
        bulk_url(browse), {"action": "archive", "prompt_ids": ids}, format="json"
    ).json()
    assert body["changed"] == browse.ids(0, 2)
    assert body["unchanged"] == [{"id": browse.prompts[6].pk, "reason": "already archived"}]
    assert set(
        Prompt.objects.filter(archived_at__isnull=False).values_list("pk", flat=True)
    ) == set(ids)
    restored = api.post(bulk_url(browse), {"action": "unarchive", "prompt_ids": ids}, format="json")
    assert restored.json()["changed"] == ids
    assert not Prompt.objects.filter(archived_at__isnull=False).exists()


def test_bulk_reopen_asks_for_one_more_rater(api, browse):
    ids = browse.ids(0, 3)
    body = api.post(
        bulk_url(browse),
        {"action": "reopen", "prompt_ids": ids, "reason": "check again"},
        format="json",
    ).json()
    assert body["changed"] == browse.ids(0)
    assert body["unchanged"][0]["id"] == browse.prompts[3].pk
    prompt = Prompt.objects.get(pk=browse.prompts[0].pk)
    assert (prompt.extra_raters, prompt.is_complete, prompt.extra_reason) == (
        1,
        False,
        "check again",
    )


def test_bulk_gold_takes_the_consensus_and_ungold_clears_it(api, browse):
    row = PromptAgreement.objects.get(run=browse.run, prompt=browse.prompts[0])
    ids = browse.ids(0, 2, 3)
    body = api.post(bulk_url(browse), {"action": "gold", "prompt_ids": ids}, format="json").json()
    assert body["changed"] == browse.ids(0)
    reasons = {item["id"]: item["reason"] for item in body["unchanged"]}
    assert reasons == {
        browse.prompts[2].pk: "no consensus yet",
        browse.prompts[3].pk: "already gold",
    }
    prompt = Prompt.objects.get(pk=browse.prompts[0].pk)
    assert prompt.is_gold and prompt.gold_ranking == row.consensus
    assert AuditEvent.objects.filter(
        action=AuditAction.GOLD_SET, target__startswith=f"prompt {prompt.pk}"
    ).exists()
    cleared = api.post(
        bulk_url(browse), {"action": "ungold", "prompt_ids": ids}, format="json"
    ).json()
    assert cleared["changed"] == browse.ids(0, 3)
    assert not Prompt.objects.filter(project=browse.project, is_gold=True).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "delete", "prompt_ids": [1]}, "action"),
        ({"action": "archive", "prompt_ids": []}, "prompt_ids"),
        ({"action": "archive", "prompt_ids": ["x"]}, "prompt_ids.0"),
        ({"action": "archive", "prompt_ids": [1], "extra": 1}, "extra"),
        ({"prompt_ids": [1]}, "action"),
    ],
)
def test_bulk_bad_bodies_are_400_naming_the_field(api, browse, body, field):
    response = api.post(bulk_url(browse), body, format="json")
    assert response.status_code == 400 and response.json()["field"] == field, response.json()


def test_bulk_refuses_prompts_of_another_project(api, browse, lead):
    from labeling import services

    other = services.project_create(creator=lead, name="Other")
    from tests.helpers import import_prompts, sample_records

    (foreign,) = import_prompts(other, sample_records(1))
    response = api.post(
        bulk_url(browse), {"action": "archive", "prompt_ids": [foreign.pk]}, format="json"
    )
    assert response.status_code == 404 and response.json()["field"] == "prompt_ids"
    foreign.refresh_from_db()
    assert foreign.archived_at is None


def test_bulk_is_for_leads(api_for, browse, engineer, rater, outsider):
    body = {"action": "archive", "prompt_ids": browse.ids(0)}
    assert api_for(engineer).post(bulk_url(browse), body, format="json").status_code == 403
    assert api_for(rater).post(bulk_url(browse), body, format="json").status_code == 403
    assert api_for(outsider).post(bulk_url(browse), body, format="json").status_code == 404
    assert Prompt.objects.get(pk=browse.prompts[0].pk).archived_at is None
