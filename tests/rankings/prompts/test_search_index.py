"""The prompt browser's search while its index is built after the import (PostgreSQL):
every prompt is found before its job ran, after it, and after its text changed or it went
away; on SQLite the same searches read the prompts directly."""

from __future__ import annotations

import pytest

from labeling import services as labeling_services
from labeling.models import Prompt, PromptSearchText
from labeling.services.search_index import prompt_search_index_pending
from tests.helpers import import_prompts

pytestmark = pytest.mark.django_db

POSTGRESQL_ONLY = "prompts are indexed after their import on PostgreSQL only"


def found(api, project, q: str, **params: str) -> list[int]:
    query = "&".join(f"{key}={value}" for key, value in {"q": q, **params}.items())
    response = api.get(f"/api/projects/{project.pk}/prompts/?{query}")
    assert response.status_code == 200, response.json()
    return sorted(row["id"] for row in response.json()["results"])


def record(text: str) -> dict:
    return {"prompt": text, "responses": ["one answer", "another answer"]}


@pytest.fixture
def api(api_for, lead):
    return api_for(lead)


@pytest.fixture
def prompts(project) -> list[Prompt]:
    return import_prompts(
        project,
        [
            record("How long does sourdough bread rise?"),
            record("Explain recursion to a beginner."),
            record("Is SOURDOUGH healthier than rye?"),
        ],
    )


def ids(prompts: list[Prompt], *indexes: int) -> list[int]:
    return sorted(prompts[index].pk for index in indexes)


def test_a_prompt_is_found_right_after_its_import_and_after_indexing(api, project, prompts):
    assert found(api, project, "sourdough") == ids(prompts, 0, 2)
    prompt_search_index_pending(project_id=project.pk)
    assert found(api, project, "sourdough") == ids(prompts, 0, 2)
    assert found(api, project, "recursion") == ids(prompts, 1)
    assert found(api, project, "nothing+like+it") == []


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_search_mixes_indexed_and_pending_prompts(api, project, prompts):
    prompt_search_index_pending(project_id=project.pk)
    later = import_prompts(project, [record("Sourdough starter smells of acetone")])[-1]
    assert PromptSearchText.objects.filter(project=project, indexed=False).count() == 1
    assert found(api, project, "sourdough") == sorted([*ids(prompts, 0, 2), later.pk])


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_an_edited_prompt_is_found_by_its_new_text_only(api, project, prompts, lead):
    prompt_search_index_pending(project_id=project.pk)
    labeling_services.prompt_content_update(
        prompt=prompts[0], changes={"prompt": "How hot should a pizza oven be?"}, by=lead
    )
    # Its new text is out of the index until a job puts it back: read the slow way.
    assert not PromptSearchText.objects.get(prompt=prompts[0]).indexed
    assert found(api, project, "sourdough") == ids(prompts, 2)
    assert found(api, project, "pizza") == ids(prompts, 0)
    prompt_search_index_pending(project_id=project.pk)
    assert found(api, project, "sourdough") == ids(prompts, 2)
    assert found(api, project, "pizza") == ids(prompts, 0)


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_any_writer_of_messages_takes_the_prompt_out_of_the_index(api, project, prompts):
    """The search text is kept by the database, so a write outside the services counts."""
    prompt_search_index_pending(project_id=project.pk)
    Prompt.objects.filter(pk=prompts[1].pk).update(
        messages=[{"role": "user", "content": "Tell me about sourdough."}]
    )
    Prompt.objects.filter(pk=prompts[2].pk).update(is_complete=True)  # text unchanged
    unindexed = PromptSearchText.objects.filter(indexed=False).values_list("prompt_id", flat=True)
    assert set(unindexed) == {prompts[1].pk}
    assert found(api, project, "sourdough") == ids(prompts, 0, 1, 2)
    assert found(api, project, "recursion") == []


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_deleted_prompts_leave_nothing_behind(api, project, prompts):
    prompt_search_index_pending(project_id=project.pk)
    fresh = import_prompts(project, [record("Sourdough in a cold oven")])[-1]
    Prompt.objects.filter(pk__in=[prompts[0].pk, fresh.pk]).delete()
    assert set(PromptSearchText.objects.values_list("prompt_id", flat=True)) == {
        prompts[1].pk,
        prompts[2].pk,
    }
    assert found(api, project, "sourdough") == ids(prompts, 2)


def test_archived_prompts_are_searched_under_their_state(api, project, prompts, lead):
    prompt_search_index_pending(project_id=project.pk)
    labeling_services.prompts_archive(project=project, prompt_ids=[prompts[0].pk], by=lead)
    assert found(api, project, "sourdough") == ids(prompts, 2)
    assert found(api, project, "sourdough", state="archived") == ids(prompts, 0)


@pytest.mark.postgresql(POSTGRESQL_ONLY)
def test_another_projects_prompts_stay_out(api, project, prompts, lead):
    other = labeling_services.project_create(creator=lead, name="Other")
    import_prompts(other, [record("Sourdough elsewhere")])
    prompt_search_index_pending(project_id=project.pk)  # the other project's stay pending
    assert found(api, project, "sourdough") == ids(prompts, 0, 2)
    assert found(api, other, "sourdough") == [Prompt.objects.get(project=other).pk]
