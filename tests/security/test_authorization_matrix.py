"""The authorization matrix: every URL x every role x objects of two projects.

The URL patterns come from Django's resolver, so a new endpoint is covered the day it is
added, and this test fails until it is classified in ACCESS below (the single table of
who may do what). Each cell is requested inside a savepoint that is rolled back, so
writes, DELETE included, really run (a refused destructive write is seen refused) and
never disturb the next cell.

Roles, relative to project A: anonymous, outsider (signed in, no membership), rater,
paused rater, engineer, lead, the lead of project B, staff (acts as lead everywhere).
Every URL is filled once with project A's objects and once with project B's. The writing
task kinds' endpoints are filled with the objects of a project of their kind (a
demonstration, red-team or arena project with the same members as the rank project of the
same label), and their allowed cells are built to succeed: a 4xx there fails the cell too.

Allowed: neither a refusal nor a 5xx. Refused: an API answers 401/403/404 with the JSON
`{detail, code, field}`; a page redirects to the login page or answers 403/404/405.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from authoring.redteam import services as red_team_services
from exports.formats.red_team import RED_TEAM_FORMAT
from exports.models import ExportJob
from labeling import services as labeling_services
from labeling.accounts.services import api_token_create
from labeling.models import Invite, Membership, MemberStatus, Project, Prompt, Role, TaskKind
from llm.models import GenerationJob, JudgeRun
from rankings.models import Flag
from tests.authoring.arena.helpers import make_arena_project, voted_battle
from tests.authoring.demonstrations.helpers import demonstration_in_review, make_demo_project
from tests.authoring.redteam.helpers import briefs_import, chat, labelled_attempt, make_red_team
from tests.factories import UserFactory
from tests.helpers import import_prompts, sample_records
from tests.llm.fake_server import FakeServer
from tests.llm.helpers import make_endpoint

# Who may: each level names the users allowed, for the project whose objects fill the URL.
PUBLIC = "public"  # everyone, anonymous included
SIGNED_IN = "signed_in"  # any signed-in user
MEMBER = "member"  # any member of the project, a paused rater included; staff too
MEMBERSHIP = "membership"  # a real membership (staff are not raters), paused included
ACTIVE = "active"  # a real membership whose work is not paused
STAFF = "staff"  # staff (or the add_project permission, which no role here holds)
DATA = "data"  # engineer or lead
LEAD = "lead"
OWNER = "owner"  # the user the object belongs to (the project's rater: assignment, token)
REVIEWER = "reviewer"  # red-team review: an active rater or lead, staff too; not an engineer
NOBODY = "nobody"  # the method is not offered: refused to all

# URL name → {method: level}. Methods left out of an HTML entry are refused to everyone
# (405 or the login redirect); API entries list every method the view offers.
ACCESS: dict[str, dict[str, str]] = {
    "healthz": {"GET": PUBLIC},
    "readyz": {"GET": PUBLIC},
    "login": {"GET": PUBLIC, "POST": PUBLIC},
    "accounts:tokens": {"GET": SIGNED_IN, "POST": SIGNED_IN},
    "accounts:tokens-revoke-all": {"POST": SIGNED_IN},
    "accounts:token-revoke": {"POST": OWNER},
    # API
    "api-prompts": {"GET": DATA, "POST": DATA},
    "api-prompts-bulk": {"POST": LEAD},
    "api-prompt": {"GET": DATA, "PATCH": DATA},
    "api-token": {"POST": PUBLIC},
    "api-signup": {"POST": PUBLIC},
    "api-tokens": {"GET": SIGNED_IN, "POST": SIGNED_IN},
    "api-token-detail": {"DELETE": OWNER},
    "api-projects": {"GET": SIGNED_IN, "POST": STAFF},  # or add_project permission
    "api-project": {"GET": MEMBER, "PATCH": LEAD},
    "api-invites": {"GET": LEAD, "POST": LEAD},
    "api-members": {"GET": DATA},
    "api-audit": {"GET": DATA},
    "api-queue": {"GET": DATA},
    "api-lease-release": {"POST": LEAD},
    "api-member": {"PATCH": LEAD},
    "api-prompt-gold": {"PUT": LEAD},
    "api-next-task": {"GET": ACTIVE},  # members only, staff too
    "api-ranking": {"POST": OWNER},
    "api-skip": {"POST": OWNER},
    "api-undo": {"POST": OWNER},
    "api-renew": {"POST": OWNER},
    "api-leaderboard": {"GET": DATA},
    "api-agreement": {"GET": DATA, "POST": DATA},
    "api-raters": {"GET": DATA},
    "api-rater-exclude": {"POST": LEAD},
    "api-flags": {"GET": DATA},
    "api-flag": {"GET": DATA},
    "api-flag-dismiss": {"POST": LEAD},
    "api-flag-pause-rater": {"POST": LEAD},
    "api-flag-exclude-rater": {"POST": LEAD},
    "api-low-agreement-prompts": {"GET": DATA},
    "api-extra-raters-prompts": {"GET": DATA},
    "api-endpoints": {"GET": DATA, "POST": DATA},
    "api-endpoint": {"GET": DATA, "PATCH": DATA, "DELETE": DATA},
    "api-endpoint-test": {"POST": DATA},
    "api-generations": {"GET": DATA, "POST": DATA},
    "api-generation": {"GET": DATA},
    "api-judge-runs": {"GET": DATA, "POST": DATA},
    "api-judge-run": {"GET": DATA},
    "api-judge-template": {"GET": DATA, "PUT": DATA},
    "api-judge-preview": {"GET": DATA},
    "api-judge-calibration": {"GET": DATA},
    "api-judge-routing": {"POST": DATA},
    "api-exports": {"GET": DATA, "POST": DATA},
    "api-exports-stream": {"GET": DATA},
    "api-export": {"GET": DATA},
    "api-export-download": {"GET": DATA},
    "api-export-file": {"DELETE": LEAD},
    "api-export-card": {"GET": DATA},
    "api-export-archive": {"GET": DATA},
    "api-export-preview": {"GET": DATA},
    "api-exports-records": {"GET": DATA},  # filled with the red-team project's format
    # The writing task kinds (URLs filled with the objects of a project of their kind)
    "api-demonstration-submit": {"POST": OWNER},
    "api-demonstration-review": {"POST": OWNER},  # the reviewer the review is leased to
    "api-demonstration-review-skip": {"POST": OWNER},
    "api-red-team-turns": {"POST": OWNER},
    "api-red-team-stream": {"GET": OWNER},
    "api-red-team-flag": {"POST": OWNER},
    "api-red-team-submit": {"POST": OWNER},
    "api-red-team-attempt": {"GET": REVIEWER},  # someone else's submitted attempt
    "api-red-team-review": {"POST": REVIEWER},
    "api-red-team-review-next": {"GET": REVIEWER},
    "api-red-team-attempts": {"GET": LEAD},
    "api-red-team-send": {"POST": LEAD},  # lead of both projects: the target is the rank one
    "arena-api:battles": {"POST": ACTIVE},  # any real membership, not paused; staff are not
    "arena-api:battle": {"GET": OWNER},  # the rater the battle belongs to
    "arena-api:turns": {"POST": OWNER},
    "arena-api:stream": {"GET": OWNER},
    "arena-api:vote": {"POST": OWNER},
    "arena-api:reveal": {"POST": OWNER},
    # Pages
    "rankings:rate": {"GET": ACTIVE},  # a paused rater gets the paused notice, 403
    "rankings:guidelines_seen": {"POST": MEMBERSHIP},
    "rankings:submit": {"POST": OWNER},
    "rankings:skip": {"POST": OWNER},
    "rankings:undo": {"POST": OWNER},
    "rankings:renew": {"POST": OWNER},
    "rankings:prompts": {"GET": DATA},
    "rankings:prompts_bulk": {"POST": LEAD},
    "rankings:prompt": {"GET": DATA},
    "rankings:prompt_gold": {"POST": LEAD},
    "rankings:leaderboard": {"GET": DATA},
    "rankings:quality": {"GET": DATA, "POST": DATA},
    "rankings:quality_flag_action": {"POST": LEAD},
    "rankings:quality_rater_action": {"POST": LEAD},
    "exports:project": {"GET": DATA, "POST": DATA},
    "exports:preview": {"GET": DATA},
    "exports:delete_file": {"POST": LEAD},
    "llm:project": {"GET": DATA, "POST": DATA},  # POST shows the page
    "llm:endpoint_add": {"POST": DATA},
    "llm:endpoint_delete": {"POST": DATA},
    "llm:endpoint_test": {"POST": DATA},
    "llm:generation_start": {"POST": DATA},
    "llm:judge_start": {"POST": DATA},
    "llm:judge_routing": {"POST": DATA},
    "llm:judge_template": {"POST": DATA},
    "labeling:home": {"GET": SIGNED_IN, "POST": SIGNED_IN},  # POST shows the page
    "labeling:join": {"GET": PUBLIC, "POST": PUBLIC},
    "labeling:project-new": {"GET": STAFF, "POST": STAFF},  # or add_project permission
    "labeling:project": {"GET": LEAD, "POST": LEAD},  # POST shows the page
    "labeling:project-settings": {"POST": LEAD},
    "labeling:project-import": {"POST": DATA},
    "labeling:project-invite": {"POST": LEAD},
    "labeling:project-gold": {"POST": LEAD},
    "labeling:guidelines-preview": {"POST": LEAD},
    "labeling:project-queue": {"GET": LEAD},
    "labeling:lease-release": {"POST": LEAD},
    "labeling:project-member": {"POST": LEAD},
    "demonstrations:submit": {"POST": OWNER},
    "demonstrations:review": {"POST": OWNER},
    "demonstrations:review_skip": {"POST": OWNER},
    "demonstrations:preview": {"POST": SIGNED_IN},  # renders markdown, no project data
    "redteam:attempts": {"GET": LEAD},
}

# URL name → the task kind whose project (and objects) fill the URL; the others, `rank`.
KIND_ENDPOINTS: dict[str, tuple[str, ...]] = {
    TaskKind.DEMONSTRATION: (
        "api-demonstration-submit", "api-demonstration-review",
        "api-demonstration-review-skip", "demonstrations:submit", "demonstrations:review",
        "demonstrations:review_skip", "demonstrations:preview",
    ),
    TaskKind.RED_TEAM: (
        "api-red-team-turns", "api-red-team-stream", "api-red-team-flag",
        "api-red-team-submit", "api-red-team-attempt", "api-red-team-review",
        "api-red-team-attempts", "api-red-team-review-next", "api-red-team-send",
        "api-exports-records", "redteam:attempts",
    ),
    TaskKind.ARENA: (
        "arena-api:battles", "arena-api:battle", "arena-api:turns", "arena-api:stream",
        "arena-api:vote", "arena-api:reveal",
    ),
}  # fmt: skip
KIND_OF_NAME = {name: kind for kind, names in KIND_ENDPOINTS.items() for name in names}
# Server-sent events: allowed, they answer 200 `text/event-stream` (the events are not read;
# the turns are finished, so the stream would be the stored reply).
EVENT_STREAMS = {"api-red-team-stream", "arena-api:stream"}
QUERY_STRINGS = {"arena-api:stream": "?side=a"}

# Not in the matrix, and why.
SKIPPED_PREFIXES = {
    "admin/": "Django's admin: staff-only by Django itself, tested in tests/test_admin.py",
}
SKIPPED_NAMES = {
    "api-schema": "the OpenAPI schema is public by design (no data)",
    "api-docs": "Swagger UI page, public by design (no data)",
    "api-redoc": "ReDoc page, public by design (no data)",
    "logout": "signs the caller out and redirects to the login page: no data, for everyone",
}
HTML_METHODS = ("GET", "POST")
ROLES = ("anonymous", "outsider", "rater", "paused", "engineer", "lead", "other_lead", "staff")
PROJECTS = ("A", "B")


def url_patterns() -> list[tuple[str, str]]:
    """(route, name) of every URL pattern, namespaced names as `app:name`."""
    found: list[tuple[str, str]] = []

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                found.append((prefix + str(pattern.pattern), f"{namespace}{pattern.name}"))

    walk(get_resolver().url_patterns, "", "")
    return found


def matrix_patterns() -> list[tuple[str, str]]:
    return [
        (route, name)
        for route, name in url_patterns()
        if not any(route.startswith(prefix) for prefix in SKIPPED_PREFIXES)
        and name not in SKIPPED_NAMES
    ]


def test_every_endpoint_is_classified_and_the_table_names_no_stale_endpoint():
    names = [name for _, name in matrix_patterns()]
    unclassified = sorted(set(names) - set(ACCESS))
    assert not unclassified, f"add these endpoints to ACCESS: {unclassified}"
    assert not sorted(set(ACCESS) - set(names)), "ACCESS names endpoints that no longer exist"


def test_every_method_an_api_view_offers_is_in_the_table():
    for route, name in matrix_patterns():
        match = get_resolver().resolve("/" + _fill_route(route, _dummy_values()))
        view_class = getattr(match.func, "cls", None)
        if view_class is None or not route.startswith("api/"):
            continue
        offered = {
            m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)
        }
        assert offered == set(ACCESS[name]), f"{name}: the view offers {sorted(offered)}"


@dataclass
class World:
    users: dict[str, Any]
    values: dict[str, dict[str, dict[str, str]]]  # project label → task kind → URL kwarg → value
    projects: dict[str, dict[str, Project]]  # project label → task kind → its project
    owner: dict[str, Any]  # project label → the user OWNER means there
    tokens: dict[str, str]


def _dummy_values() -> dict[str, str]:
    return {
        key: "1"
        for key in (
            "project_id", "prompt_id", "assignment_id", "token_id", "flag_id", "endpoint_id",
            "job_id", "run_id", "export_id", "review_id", "attempt_id", "index",
            "battle_id", "number",
        )
    } | {
        "username": "someone", "code": "code", "action": "dismiss", "format_name": RED_TEAM_FORMAT,
    }  # fmt: skip


def _fill_route(route: str, values: dict[str, str]) -> str:
    import re

    def value(match: re.Match[str]) -> str:
        key = match.group(2)
        return values[key]

    return re.sub(r"<(?:(\w+):)?(\w+)>", value, route)


def _project_objects(label: str, lead: Any, rater: Any) -> tuple[Project, dict[str, str]]:
    project = labeling_services.project_create(creator=lead, name=f"Project {label}", overlap=2)
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(3, prefix=f"{label.lower()}"))
    )
    Membership.objects.get_or_create(project=project, user=rater, defaults={"role": Role.RATER})
    prompt = Prompt.objects.filter(project=project).order_by("id").first()
    assert prompt is not None
    assignment = labeling_services.lease_next_assignment(project=project, rater=rater)
    assert assignment is not None
    token = api_token_create(user=rater, name=f"rater token {label}")
    invite = Invite.objects.create(project=project, created_by=lead)
    flag = Flag.objects.create(project=project, rater=rater, code="TOO_FAST")
    endpoint = make_endpoint(project, "http://127.0.0.1:9/v1", name=f"model-{label}")
    generation = GenerationJob.objects.create(project=project, created_by=lead)
    judge = JudgeRun.objects.create(project=project, endpoint=endpoint, created_by=lead)
    export = ExportJob.objects.create(project=project, created_by=lead)
    values = {
        "project_id": str(project.pk),
        "prompt_id": str(prompt.pk),
        "assignment_id": str(assignment.pk),
        "token_id": str(token.token.pk),
        "flag_id": str(flag.pk),
        "endpoint_id": str(endpoint.pk),
        "run_id": str(judge.pk),
        "export_id": str(export.pk),
        "job_id": str(export.pk),
        "generation_id": str(generation.pk),
        "username": rater.username,
        "code": invite.code,
        "action": "dismiss",
        "response_ids": ",".join(
            str(pk)
            for pk in assignment.prompt.responses.order_by("id").values_list("id", flat=True)
        ),
    }
    return project, values


def _raters_join(project: Project, *raters: Any) -> None:
    for rater in raters:
        Membership.objects.get_or_create(project=project, user=rater, defaults={"role": Role.RATER})


def _demonstration_objects(
    label: str, lead: Any, rater: Any, writer: Any
) -> tuple[Project, dict[str, str]]:
    """A write task leased to the rater, and the writer's demonstration leased to the rater
    for review."""
    project = make_demo_project(lead, review_rate=1.0)
    import_prompts(project, sample_records(3, responses=0, prefix=f"demo-{label.lower()}"))
    _raters_join(project, rater, writer)
    review = demonstration_in_review(project, writer=writer, reviewer=rater)
    assignment = labeling_services.lease_next_assignment(project=project, rater=rater)
    assert assignment is not None
    return project, {
        "project_id": str(project.pk),
        "assignment_id": str(assignment.pk),
        "review_id": str(review.pk),
    }


def _red_team_objects(
    label: str, lead: Any, rater: Any, writer: Any, base_url: str
) -> tuple[Project, dict[str, str]]:
    """A brief leased to the rater with one turn answered, and the writer's labelled attempt
    for reviewers."""
    project = labeling_services.project_create(creator=lead, name=f"Red team {label}", overlap=2)
    make_red_team(project, base_url)
    briefs_import(project)
    _raters_join(project, rater, writer)
    submitted = labelled_attempt(project, writer)
    attempt = red_team_services.red_team_lease(project=project, rater=rater)
    assert attempt is not None
    chat(attempt, rater, "hello")
    return project, {
        "project_id": str(project.pk),
        "assignment_id": str(attempt.assignment_id),
        "index": "0",
        "attempt_id": str(submitted.pk),
        "format_name": RED_TEAM_FORMAT,
    }


def _arena_objects(
    label: str, lead: Any, rater: Any, base_url: str
) -> tuple[Project, dict[str, str]]:
    """The rater's battle: one turn, both replies in, voted."""
    project = make_arena_project(lead, base_url, name=f"Arena {label}")
    _raters_join(project, rater)
    battle = voted_battle(project, rater)
    return project, {"project_id": str(project.pk), "battle_id": str(battle.pk), "number": "1"}


