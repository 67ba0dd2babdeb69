"""Arena battles: the endpoints that battle, a fairly drawn pair, a battle's start, close
and reveal, and the daily cap on counted votes. A battle's turns and votes are `turns`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from authoring.arena.models import Battle, Turn
from authoring.arena.options import ArenaOptions, arena_options
from core.errors import Conflict, NotAllowed, NotFound
from labeling import services as labeling_services
from labeling.models import AssignmentStatus, Project, TaskKind
from llm.models import ModelEndpoint

CAP_WINDOW = timedelta(hours=24)
NEW_BATTLE_SKIP = "the rater started a new battle before voting"


def row_id(value: int, what: str) -> int:
    """An id from the URL; one no database integer can hold names nothing (404, not a 500)."""
    if not 0 < value < 2**63:
        raise NotFound(f"{what} not found")
    return value


# Endpoints and pairs ------------------------------------------------------------------------


def arena_endpoints(*, project: Project, options: ArenaOptions) -> list[ModelEndpoint]:
    """The endpoints that battle: the listed ones (each must be the project's), or all."""
    endpoints = ModelEndpoint.objects.filter(project=project).order_by("id")
    if options.endpoints is not None:
        found = list(endpoints.filter(pk__in=options.endpoints))
        missing = sorted(set(options.endpoints) - {endpoint.pk for endpoint in found})
        if missing:
            raise Conflict(
                f"endpoint {missing[0]} is not one of this project's endpoints",
                field="task_options.endpoints",
                code="arena_endpoints",
            )
        return found
    found = list(endpoints)
    if len(found) < 2:
        raise Conflict(
            "the arena needs at least two model endpoints in the project",
            field="task_options.endpoints",
            code="arena_endpoints",
        )
    return found


def pair_draw(
    *, project: Project, endpoints: list[ModelEndpoint], rng: random.Random
) -> tuple[ModelEndpoint, ModelEndpoint]:
    """The pair that met least often in this project (ties drawn at random), sides at random.

    Balanced pairs give every model comparable evidence against every other (the
    leaderboard's intervals shrink evenly); random sides keep position bias out of it.
    """
    met: dict[frozenset[str], int] = {}
    for row in (
        Battle.objects.filter(project=project)
        .values("model_a", "model_b")
        .annotate(count=Count("id"))
    ):
        key = frozenset((row["model_a"], row["model_b"]))
        met[key] = met.get(key, 0) + row["count"]
    pairs = [
        (first, second)
        for index, first in enumerate(endpoints)
        for second in endpoints[index + 1 :]
    ]
    fewest = min(met.get(frozenset((a.name, b.name)), 0) for a, b in pairs)
    candidates = [pair for pair in pairs if met.get(frozenset(p.name for p in pair), 0) == fewest]
    first, second = rng.choice(candidates)
    return (first, second) if rng.random() < 0.5 else (second, first)


# Battles --------------------------------------------------------------------------------------


def battle_for_rater(*, battle_id: int, rater: User) -> Battle:
    battle_id = row_id(battle_id, "battle")
    battle = Battle.objects.select_related("project").filter(pk=battle_id, rater=rater).first()
    if battle is None:
        raise NotFound("battle not found")
    return battle


def battle_lock_for_rater(*, battle_id: int, rater: User) -> Battle:
    """The rater's battle, locked until the transaction ends (404 when it is not theirs)."""
    battle = (
        Battle.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(pk=row_id(battle_id, "battle"), rater=rater)
        .first()
    )
    if battle is None:
        raise NotFound("battle not found")
    return battle


def battle_open(*, project: Project, rater: User) -> Battle | None:
    """The rater's open battle; one whose pending turn was skipped is closed here."""
    battle = Battle.objects.filter(project=project, rater=rater, closed_at__isnull=True).first()
    if battle is None:
        return None
    last = battle.turns.select_related("assignment").order_by("-number").first()
    if last is not None and last.assignment.status == AssignmentStatus.SKIPPED:
        Battle.objects.filter(pk=battle.pk).update(closed_at=timezone.now())
        return None
    battle.project = project
    return battle


def battle_current(*, project: Project, rater: User) -> Battle | None:
    """The next-task answer: the open battle, else a new one; None when the cap is reached."""
    labeling_services.require_active_rater(project=project, rater=rater)
    battle = battle_open(project=project, rater=rater)
    options = arena_options(project.task_options)
    if votes_left(project=project, rater=rater, options=options) == 0:
        # Capped: only a turn already waiting for its vote is left to do.
        waiting = battle is not None and battle.turns.filter(voted_at__isnull=True).exists()
        return battle if waiting else None
    return battle if battle is not None else battle_start(project=project, rater=rater)


def battle_start(*, project: Project, rater: User, rng: random.Random | None = None) -> Battle:
    """A new battle with a fairly drawn pair; the rater's open one ends (an unvoted turn of
    it is skipped, with the reason)."""
    if project.task_kind != TaskKind.ARENA:
        raise Conflict("this project is not an arena", field="task_kind", code="task_kind")
    labeling_services.require_active_rater(project=project, rater=rater)
    options = arena_options(project.task_options)
    endpoints = arena_endpoints(project=project, options=options)
    rng = rng or random.SystemRandom()
    with transaction.atomic():
        for open_battle in Battle.objects.select_for_update().filter(
            project=project, rater=rater, closed_at__isnull=True
        ):
            _battle_close(open_battle, rater=rater)
        if votes_left(project=project, rater=rater, options=options) == 0:
            raise Conflict(daily_cap_message(options), code="daily_cap")
        side_a, side_b = pair_draw(project=project, endpoints=endpoints, rng=rng)
        return Battle.objects.create(
            project=project,
            rater=rater,
            endpoint_a=side_a,
            endpoint_b=side_b,
            model_a=side_a.name,
            model_b=side_b.name,
        )


def _battle_close(battle: Battle, *, rater: User) -> None:
    pending = battle.turns.filter(voted_at__isnull=True).select_related("assignment")
    for turn in pending:
        if turn.assignment.status == AssignmentStatus.LEASED:
            labeling_services.assignment_skip(
                assignment_id=turn.assignment_id, rater=rater, reason=NEW_BATTLE_SKIP
            )
    battle.closed_at = timezone.now()
    battle.save(update_fields=["closed_at"])


def battle_reveal(*, battle_id: int, rater: User) -> Battle:
    """Show the rater the two models; from now on the battle takes no counted vote."""
    with transaction.atomic():
        battle = battle_lock_for_rater(battle_id=battle_id, rater=rater)
        if not arena_options(battle.project.task_options).reveal:
            raise NotAllowed("this project does not reveal the models", code="reveal_off")
        if battle.revealed_at is None:
            if not battle.turns.filter(voted_at__isnull=False).exists():
                raise Conflict("vote on a turn before the models are revealed", code="no_vote")
            battle.revealed_at = timezone.now()
            battle.save(update_fields=["revealed_at"])
    return battle


# Daily cap ------------------------------------------------------------------------------------


def votes_left(
    *, project: Project, rater: User, options: ArenaOptions, now: datetime | None = None
) -> int | None:
    """Votes the rater may still cast in the last 24 hours: counted votes and turns waiting
    for a vote both take from the cap. None: no cap."""
    if options.daily_cap is None:
        return None
    now = now or timezone.now()
    used = Turn.objects.filter(battle__project=project, battle__rater=rater).filter(
        Q(counted=True, voted_at__gt=now - CAP_WINDOW)
        | Q(voted_at__isnull=True, assignment__status=AssignmentStatus.LEASED)
    )
    return max(0, options.daily_cap - used.count())


def daily_cap_message(options: ArenaOptions) -> str:
    return f"you reached this project's cap of {options.daily_cap} arena votes in 24 hours"


def counted_votes_in_window(*, project: Project, rater: User, now: datetime) -> int:
    return Turn.objects.filter(
        battle__project=project, battle__rater=rater, counted=True, voted_at__gt=now - CAP_WINDOW
    ).count()
