"""GET /api/projects/{id}/prompts/: every filter, ordering, the keyset pages, validation
and who may read it."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.models import AssignmentStatus, Prompt
from rankings.prompts.query import cursor_encode
from tests.factories import AssignmentFactory
from tests.helpers import import_prompts, sample_records
from tests.rankings.quality_helpers import done_run, prompt_row

pytestmark = pytest.mark.django_db


def url(browse, **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"/api/projects/{browse.project.pk}/prompts/" + (f"?{query}" if query else "")


def listed(api, browse, **params) -> list[int]:
    response = api.get(url(browse, **params))
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def api(api_for, lead):
    return api_for(lead)


@pytest.mark.parametrize(
    ("state", "indexes"),
    [
        ("", (7, 5, 4, 3, 2, 1, 0)),
        ("untouched", (4, 2)),  # skips hold no slot: a prompt only skipped is untouched
        ("in_progress", (7, 5, 1)),
        ("complete", (0,)),
        ("gold", (3,)),
        ("reopened", (5,)),
        ("skipped", (4, 1)),
        ("archived", (6,)),
    ],
)
def test_each_state_lists_exactly_its_prompts(api, browse, state, indexes):
    assert listed(api, browse, state=state) == browse.ids(*indexes)


def test_rows_say_state_models_counts_and_agreement(api, browse):
    rows = {row["id"]: row for row in api.get(url(browse)).json()["results"]}
    complete = rows[browse.prompts[0].pk]
    assert complete["state"] == "complete"
    assert complete["models"] == ["model-a", "model-b", "model-z"]
    assert (complete["rankings"], complete["wanted"], complete["skips"]) == (2, 2, 0)
    assert complete["agreement"] == 0.9
    assert complete["flagged_raters"] == 1
    assert complete["snippet"] == "How do I bake sourdough bread at home?"
    reopened = rows[browse.prompts[5].pk]
    assert (reopened["state"], reopened["wanted"], reopened["extra_raters"]) == ("reopened", 3, 1)
    assert reopened["extra_reason"] == "low"
    assert rows[browse.prompts[4].pk]["skips"] == 2
    assert rows[browse.prompts[7].pk]["state"] == "in_progress"
    assert rows[browse.prompts[2].pk]["agreement"] is None


@pytest.mark.parametrize(
    ("q", "indexes"),
    [
        ("sourdough", (5, 0)),  # any case
        ("SOURDOUGH STARTER", (5,)),
        ("100%", (3,)),  # % is a literal, not a wildcard
        ("snake_case", (4,)),  # so is _
        ("t_e", ()),  # would match "the" as a wildcard
        ("nothing like this", ()),
    ],
)
def test_search_matches_prompt_text(api, browse, q, indexes):
    assert listed(api, browse, q=q.replace("%", "%25").replace(" ", "+")) == browse.ids(*indexes)


def test_search_reads_every_turn_of_a_conversation(api, browse, project):
    import_prompts(
        project,
        [
            {
                "messages": [
                    {"role": "system", "content": "You are a pirate."},
                    {"role": "user", "content": "Say hello."},
                ],
                "responses": ["Arr", "Ahoy"],
            }
        ],
    )
    newest = Prompt.objects.filter(project=project).order_by("-pk")[0]
    assert listed(api, browse, q="pirate") == [newest.pk]
    assert listed(api, browse, q="role") == []  # JSON keys are not text


def test_model_filter(api, browse):
    assert listed(api, browse, model="model-c") == browse.ids(7, 5, 4)
    assert listed(api, browse, model="model-a") == browse.ids(3, 2, 1, 0)
    assert listed(api, browse, model="model-") == []  # a name, not a prefix


def test_agreement_range_uses_the_latest_run(api, browse):
    assert listed(api, browse, agreement_min="0.5") == browse.ids(0)
    assert listed(api, browse, agreement_max="0.5") == browse.ids(5)
    assert listed(api, browse, agreement_min="0.3", agreement_max="0.9") == browse.ids(5, 0)
    newer = done_run(browse.project)
    prompt_row(newer, browse.prompts[1], 0.6, 2)
    assert listed(api, browse, agreement_min="0") == browse.ids(1)


def test_flagged_filter(api, browse):
    assert listed(api, browse, flagged="true") == browse.ids(5, 0)
    assert listed(api, browse, flagged="false") == browse.ids(7, 4, 3, 2, 1)


def test_flagged_true_is_empty_without_open_flags(api, browse):
    from rankings.models import Flag, FlagStatus

    Flag.objects.update(status=FlagStatus.DISMISSED)
    assert listed(api, browse, flagged="true") == []
    assert len(listed(api, browse, flagged="false")) == 7


def test_filters_combine(api, browse):
    assert listed(api, browse, model="model-c", state="skipped") == browse.ids(4)
    assert listed(api, browse, q="sourdough", flagged="true", agreement_max="0.5") == browse.ids(5)


@pytest.mark.parametrize(
    ("ordering", "indexes"),
    [
        ("newest", (7, 5, 4, 3, 2, 1, 0)),
        ("oldest", (0, 1, 2, 3, 4, 5, 7)),
        ("agreement", (5, 0)),
        ("-agreement", (0, 5)),
        ("most_skipped", (4, 1)),
    ],
)
def test_orderings(api, browse, ordering, indexes):
    assert listed(api, browse, ordering=ordering) == browse.ids(*indexes)


def test_orderings_respect_filters(api, browse):
    assert listed(api, browse, ordering="most_skipped", model="model-a") == browse.ids(1)
    assert listed(api, browse, ordering="agreement", flagged="true", q="bread") == browse.ids(0)


def test_agreement_without_a_run_lists_nothing(api, project):
    import_prompts(project, sample_records(3))
    assert api.get(f"/api/projects/{project.pk}/prompts/?ordering=agreement").json() == {
        "results": [],
        "next": None,
        "run_id": None,
    }
    assert len(api.get(f"/api/projects/{project.pk}/prompts/").json()["results"]) == 3


def walk(api, first_url: str) -> list[int]:
    seen, next_url, pages = [], first_url, 0
    while next_url:
        body = api.get(next_url).json()
        seen += [row["id"] for row in body["results"]]
        next_url, pages = body["next"], pages + 1
        assert pages < 100
    return seen


@pytest.mark.parametrize(
    "ordering", ["newest", "oldest", "agreement", "-agreement", "most_skipped"]
)
@pytest.mark.parametrize("page_size", [1, 2, 3])
def test_pages_walk_the_whole_list_once(api, browse, rater, ordering, page_size):
    # Ties in every key: equal agreement and equal skip counts.
    for prompt in browse.prompts[1:5]:
        prompt_row(browse.run, prompt, 0.5, 2)
    AssignmentFactory(prompt=browse.prompts[2], rater=rater, status=AssignmentStatus.SKIPPED)
    whole = listed(api, browse, ordering=ordering, page_size=200)
    assert len(whole) >= 2
    assert walk(api, url(browse, ordering=ordering, page_size=page_size)) == whole


def test_next_link_keeps_the_filters(api, browse):
    body = api.get(url(browse, model="model-c", page_size=1)).json()
    assert "model=model-c" in body["next"] and "cursor=" in body["next"]
    assert walk(api, url(browse, model="model-c", page_size=1)) == browse.ids(7, 5, 4)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"color": "red"}, "color"),
        ({"state": "done"}, "state"),
        ({"ordering": "random"}, "ordering"),
        ({"agreement_min": "abc"}, "agreement_min"),
        ({"agreement_min": "1.5"}, "agreement_min"),
        ({"agreement_max": "-0.1"}, "agreement_max"),
        ({"agreement_max": "nan"}, "agreement_max"),
        ({"agreement_min": "0.8", "agreement_max": "0.2"}, "agreement_min"),
        ({"flagged": "maybe"}, "flagged"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "201"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "W10"}, "cursor"),  # valid base64 of a JSON list of the wrong shape
        ({"q": "x" * 201}, "q"),
        ({"model": "%00"}, "model"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(api, browse, params, field):
    response = api.get(url(browse, **params))
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field and body["code"] == "invalid" and field in body["detail"]


def test_cursor_of_another_ordering_is_refused(api, browse):
    cursor = cursor_encode(ordering="newest", key=(browse.prompts[3].pk,))
    response = api.get(url(browse, ordering="oldest", cursor=cursor))
    assert response.status_code == 400 and response.json()["field"] == "cursor"
    forged = cursor_encode(ordering="agreement", key=("0.5", 3))
    assert api.get(url(browse, ordering="agreement", cursor=forged)).status_code == 400


def test_who_may_browse(api_for, browse, lead, engineer, rater, outsider):
    assert api_for(lead).get(url(browse)).status_code == 200
    assert api_for(engineer).get(url(browse)).status_code == 200
    refused = api_for(rater).get(url(browse))
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert api_for(outsider).get(url(browse)).status_code == 404
    assert APIClient().get(url(browse)).status_code in (401, 403)
    assert api_for(lead).get("/api/projects/999999/prompts/").status_code == 404


def test_staff_may_browse_any_project(api_for, browse, make_user):
    staff = make_user("staff", is_staff=True)
    assert api_for(staff).get(url(browse)).status_code == 200


def test_import_still_posts_to_the_same_url(api, project):
    response = api.post(
        f"/api/projects/{project.pk}/prompts/",
        data=b'[{"prompt": "Hi", "responses": ["a", "b"]}]',
        content_type="application/json",
    )
    assert response.status_code == 201 and response.json()["created"] == 1


def test_the_list_costs_the_same_queries_whatever_the_page_size(
    api, browse, django_assert_max_num_queries
):
    with django_assert_max_num_queries(14):
        api.get(url(browse, page_size=200, flagged="false", q="a", model="model-b"))
    with django_assert_max_num_queries(14):
        api.get(url(browse, page_size=1))


@pytest.mark.postgresql("the trigram index and the search table it is built on")
def test_search_is_served_by_the_trigram_index(browse):
    """Once the prompts are indexed, the search's SQL reads their text through the trigram
    index: with full scans off, the planner answers it from that index (a tiny table would
    otherwise just be scanned)."""
    from django.db import connection
    from django.db.models import F

    from labeling.services.search_index import prompt_search_index_pending
    from rankings.prompts.search import PromptTextContains

    assert prompt_search_index_pending(project_id=browse.project.pk) == len(browse.prompts)
    words = PromptTextContains(F("pk"), "sourdough", project_id=browse.project.pk)
    prompts = Prompt.objects.filter(words)
    sql, params = prompts.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")  # nor a walk of another index
        cursor.execute("SET LOCAL enable_nestloop = off")  # nor a probe per prompt
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "prompt_search_trigram" in plan
    assert sorted(prompts.values_list("pk", flat=True)) == browse.ids(0, 5)