def _project_family(
    label: str, lead: Any, rater: Any, writer: Any, base_url: str
) -> tuple[dict[str, Project], dict[str, dict[str, str]]]:
    """The label's rank project and a project of each writing task kind, with the objects
    their URLs name; a kind's URL values are the rank project's overridden by its own."""
    rank_project, rank_values = _project_objects(label, lead, rater)
    built = {
        TaskKind.RANK: (rank_project, {}),
        TaskKind.DEMONSTRATION: _demonstration_objects(label, lead, rater, writer),
        TaskKind.RED_TEAM: _red_team_objects(label, lead, rater, writer, base_url),
        TaskKind.ARENA: _arena_objects(label, lead, rater, base_url),
    }
    projects = {str(kind): project for kind, (project, _) in built.items()}
    values = {str(kind): rank_values | own for kind, (_, own) in built.items()}
    return projects, values


@pytest.fixture
def world(db, fake_llm: FakeServer, settings) -> World:
    settings.LLM_SEMAPHORE_URL = ""  # replies stream under the in-process limit, not Redis
    users = {
        name: UserFactory.create(username=name)
        for name in (
            "outsider", "rater", "paused", "engineer", "lead", "other_lead", "rater_b", "writer",
        )
    }  # fmt: skip
    users["staff"] = UserFactory.create(username="staff", is_staff=True)
    projects_a, values_a = _project_family(
        "A", users["lead"], users["rater"], users["writer"], fake_llm.base_url
    )
    projects_b, values_b = _project_family(
        "B", users["other_lead"], users["rater_b"], users["writer"], fake_llm.base_url
    )
    for project in projects_a.values():
        Membership.objects.create(
            project=project, user=users["paused"], role=Role.RATER, status=MemberStatus.PAUSED
        )
        Membership.objects.create(project=project, user=users["engineer"], role=Role.ENGINEER)
    tokens = {
        name: api_token_create(user=user, name="matrix").secret for name, user in users.items()
    }
    return World(
        users=users,
        values={"A": values_a, "B": values_b},
        projects={"A": projects_a, "B": projects_b},
        owner={"A": users["rater"], "B": users["rater_b"]},
        tokens=tokens,
    )


