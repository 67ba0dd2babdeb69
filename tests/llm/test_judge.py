"""The AI judge: structured-output validation, the two shown orders, judge runs against a
real OpenAI-compatible server, the template and its preview."""

from __future__ import annotations

import json
import re

import pytest

from core.jobs import JobStatus
from labeling import services as labeling_services
from labeling.models import Prompt
from llm import judge
from llm.models import CallStatus, JudgeVerdict
from tests.llm.helpers import make_endpoint

# Pure ------------------------------------------------------------------------------------------


def test_a_valid_answer_is_parsed_into_groups_of_positions():
    verdict = judge.parse_verdict(
        '{"ranking": [["B"], ["a", "C"]], "rationale": " B is right. "}',
        n_responses=3,
        allow_ties=True,
    )
    assert verdict.groups == [[1], [0, 2]] and verdict.rationale == "B is right."
    fenced = '```json\n{"ranking": [["A"], ["B"]], "rationale": ""}\n```'
    assert judge.parse_verdict(fenced, n_responses=2, allow_ties=False).groups == [[0], [1]]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "not JSON"),
        ('{"rationale": "x"}', 'no "ranking"'),
        ('{"ranking": [["A"], ["D"]], "rationale": ""}', "unknown response 'D'"),
        ('{"ranking": [["A"], ["A", "B", "C"]], "rationale": ""}', "ranked twice"),
        ('{"ranking": [["A"], ["B"]], "rationale": ""}', "C are not ranked"),
        ('{"ranking": [["A", "B"], ["C"]], "rationale": ""}', "ties are not allowed"),
        ('{"ranking": [[]], "rationale": ""}', "non-empty"),
        ('{"ranking": [["A"], ["B"], ["C"]], "rationale": 3}', "rationale"),
    ],
)
def test_invalid_answers_are_refused_with_the_reason(content, problem):
    with pytest.raises(judge.InvalidVerdict, match=re.escape(problem)):
        judge.parse_verdict(content, n_responses=3, allow_ties=False)


def test_consistent_orders_keep_the_verdict():
    ids = [10, 11, 12]
    # Forward shows 10, 11, 12 as A, B, C; reversed shows 12, 11, 10 as A, B, C.
    combined = judge.combine_orders(ids, forward=[[1], [0, 2]], reverse=[[1], [0, 2]])
    assert combined.consistent and combined.groups == [[11], [10, 12]]
    assert combined.flipped == 0 and combined.pairs == 3


def test_a_judge_that_always_prefers_the_first_shown_ends_in_one_tie():
    ids = [1, 2, 3, 4]
    shown_order = [[0], [1], [2], [3]]  # A > B > C > D whatever is shown
    combined = judge.combine_orders(ids, forward=shown_order, reverse=shown_order)
    assert not combined.consistent
    assert combined.flipped == combined.pairs == 6
    assert combined.first_shown_wins == 6 and combined.second_shown_wins == 0
    assert combined.groups == [[1, 2, 3, 4]]


def test_only_the_flipped_pairs_become_ties():
    ids = [1, 2, 3]
    # Forward: 1 > 2 > 3. Reversed (3, 2, 1 shown as A, B, C): 1 > 3 > 2, i.e. C > A > B.
    combined = judge.combine_orders(ids, forward=[[0], [1], [2]], reverse=[[2], [0], [1]])
    # Pair (2, 3) flipped; 1 beats both in both orders.
    assert combined.flipped == 1 and combined.groups == [[1], [2, 3]]
    # In the forward order 2 was shown before 3 and won; reversed, 3 was shown first and won.
    assert combined.first_shown_wins == 1


def test_placeholders_are_filled_literally():
    messages = judge.render_messages(
        system_template="Rules: {guidelines}{rubric} {ties}",
        user_template="{conversation}\n{responses}",
        context=judge.JudgeContext(
            "Use {braces} {responses}", [{"key": "h", "label": "Helpful"}], False
        ),
        conversation=[{"role": "user", "content": "Say {x}"}],
        shown=["one {guidelines}", "two"],
    )
    assert messages[0]["content"].startswith("Rules: Use {braces} {responses}Criteria:\n- Helpful")
    assert "Do not tie" in messages[0]["content"]
    assert "[user]\nSay {x}" in messages[1]["content"]
    assert "=== Response A ===\none {guidelines}" in messages[1]["content"]
    assert "=== Response B ===\ntwo" in messages[1]["content"]


