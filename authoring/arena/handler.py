"""The arena as a task kind: its next-task payload, its rater page, its options."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from authoring.arena import selectors
from authoring.arena.api.serializers import ArenaBattleSerializer
from authoring.arena.options import arena_options, clean_arena_options
from authoring.arena.services.battles import battle_current
from core.errors import Conflict, InvalidInput
from labeling.models import MAX_RESPONSES, Membership, Project, TaskKind
from labeling.task_kinds import TaskKindHandler
from llm.models import ModelEndpoint

TEMPLATE = "arena/rate.html"


def arena_next_task(project: Project, rater: User, membership: Membership) -> dict[str, Any] | None:
    """The rater's open battle (or a new one); None once the daily cap is reached."""
    battle = battle_current(project=project, rater=rater)
    if battle is None:
        return None
    return dict(ArenaBattleSerializer(selectors.battle_payload(battle, rater=rater)).data)


def arena_page(request: HttpRequest, project: Project, membership: Membership) -> HttpResponse:
    rater = cast(User, request.user)
    context: dict[str, Any] = {"project": project, "problem": None, "battle": None}
    try:
        battle = battle_current(project=project, rater=rater)
    except Conflict as problem:
        context["problem"] = problem.message
        battle = None
    if battle is not None:
        context["battle"] = dict(
            ArenaBattleSerializer(selectors.battle_payload(battle, rater=rater)).data
        )
    context["daily_cap"] = arena_options(project.task_options).daily_cap
    return render(request, TEMPLATE, context)


def listed_endpoints_check(options: dict[str, Any], project: Project | None) -> None:
    """Listed endpoints must be the project's own (so none while it is being created)."""
    listed = options.get("endpoints")
    if not listed:
        return
    field = "task_options.endpoints"
    if project is None:
        raise InvalidInput("add the project's model endpoints first, then list them", field=field)
    owned = set(
        ModelEndpoint.objects.filter(project=project, pk__in=listed).values_list("pk", flat=True)
    )
    missing = sorted(set(listed) - owned)
    if missing:
        raise InvalidInput(f"endpoint {missing[0]} is not one of this project's", field=field)


def never_from_the_queue(project: Project) -> int:
    """More responses than a prompt can have: the lease queue never serves an arena prompt
    (each is one rater's own turn), whatever its state or the project's overlap."""
    return MAX_RESPONSES + 1


ARENA = TaskKindHandler(
    kind=TaskKind.ARENA,
    next_task=arena_next_task,
    rater_page=arena_page,
    clean_options=clean_arena_options,
    check_for_project=listed_endpoints_check,
    min_responses=never_from_the_queue,
)