def allowed(world: World, role: str, label: str, kind: str, level: str) -> bool:
    if level == PUBLIC:
        return True
    if role == "anonymous" or level == NOBODY:
        return False
    if level == SIGNED_IN:
        return True
    user = world.users[role]
    if level == OWNER:
        return user == world.owner[label]
    if level == STAFF:
        return user.is_staff
    membership = Membership.objects.filter(project=world.projects[label][kind], user=user).first()
    active = membership is not None and membership.status == MemberStatus.ACTIVE
    if level == MEMBERSHIP:
        return membership is not None
    if level == ACTIVE:
        return active
    if level == REVIEWER:
        return user.is_staff or (
            active and membership is not None and membership.role != Role.ENGINEER
        )
    if user.is_staff:
        effective: str = Role.LEAD
    elif membership is None:
        return False
    else:
        effective = membership.role
    if level == MEMBER:
        return True
    if level == DATA:
        return effective in (Role.LEAD, Role.ENGINEER)
    return effective == Role.LEAD


RED_TEAM_LABEL = {"succeeded": True, "category": "weapons", "severity": 2}
KIND_BODIES: dict[str, dict[str, Any]] = {
    "api-demonstration-submit": {"text": "A better reply."},
    "demonstrations:submit": {"text": "A better reply."},
    "api-demonstration-review": {"decision": "accept"},
    "demonstrations:review": {"decision": "accept"},
    "api-demonstration-review-skip": {"reason": "unclear"},
    "demonstrations:review_skip": {"reason": "unclear"},
    "demonstrations:preview": {"text": "Some **markdown**"},
    "api-red-team-turns": {"content": "tell me more"},
    "api-red-team-flag": {"flagged": True},
    "api-red-team-submit": RED_TEAM_LABEL,
    "api-red-team-review": RED_TEAM_LABEL,
    "arena-api:turns": {"content": "and then?"},
    "arena-api:vote": {"choice": "a"},
}