# Runs against the server -----------------------------------------------------------------------

QUALITY = re.compile(r"=== Response ([A-Z]) ===\n.*?quality (\d)", re.S)


def quality_judge(body):
    """Ranks by the quality written in each response: what a good judge would do."""
    shown = QUALITY.findall(body["messages"][-1]["content"])
    ordered = sorted(shown, key=lambda item: -int(item[1]))
    return json.dumps({"ranking": [[letter] for letter, _ in ordered], "rationale": "by quality"})


@pytest.fixture
def judged_project(project, lead):
    labeling_services.project_update(project=project, guidelines="Prefer the higher quality.")
    records = [
        {"external_id": f"j{index}", "prompt": f"Task {index}",
         "responses": [f"answer quality {q}" for q in qualities]}
        for index, qualities in enumerate([(1, 3, 2), (2, 1), (3, 1, 2, 4)])
    ]  # fmt: skip
    labeling_services.prompts_import(project=project, raw=json.dumps(records))
    return project


@pytest.fixture
def run_judge(api_for, lead, django_capture_on_commit_callbacks):
    def run(project, endpoint, prompts="unjudged", expect=202):
        with django_capture_on_commit_callbacks(execute=True):
            response = api_for(lead).post(
                f"/api/projects/{project.pk}/judge-runs/",
                {"endpoint": endpoint.pk, "prompts": prompts},
                format="json",
            )
        assert response.status_code == expect, response.content
        if expect != 202:
            return response.json()
        return api_for(lead).get(f"/api/judge-runs/{response.json()['id']}/").json()

    return run


@pytest.mark.django_db
def test_a_consistent_judge_ranks_every_prompt(judged_project, run_judge, fake_llm):
    fake_llm.state.judge = quality_judge
    endpoint = make_endpoint(judged_project, fake_llm.base_url)
    report = run_judge(judged_project, endpoint)
    assert report["status"] == JobStatus.DONE, report
    assert report["progress"] == {"planned": 3, "done": 3, "succeeded": 3, "failed": 0}
    assert report["position"]["pair_consistency"] == 1.0
    assert report["position"]["position_bias_rate"] == 0.0
    assert fake_llm.state.requests == 6  # two shown orders per prompt
    assert all(body["response_format"]["type"] == "json_schema" for body in fake_llm.state.bodies)
    for prompt in Prompt.objects.filter(project=judged_project):
        verdict = JudgeVerdict.objects.get(prompt=prompt)
        by_quality = sorted(prompt.responses.all(), key=lambda r: -int(r.text.rsplit(" ", 1)[1]))
        assert verdict.groups == [[r.pk] for r in by_quality]
        assert verdict.consistent and verdict.rationale == "by quality"
    again = run_judge(judged_project, endpoint)  # "unjudged": nothing left
    assert again["progress"]["planned"] == 0


@pytest.mark.django_db
def test_a_position_biased_judge_is_reported_and_its_flips_become_ties(
    judged_project, run_judge, fake_llm
):
    def first_shown_wins(body):
        letters = re.findall(r"=== Response ([A-Z]) ===", body["messages"][-1]["content"])
        return json.dumps({"ranking": [[letter] for letter in letters], "rationale": "first"})

    fake_llm.state.judge = first_shown_wins
    endpoint = make_endpoint(judged_project, fake_llm.base_url)
    report = run_judge(judged_project, endpoint)
    position = report["position"]
    assert position["pairs"] == 3 + 1 + 6
    assert position["flipped_pairs"] == 10 and position["first_shown_wins"] == 10
    assert position["position_bias_rate"] == 1.0 and position["consistent_prompts"] == 0
    for verdict in JudgeVerdict.objects.all():
        assert len(verdict.groups) == 1  # every pair flipped: one tie group
        assert verdict.consistent is False


