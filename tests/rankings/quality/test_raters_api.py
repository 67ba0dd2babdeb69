"""The rater-quality API: raters, flags and their actions, low-agreement and extra-rater prompts."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from labeling import services as labeling_services
from labeling.models import Membership, MemberStatus, Prompt
from rankings.models import AgreementRun, Flag, FlagStatus
from rankings.quality import actions, findings
from tests.helpers import sample_records
from tests.rankings.quality_helpers import done_run, make_ranking, prompt_row, score

pytestmark = pytest.mark.django_db

TOO_FAST = {"speed_ratio": 0.05, "median_seconds": 2.0}


@pytest.fixture
def prompts(project) -> list[Prompt]:
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(4, 3)))
    return list(Prompt.objects.filter(project=project).order_by("id"))


@pytest.fixture
def scored(project, rater, rater2):
    """A finished run: rater1 too fast (flagged), rater2 careful."""
    run = done_run(project)
    score(run, rater, agreement=0.61, rankings=30, **TOO_FAST)
    score(run, rater2, agreement=0.84, rankings=35)
    findings.apply_run_findings(run=run)
    return run


@pytest.fixture
def flag(scored) -> Flag:
    return Flag.objects.get()


def raters_url(project) -> str:
    return f"/api/projects/{project.pk}/raters/"


# GET /api/projects/{id}/raters/ -----------------------------------------------------------


def test_lead_gets_a_row_per_rater_with_scores_and_flags(api_for, lead, project, scored, flag):
    response = api_for(lead).get(raters_url(project))

    assert response.status_code == 200
    rows = {row["username"]: row for row in response.json()}
    assert set(rows) == {"rater1", "rater2"}  # the lead ranked nothing: not a rater row
    fast = rows["rater1"]
    assert fast["status"] == "active" and fast["excluded"] is False
    assert fast["rankings"] == 30 and fast["agreement"] == 0.61
    assert fast["speed_ratio"] == 0.05 and fast["median_seconds"] == 2.0
    for name in (
        "agreement_low",
        "agreement_high",
        "gold_accuracy",
        "self_consistency",
        "first_shown_win_rate",
        "position_p_value",
        "straight_lining_rate",
        "tie_rate",
        "longer_win_rate",
    ):
        assert name in fast
    assert fast["flags"] == [
        {"id": flag.pk, "code": "TOO_FAST", "evidence": flag.evidence, "status": "open"}
    ]
    assert rows["rater2"]["flags"] == []


def test_rows_are_lowest_agreement_first_and_sortable(api_for, lead, project, scored):
    client = api_for(lead)
    usernames = [row["username"] for row in client.get(raters_url(project)).json()]
    assert usernames == ["rater1", "rater2"]
    by_speed = client.get(raters_url(project), {"sort": "-speed"}).json()
    assert [row["username"] for row in by_speed] == ["rater2", "rater1"]
    by_flags = client.get(raters_url(project), {"sort": "-flags"}).json()
    assert by_flags[0]["username"] == "rater1"


def test_an_unknown_sort_is_a_400_naming_the_field(api_for, lead, project):
    response = api_for(lead).get(raters_url(project), {"sort": "charm"})
    assert response.status_code == 400 and response.json()["field"] == "sort"


def test_before_any_run_rows_have_counts_but_no_scores(api_for, lead, project, rater, prompts):
    make_ranking(project, prompts[0], rater)
    make_ranking(project, prompts[1], rater)
    (row,) = api_for(lead).get(raters_url(project)).json()
    assert row["username"] == "rater1" and row["rankings"] == 2
    assert row["agreement"] is None and row["flags"] == []


def test_an_excluded_rater_keeps_a_row_with_their_ranking_count(
    api_for, lead, project, rater, rater2, prompts
):
    make_ranking(project, prompts[0], rater)
    Membership.objects.filter(user=rater).update(excluded=True, status=MemberStatus.PAUSED)
    run = done_run(project)
    score(run, rater2)
    rows = {row["username"]: row for row in api_for(lead).get(raters_url(project)).json()}
    assert rows["rater1"]["excluded"] is True and rows["rater1"]["status"] == "paused"
    assert rows["rater1"]["rankings"] == 1 and rows["rater1"]["agreement"] is None


def test_engineer_may_read_raters(api_for, engineer, project, scored):
    assert api_for(engineer).get(raters_url(project)).status_code == 200


def test_rater_gets_403_and_outsider_404(api_for, rater, outsider, project, scored):
    refused = api_for(rater).get(raters_url(project))
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert api_for(outsider).get(raters_url(project)).status_code == 404
    assert api_for(rater).get("/api/projects/98765/raters/").status_code == 404


def test_anonymous_is_refused(project):
    assert APIClient().get(raters_url(project)).status_code in (401, 403)


def test_raters_take_a_fixed_number_of_queries(
    api_for, lead, project, make_user, add_member, django_assert_max_num_queries
):
    run = done_run(project)
    for index in range(12):
        user = add_member(make_user(f"crowd{index}"))
        score(run, user, **(TOO_FAST if index % 3 == 0 else {}))
    findings.apply_run_findings(run=run)
    client = api_for(lead)
    # Token, project, membership, latest run, memberships, scores, flags.
    with django_assert_max_num_queries(8):
        response = client.get(raters_url(project))
    assert len(response.json()) == 12


# Flags ----------------------------------------------------------------------------------------


def test_flags_lists_open_flags_with_their_evidence(api_for, lead, project, flag):
    response = api_for(lead).get(f"/api/projects/{project.pk}/flags/", {"status": "open"})
    (body,) = response.json()
    assert body["id"] == flag.pk and body["code"] == "TOO_FAST" and body["rater"] == "rater1"
    assert body["label"] == "Much faster than the project" and body["status"] == "open"
    assert body["evidence"]["speed_ratio"] == 0.05 and body["run_id"] == flag.run_id


def test_flags_filter_by_status(api_for, lead, project, flag):
    client = api_for(lead)
    actions.flag_dismiss(flag=flag, by=lead, note="fine")
    assert client.get(f"/api/projects/{project.pk}/flags/").json() == []  # open by default
    dismissed = client.get(f"/api/projects/{project.pk}/flags/", {"status": "dismissed"}).json()
    assert [item["note"] for item in dismissed] == ["fine"]
    assert dismissed[0]["resolved_by"] == "lead"
    assert len(client.get(f"/api/projects/{project.pk}/flags/", {"status": "all"}).json()) == 1
    bad = client.get(f"/api/projects/{project.pk}/flags/", {"status": "closed"})
    assert bad.status_code == 400 and bad.json()["field"] == "status"


def test_flags_are_for_leads_and_engineers(api_for, rater, engineer, outsider, project, flag):
    url = f"/api/projects/{project.pk}/flags/"
    assert api_for(engineer).get(url).status_code == 200
    assert api_for(rater).get(url).status_code == 403
    assert api_for(outsider).get(url).status_code == 404
    assert api_for(engineer).get(f"/api/flags/{flag.pk}/").status_code == 200
    assert api_for(rater).get(f"/api/flags/{flag.pk}/").status_code == 403


def test_dismiss_with_a_note(api_for, lead, flag):
    response = api_for(lead).post(
        f"/api/flags/{flag.pk}/dismiss/", {"note": "reads fast, checked"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "dismissed" and body["note"] == "reads fast, checked"
    assert body["resolved_by"] == "lead"
    flag.refresh_from_db()
    assert flag.status == FlagStatus.DISMISSED


def test_dismiss_without_a_note_is_fine(api_for, lead, flag):
    assert api_for(lead).post(f"/api/flags/{flag.pk}/dismiss/").status_code == 200


def test_a_too_long_note_is_a_400(api_for, lead, flag):
    response = api_for(lead).post(
        f"/api/flags/{flag.pk}/dismiss/", {"note": "x" * 501}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == "note"


def test_pause_rater_from_a_flag_stops_their_tasks(api_for, lead, rater, project, flag, prompts):
    response = api_for(lead).post(
        f"/api/flags/{flag.pk}/pause-rater/", {"note": "too quick"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "rater_paused"
    assert Membership.objects.get(user=rater, project=project).status == MemberStatus.PAUSED
    next_task = api_for(rater).get(f"/api/projects/{project.pk}/next-task/")
    assert next_task.status_code == 403 and next_task.json()["code"] == "paused"


def test_dismissing_a_flag_whose_rater_was_paused_is_a_409(api_for, lead, flag):
    client = api_for(lead)
    client.post(f"/api/flags/{flag.pk}/pause-rater/")
    response = client.post(f"/api/flags/{flag.pk}/dismiss/")
    assert response.status_code == 409
    assert response.json()["code"] == "rater_paused" and "resume" in response.json()["detail"]


def test_exclude_rater_from_a_flag(api_for, lead, rater, project, flag):
    response = api_for(lead).post(f"/api/flags/{flag.pk}/exclude-rater/")
    assert response.status_code == 200 and response.json()["status"] == "rater_paused"
    membership = Membership.objects.get(user=rater, project=project)
    assert membership.excluded and membership.status == MemberStatus.PAUSED
    assert AgreementRun.objects.filter(trigger=actions.EXCLUSION_TRIGGER).exists()


def test_only_leads_act_on_flags(api_for, engineer, rater, outsider, flag):
    for action in ("dismiss", "pause-rater", "exclude-rater"):
        url = f"/api/flags/{flag.pk}/{action}/"
        assert api_for(engineer).post(url).status_code == 403
        assert api_for(rater).post(url).status_code == 403
        assert api_for(outsider).post(url).status_code == 404
    flag.refresh_from_db()
    assert flag.status == FlagStatus.OPEN


def test_an_unknown_flag_is_a_404(api_for, lead):
    response = api_for(lead).post("/api/flags/424242/dismiss/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_exclude_and_include_a_rater(api_for, lead, rater, project, scored):
    client = api_for(lead)
    url = f"/api/projects/{project.pk}/raters/{rater.username}/exclude/"
    response = client.post(url)
    assert response.status_code == 200 and response.json()["excluded"] is True
    assert response.json()["username"] == "rater1"
    back = client.post(url, {"excluded": False}, format="json")
    assert back.json()["excluded"] is False
    assert AgreementRun.objects.filter(trigger=actions.EXCLUSION_TRIGGER).count() >= 1


def test_excluding_a_non_member_is_a_404(api_for, lead, outsider, project):
    response = api_for(lead).post(f"/api/projects/{project.pk}/raters/{outsider.username}/exclude/")
    assert response.status_code == 404 and response.json()["field"] == "username"


def test_engineers_cannot_exclude(api_for, engineer, rater, project):
    url = f"/api/projects/{project.pk}/raters/{rater.username}/exclude/"
    assert api_for(engineer).post(url).status_code == 403


# Low-agreement prompts and extra raters -------------------------------------------------------


@pytest.fixture
def reviewed(project, rater, rater2, prompts):
    low, high, middle, _ = prompts
    for prompt in (low, high, middle):
        ids = list(prompt.responses.order_by("position").values_list("id", flat=True))
        make_ranking(project, prompt, rater, groups=[[ids[0]], [ids[1], ids[2]]], seconds=12)
        make_ranking(
            project,
            prompt,
            rater2,
            groups=[[ids[2]], [ids[1]], [ids[0]]],
            rationale="C is right",
        )
    Prompt.objects.filter(pk=low.pk).update(extra_raters=1, extra_reason="agreement 0.10 below")
    run = done_run(project)
    prompt_row(run, low, agreement=0.1, n_rankings=2)
    prompt_row(run, high, agreement=0.9, n_rankings=2)
    prompt_row(run, middle, agreement=0.5, n_rankings=2)
    return run


def test_low_agreement_prompts_come_lowest_first_with_rankings_side_by_side(
    api_for, lead, project, reviewed, prompts
):
    response = api_for(lead).get(f"/api/projects/{project.pk}/prompts/low-agreement/")

    assert response.status_code == 200
    body = response.json()
    assert body["run_id"] == reviewed.pk
    assert [item["agreement"] for item in body["prompts"]] == [0.1, 0.5, 0.9]
    first = body["prompts"][0]
    assert first["prompt_id"] == prompts[0].pk and first["external_id"] == "p0"
    assert first["extra_raters"] == 1 and first["extra_reason"] == "agreement 0.10 below"
    assert [response["label"] for response in first["responses"]] == ["A", "B", "C"]
    assert first["responses"][0]["model"] == "model-0"
    by_rater = {ranking["rater"]: ranking for ranking in first["rankings"]}
    assert by_rater["rater1"]["labels"] == [["A"], ["B", "C"]]
    assert by_rater["rater2"]["labels"] == [["C"], ["B"], ["A"]]
    assert by_rater["rater2"]["rationale"] == "C is right"
    assert by_rater["rater1"]["seconds"] == 12
    assert first["consensus_labels"] == [["A"], ["B"], ["C"]]


def test_low_agreement_limit_is_checked(api_for, lead, project, reviewed):
    client = api_for(lead)
    url = f"/api/projects/{project.pk}/prompts/low-agreement/"
    assert len(client.get(url, {"limit": 1}).json()["prompts"]) == 1
    for bad in ("0", "many", "101"):
        response = client.get(url, {"limit": bad})
        assert response.status_code == 400 and response.json()["field"] == "limit"


def test_low_agreement_before_any_run_is_empty(api_for, lead, project):
    body = api_for(lead).get(f"/api/projects/{project.pk}/prompts/low-agreement/").json()
    assert body == {"run_id": None, "prompts": []}


def test_low_agreement_prompts_are_for_leads_and_engineers(
    api_for, engineer, rater, project, reviewed
):
    url = f"/api/projects/{project.pk}/prompts/low-agreement/"
    assert api_for(engineer).get(url).status_code == 200
    assert api_for(rater).get(url).status_code == 403


def test_low_agreement_queries_do_not_grow_with_prompts(
    api_for, lead, project, reviewed, django_assert_max_num_queries
):
    client = api_for(lead)
    # Token, project, membership, latest run, rows with prompts, responses, rankings with
    # raters, excluded raters.
    with django_assert_max_num_queries(8):
        client.get(f"/api/projects/{project.pk}/prompts/low-agreement/")


def test_extra_raters_lists_reopened_prompts_and_why(api_for, lead, project, reviewed, prompts):
    body = api_for(lead).get(f"/api/projects/{project.pk}/prompts/extra-raters/").json()
    assert body["total"] == 1
    assert body["prompts"] == [
        {
            "prompt_id": prompts[0].pk,
            "external_id": "p0",
            "extra_raters": 1,
            "extra_reason": "agreement 0.10 below",
            "is_complete": False,
        }
    ]


def test_the_schema_documents_the_quality_endpoints(api_for, lead):
    schema = api_for(lead).get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/projects/{project_id}/raters/",
        "/api/projects/{project_id}/flags/",
        "/api/flags/{flag_id}/dismiss/",
        "/api/flags/{flag_id}/pause-rater/",
        "/api/flags/{flag_id}/exclude-rater/",
        "/api/projects/{project_id}/prompts/low-agreement/",
    ):
        assert path in paths