def body_for(world: World, label: str, name: str) -> dict[str, Any]:
    """A harmless body that passes validation where validation could hide the refusal (a
    valid one for the task kinds' endpoints, whose allowed cells must succeed)."""
    values = world.values[label][TaskKind.RANK]
    if name in ("api-ranking", "rankings:submit"):
        ranking = [[int(item)] for item in values["response_ids"].split(",")]
        return (
            {"ranking": ranking, "seconds": 10}
            if name == "api-ranking"
            else {"ranking": json.dumps(ranking), "seconds": "10"}
        )
    if name in ("api-skip", "rankings:skip"):
        return {"reason": "unclear"}
    if name == "labeling:project-member":
        return {"action": "pause", "confirmed": "1"}
    if name == "llm:judge_start":
        return {"endpoint": values["endpoint_id"]}
    if name == "api-red-team-send":  # the red-team project's attempts to its rank twin
        return {"target_project": int(values["project_id"])}
    return KIND_BODIES.get(name, {})


def request_cell(
    world: World, role: str, method: str, path: str, api: bool, body: dict[str, Any]
) -> Any:
    if api:
        client: Any = APIClient()
        if role != "anonymous":
            client.credentials(HTTP_AUTHORIZATION=f"Token {world.tokens[role]}")
        call = getattr(client, method.lower())
        if method == "GET":
            return call(path)
        return call(path, data=body, format="json")
    client = Client()
    if role != "anonymous":
        client.force_login(world.users[role])
    call = getattr(client, method.lower())
    return call(path) if method == "GET" else call(path, data=body)