@pytest.mark.django_db
def test_a_malformed_answer_is_retried_once_then_recorded_as_failed(
    judged_project, run_judge, fake_llm
):
    seen: dict[str, int] = {}

    def flaky(body):
        content = body["messages"][-1]["content"]
        seen[content] = seen.get(content, 0) + 1
        if "Task 1" in content:
            return "I think B is better"  # never valid
        if seen[content] == 1:
            return '{"ranking": [["A"]], "rationale": "incomplete"}'  # invalid once
        return quality_judge(body)

    fake_llm.state.judge = flaky
    endpoint = make_endpoint(judged_project, fake_llm.base_url)
    report = run_judge(judged_project, endpoint)
    assert report["status"] == JobStatus.DONE
    assert report["progress"] == {"planned": 3, "done": 3, "succeeded": 2, "failed": 1}
    (failure,) = report["failures"]
    assert "invalid answer twice" in failure["reason"] and "not JSON" in failure["reason"]
    failed = JudgeVerdict.objects.get(prompt__external_id="j1")
    assert failed.status == CallStatus.FAILED and failed.groups == [] and failed.forward == []
    # Prompts 0 and 2: each order answered invalid once, then valid: 4 requests each.
    assert fake_llm.state.requests == 4 + 2 + 4


@pytest.mark.django_db
def test_the_preview_shows_the_exact_messages_sent(
    api_for, lead, judged_project, run_judge, fake_llm
):
    fake_llm.state.judge = quality_judge
    api = api_for(lead)
    put = api.put(
        f"/api/projects/{judged_project.pk}/judge-template/",
        {
            "system_template": "Judge by: {guidelines}",
            "user_template": "{conversation}\n\n{responses}\nAnswer in JSON.",
        },
        format="json",
    )
    assert put.status_code == 200
    prompt = Prompt.objects.get(external_id="j0")
    preview = api.get(
        f"/api/projects/{judged_project.pk}/judge-template/preview/?prompt={prompt.pk}"
    ).json()
    assert preview["orders"]["original"][0]["content"] == "Judge by: Prefer the higher quality."
    endpoint = make_endpoint(judged_project, fake_llm.base_url)
    run_judge(judged_project, endpoint, prompts=[prompt.pk])
    sent = [body["messages"] for body in fake_llm.state.bodies]
    assert sent == [preview["orders"]["original"], preview["orders"]["reversed"]]
    assert fake_llm.state.bodies[0]["response_format"] == preview["response_format"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"system_template": "x", "user_template": "no responses here"}, "user_template"),
        ({"system_template": "", "user_template": "{responses}"}, "system_template"),
    ],
)
def test_a_template_without_the_responses_is_refused(api_for, lead, project, body, field):
    response = api_for(lead).put(f"/api/projects/{project.pk}/judge-template/", body, format="json")
    assert response.status_code == 400 and response.json()["field"] == field


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"endpoint": 999999}, "endpoint"),
        ({"prompts": "some"}, "prompts"),
        ({"prompts": [999999]}, "prompts"),
    ],
)
def test_bad_judge_runs_are_400s(api_for, lead, project, fake_llm, body, field):
    endpoint = make_endpoint(project, fake_llm.base_url)
    full = {"endpoint": endpoint.pk, "prompts": "all", **body}
    response = api_for(lead).post(f"/api/projects/{project.pk}/judge-runs/", full, format="json")
    assert response.status_code in (400, 404) and response.json()["field"] == field


@pytest.mark.django_db
def test_raters_cannot_run_or_read_the_judge(api_for, rater, judged_project, run_judge, fake_llm):
    fake_llm.state.judge = quality_judge
    endpoint = make_endpoint(judged_project, fake_llm.base_url)
    report = run_judge(judged_project, endpoint)
    assert api_for(rater).get(f"/api/judge-runs/{report['id']}/").status_code == 403
    url = f"/api/projects/{judged_project.pk}/judge-calibration/?endpoint={endpoint.pk}"
    assert api_for(rater).get(url).status_code == 403
