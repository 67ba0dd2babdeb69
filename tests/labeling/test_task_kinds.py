"""Task kinds: the project's `task_kind`, its options, and the dispatch of next-task and the
rater page to the kind's registered handler."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpResponse

from labeling import task_kinds
from labeling.models import MIN_RESPONSES, Project, TaskKind
from labeling.task_kinds import TaskKindHandler, clean_task_options, min_responses
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def _options_with_mode(options: dict[str, Any]) -> dict[str, Any]:
    mode = options.get("mode", "plain")
    if mode not in ("plain", "fancy"):
        from core.errors import InvalidInput

        raise InvalidInput("must be plain or fancy", field="task_options.mode")
    return {"mode": mode}


@pytest.fixture
def lead_client(api_for, lead):
    lead.is_staff = True
    lead.save(update_fields=["is_staff"])
    return api_for(lead)


@pytest.fixture
def rater_client(api_for, rater, imported):
    return api_for(rater)


@pytest.fixture
def arena_kind(monkeypatch):
    """A stand-in handler registered for the `arena` kind, recording what it was asked."""
    calls: list[tuple[str, int]] = []

    def next_task(project, rater, membership):
        calls.append(("next_task", project.pk))
        return {"battle": "ready", "rater": rater.username} if project.overlap > 1 else None

    def rater_page(request, project, membership):
        calls.append(("page", project.pk))
        return HttpResponse(f"arena page for {membership.user.username}")

    handler = TaskKindHandler(
        kind=TaskKind.ARENA,
        next_task=next_task,
        rater_page=rater_page,
        clean_options=_options_with_mode,
        min_responses=lambda project: 0,
    )
    monkeypatch.setitem(task_kinds._HANDLERS, TaskKind.ARENA, handler)
    return calls


def test_a_new_project_ranks_and_says_so(lead_client):
    created = lead_client.post("/api/projects/", {"name": "Plain"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["task_kind"] == "rank"
    assert created.json()["task_options"] == {}


def test_an_unknown_kind_is_refused_naming_the_field(lead_client):
    answer = lead_client.post("/api/projects/", {"name": "X", "task_kind": "poetry"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["field"] == "task_kind"
    assert not Project.objects.filter(name="X").exists()


def test_rank_takes_no_options(lead_client, project):
    answer = lead_client.patch(
        f"/api/projects/{project.pk}/", {"task_options": {"mode": "x"}}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json()["field"] == "task_options"


def test_a_kind_checks_its_own_options(lead_client, arena_kind):
    bad = lead_client.post(
        "/api/projects/",
        {"name": "A", "task_kind": "arena", "task_options": {"mode": "odd"}},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["field"] == "task_options.mode"
    good = lead_client.post("/api/projects/", {"name": "A", "task_kind": "arena"}, format="json")
    assert good.status_code == 201, good.content
    assert good.json()["task_options"] == {"mode": "plain"}


def test_the_kind_is_locked_once_raters_worked(lead_client, rater_client, project, arena_kind):
    assert rater_client.get(f"/api/projects/{project.pk}/next-task/").status_code == 200
    answer = lead_client.patch(
        f"/api/projects/{project.pk}/", {"task_kind": "arena"}, format="json"
    )
    assert answer.status_code == 409
    assert answer.json()["field"] == "task_kind"
    project.refresh_from_db()
    assert project.task_kind == TaskKind.RANK


def test_next_task_says_its_kind_for_rank(rater_client, project):
    answer = rater_client.get(f"/api/projects/{project.pk}/next-task/")
    assert answer.status_code == 200
    assert answer.json()["kind"] == "rank"
    assert len(answer.json()["responses"]) >= MIN_RESPONSES


def test_next_task_and_the_page_go_to_the_kinds_handler(
    lead_client, rater_client, client, project, arena_kind, rater
):
    assert (
        lead_client.patch(
            f"/api/projects/{project.pk}/", {"task_kind": "arena"}, format="json"
        ).status_code
        == 200
    )
    answer = rater_client.get(f"/api/projects/{project.pk}/next-task/")
    assert answer.status_code == 200
    assert answer.json() == {"kind": "arena", "battle": "ready", "rater": rater.username}

    client.login(username=rater.username, password=PASSWORD)
    page = client.get(f"/rate/{project.pk}/")
    assert page.status_code == 200
    assert page.content.decode() == f"arena page for {rater.username}"
    assert arena_kind == [("next_task", project.pk), ("page", project.pk)]


def test_nothing_left_of_another_kind_is_204(lead_client, rater_client, project, arena_kind):
    lead_client.patch(
        f"/api/projects/{project.pk}/", {"task_kind": "arena", "overlap": 1}, format="json"
    )
    assert rater_client.get(f"/api/projects/{project.pk}/next-task/").status_code == 204


def test_min_responses_comes_from_the_kind(project, arena_kind):
    assert min_responses(project) == MIN_RESPONSES
    project.task_kind = TaskKind.ARENA
    assert min_responses(project) == 0


def test_clean_task_options_refuses_a_non_object():
    with pytest.raises(Exception) as refused:
        clean_task_options("rank", ["x"])
    assert getattr(refused.value, "field", None) == "task_options"


def test_a_kind_checks_its_options_against_the_project(lead_client, project, monkeypatch):
    seen: list[int | None] = []

    def check(options, target):
        seen.append(None if target is None else target.pk)
        if target is None and options.get("mode") == "fancy":
            from core.errors import InvalidInput

            raise InvalidInput("fancy needs the project first", field="task_options.mode")

    handler = TaskKindHandler(
        kind=TaskKind.ARENA,
        next_task=lambda project, rater, membership: None,
        rater_page=lambda request, project, membership: HttpResponse(""),
        clean_options=_options_with_mode,
        check_for_project=check,
    )
    monkeypatch.setitem(task_kinds._HANDLERS, TaskKind.ARENA, handler)
    refused = lead_client.post(
        "/api/projects/",
        {"name": "A", "task_kind": "arena", "task_options": {"mode": "fancy"}},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["field"] == "task_options.mode"
    changed = lead_client.patch(
        f"/api/projects/{project.pk}/",
        {"task_kind": "arena", "task_options": {"mode": "fancy"}},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert seen == [None, project.pk]