def refused(response: Any, api: bool) -> bool:
    if api:
        return response.status_code in (401, 403, 404)
    if response.status_code in (403, 404, 405):
        return True
    return response.status_code == 302 and response["Location"].startswith("/login/")


def check_cell(world: World, role: str, label: str, route: str, name: str, method: str):
    api = route.startswith("api/")
    kind = KIND_OF_NAME.get(name, TaskKind.RANK)
    values = world.values[label][kind]
    if name == "rankings:quality_rater_action":
        values = {**values, "action": "pause"}
    if name == "api-generation":  # `job_id` is an export's elsewhere
        values = {**values, "job_id": values["generation_id"]}
    path = "/" + _fill_route(route, values) + QUERY_STRINGS.get(name, "")
    level = ACCESS[name].get(method, NOBODY)
    cache.clear()  # throttle counters: every cell starts fresh
    with transaction.atomic():
        response = request_cell(world, role, method, path, api, body_for(world, label, name))
        transaction.set_rollback(True)
    status = response.status_code
    where = f"{role} {method} {path} ({name}, project {label}, needs {level}) → {status}"
    if status >= 500:
        return f"server error: {where}"
    expected = allowed(world, role, label, kind, level)
    if expected and refused(response, api):
        return f"refused but allowed: {where} {getattr(response, 'content', b'')[:200]!r}"
    if expected and name in KIND_OF_NAME and status >= 400:
        return f"allowed but failed: {where} {getattr(response, 'content', b'')[:200]!r}"
    if expected and name in EVENT_STREAMS and not _is_event_stream(response):
        return f"not server-sent events: {where} {response.get('Content-Type')}"
    if not expected:
        if not refused(response, api):
            return f"VIOLATION, not refused: {where} {getattr(response, 'content', b'')[:200]!r}"
        if api:
            body = response.json()
            # `field` is given when one field is at fault (core/api.py), else left out.
            if not {"detail", "code"} <= set(body) <= {"detail", "code", "field", "errors"}:
                return f"refusal not in the error shape: {where} {body}"
    return None


def _is_event_stream(response: Any) -> bool:
    """A 200 `text/event-stream` answer, its events left unread."""
    return (
        response.status_code == 200
        and response.streaming
        and response["Content-Type"].startswith("text/event-stream")
    )


def cells(route: str, name: str) -> list[str]:
    methods = list(ACCESS[name]) if route.startswith("api/") else list(HTML_METHODS)
    return methods


@pytest.mark.parametrize("label", PROJECTS)
@pytest.mark.parametrize("role", ROLES)
def test_authorization_matrix(world, role, label, capsys):
    problems: list[str] = []
    checked = 0
    for route, name in matrix_patterns():
        for method in cells(route, name):
            problem = check_cell(world, role, label, route, name, method)
            checked += 1
            if problem:
                problems.append(problem)
    with capsys.disabled():
        print(f"\nauthorization matrix: {role} x project {label}: {checked} cells checked")
    assert not problems, "\n".join(problems)
