"""AI verdicts stay out of exports and agreement; RLAIF pairs on request with a source
column; routing reopens the prompts the judge disagrees on, with the reason."""

from __future__ import annotations

import json

import pytest

from labeling import services as labeling_services
from labeling.models import Prompt
from llm.models import JudgeVerdict
from rankings.models import Ranking

pytestmark = pytest.mark.django_db


def test_rlaif_pairs_come_through_the_exports_with_a_source(
    api_for, engineer, project, ranked_and_judged
):
    """RLAIF pairs are an export parameter (`source`), not an llm endpoint of their own."""
    endpoint = ranked_and_judged
    url = f"/api/projects/{project.pk}/exports/stream/?format=trl-conversational"

    def rows(query):
        response = api_for(engineer).get(url + query)
        assert response.status_code == 200, response.content
        return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]

    only_ai = rows(f"&source=ai&judge_endpoint={endpoint.pk}")
    both = rows(f"&source=both&judge_endpoint={endpoint.pk}")
    expected_ai = sum(
        len(ranking_pairs(groups))
        for groups in JudgeVerdict.objects.values_list("groups", flat=True)
    )
    expected_human = sum(len(ranking_pairs(r.groups)) for r in Ranking.objects.all())
    assert {row["source"] for row in only_ai} == {"ai"} and len(only_ai) == expected_ai
    assert [row["source"] for row in both].count("human") == expected_human
    assert [row for row in both if row["source"] == "ai"] == only_ai
    row = only_ai[0]
    assert row["chosen"] and row["rejected"] and row["prompt"][0]["role"] == "user"
    assert api_for(engineer).get(f"/api/projects/{project.pk}/rlaif-pairs/").status_code == 404


def ranking_pairs(groups):
    """(chosen, rejected) for every two responses at different levels: independent of
    `exports.pairs`, for counting."""
    return [
        (chosen, rejected)
        for better, group in enumerate(groups)
        for chosen in group
        for worse in groups[better + 1 :]
        for rejected in worse
    ]


def test_ai_verdicts_stay_out_of_exports(api_for, engineer, project, ranked_and_judged):
    stream = api_for(engineer).get(f"/api/projects/{project.pk}/exports/stream/?format=trl")
    assert stream.status_code == 200, stream.content
    lines = b"".join(stream.streaming_content).splitlines()
    human_pairs = sum(len(ranking_pairs(r.groups)) for r in Ranking.objects.all())
    assert len(lines) == human_pairs


def test_routing_reopens_disagreements_with_the_reason(api_for, lead, project, ranked_and_judged):
    endpoint = ranked_and_judged
    response = api_for(lead).post(
        f"/api/projects/{project.pk}/judge-routing/", {"endpoint": endpoint.pk}, format="json"
    )
    assert response.status_code == 200, response.content
    reopened = {
        Prompt.objects.get(pk=row["prompt_id"]).external_id: row["reason"]
        for row in response.json()["prompts"]
    }
    assert set(reopened) == {"p1", "p2"}
    assert "disagrees with the first 2 human ranking(s)" in reopened["p1"]
    assert "contradicts itself" in reopened["p2"]
    p1 = Prompt.objects.get(external_id="p1")
    assert p1.extra_raters == 1 and not p1.is_complete and p1.extra_reason == reopened["p1"]
    assert Prompt.objects.get(external_id="p0").extra_raters == 0


def test_routing_needs_adaptive_overlap(api_for, lead, project, ranked_and_judged):
    labeling_services.project_update(project=project, max_overlap=None)
    response = api_for(lead).post(
        f"/api/projects/{project.pk}/judge-routing/",
        {"endpoint": ranked_and_judged.pk},
        format="json",
    )
    assert response.status_code == 400 and response.json()["field"] == "max_overlap"
