"""Building the demo: its people, the two projects, the simulated crowd's work and what the
lead finds on first login (agreement history, flagged raters, a finished export).

Everything goes through the services the product's own interfaces call: projects and
imports as a lead creates them, every crowd ranking leased with ``lease_next_assignment`` and
submitted with ``ranking_submit`` (what the rater API does), agreement runs and the export
as their jobs. Re-running finds the projects by name and only refreshes the logins.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Field

from config.celery import app as celery_app
from demo.crowd import ShownResponse
from demo.crowd_work import CrowdWork, crowd_members, working_crowd
from demo.demonstrations import demo_demonstrations_ensure
from demo.people import (
    DEMO_PEOPLE,
    crowd_users_ensure,
    demo_invite_ensure,
    demo_people_ensure,
)
from demo.red_team import demo_red_team_ensure
from demo.scenario import SCENARIO_FILES, DemoProject, DemoPrompt, load_scenario
from exports import services as export_services
from exports.models import ExportJob
from labeling import services as labeling_services
from labeling.models import Invite, Membership, Project, Response, Role
from labeling.rubric import clean_rubric

DEMO_PASSWORD = "ranklab-demo"
SEED = 20250601
QUIET_LOGGERS = ("celery.app.trace", "kombu.connection")


@dataclass(frozen=True)
class DemoResult:
    projects: list[Project]
    built: list[bool]  # per project: built now (False: it existed already)
    invites: list[Invite]
    other_kinds: list[Project] = field(default_factory=list)
    """Projects of the writing task kinds (demonstrations, red teaming)."""


def demo_build(*, password: str = DEMO_PASSWORD, seed: int = SEED) -> DemoResult:
    """Create whatever part of the demo is missing and reset the demo logins' passwords.

    Each project is built in one transaction, so an interrupted build leaves nothing half
    done behind; its export is requested once that has committed.
    """
    with _tasks_in_process():
        people = demo_people_ensure(password=password)
        crowd_users = crowd_users_ensure()
        projects, built = [], []
        for file_name in SCENARIO_FILES:
            scenario = load_scenario(file_name)
            project = Project.objects.filter(name=scenario.name).order_by("id").first()
            built.append(project is None)
            if project is None:
                with transaction.atomic():
                    project = demo_project_build(
                        scenario=scenario,
                        people=people,
                        crowd_users=crowd_users,
                        seed=f"{seed}-{file_name}",
                    )
            projects.append(project)
        other_kinds = [
            demo_demonstrations_ensure(people=people),
            demo_red_team_ensure(people=people),
        ]
        # The demo's export, where it is missing (a build interrupted after its commit).
        first = projects[0]
        if not ExportJob.objects.filter(project=first).exists():
            demo_export_create(project=first, lead=people["lead"])
        invites = [demo_invite_ensure(project=p, lead=people["lead"]) for p in projects]
    return DemoResult(projects=projects, built=built, invites=invites, other_kinds=other_kinds)


@contextmanager
def _tasks_in_process() -> Iterator[None]:
    """Run the jobs the demo queues (agreement runs, the export) in this process, even when a
    broker is configured: the demo is complete when the command ends, worker or not.

    Their per-task log lines (and kombu's note that an empty broker URL means localhost)
    would bury the summary, so those loggers are quiet meanwhile.
    """
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.task_eager_propagates
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    conf.task_always_eager, conf.task_eager_propagates = True, True
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        conf.task_always_eager, conf.task_eager_propagates = saved
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# One project -------------------------------------------------------------------------------


def demo_project_build(
    *,
    scenario: DemoProject,
    people: dict[str, User],
    crowd_users: dict[str, User],
    seed: str,
) -> Project:
    """Create the project, import its prompts, and let the crowd work through it.

    The crowd first ranks every prompt at one below the overlap (a pilot); then the lead
    raises the overlap and the crowd fills the extra slot of all but ``open_for_humans``
    prompts, which stay one ranking short for the demo's own raters. Agreement runs every
    ``run_every`` crowd rankings, so the dashboard has a trend.
    """
    settings = _project_settings(scenario)
    project = labeling_services.project_create(
        creator=people["lead"],
        name=scenario.name,
        description=scenario.description,
        guidelines=scenario.guidelines,
        **{**settings, **_while_the_crowd_works(settings)},
    )
    working = working_crowd(crowd_users=crowd_users, usernames=scenario.crowd.raters)
    _members_add(project=project, people=people, crowd_users=working)
    rng = random.Random(seed)
    shown = _prompts_import(project=project, scenario=scenario, rng=rng)
    crowd = crowd_members(crowd_users=crowd_users, seed=seed, usernames=scenario.crowd.raters)
    work = CrowdWork(project=project, crowd=crowd, shown=shown, run_every=scenario.crowd.run_every)
    work.until_no_task_is_left()
    labeling_services.project_update(project=project, overlap=settings["overlap"])
    work.until_open_prompts(scenario.crowd.open_for_humans)
    work.agreement_run()
    labeling_services.project_update(
        project=project, **{name: settings[name] for name in BUILD_OVERRIDES if name != "overlap"}
    )
    return project


# Settings the build changes while the crowd works, restored to the scenario's afterwards.
BUILD_OVERRIDES = ("overlap", "agreement_every_n_rankings", "repeat_delay_seconds")


def _while_the_crowd_works(settings: dict[str, Any]) -> dict[str, Any]:
    """The pilot's overlap is one below the project's. Agreement runs at the build's own
    checkpoints, not the project's trigger. The crowd's week passes in seconds, so repeats
    come back without the project's delay."""
    return {
        "overlap": max(1, settings["overlap"] - 1),
        "agreement_every_n_rankings": 0,
        "repeat_delay_seconds": 0,
    }


def _project_settings(scenario: DemoProject) -> dict[str, Any]:
    """The scenario's project fields, with the model's defaults for those the build changes."""
    defaults = {name: _field_default(name) for name in BUILD_OVERRIDES}
    settings = defaults | dict(scenario.settings)
    if "rubric" in settings:
        settings["rubric"] = clean_rubric(settings["rubric"])
    return settings


def _field_default(name: str) -> Any:
    field = Project._meta.get_field(name)
    assert isinstance(field, Field)
    return field.get_default()


def _members_add(
    *, project: Project, people: dict[str, User], crowd_users: dict[str, User]
) -> None:
    """Everyone but the lead (a member since creating the project) joins in their role."""
    roles = {person.username: person.role for person in DEMO_PEOPLE if person.role != Role.LEAD}
    roles.update({username: Role.RATER for username in crowd_users})
    users = {**people, **crowd_users}
    Membership.objects.bulk_create(
        [Membership(project=project, user=users[name], role=role) for name, role in roles.items()]
    )


def _prompts_import(
    *, project: Project, scenario: DemoProject, rng: random.Random
) -> dict[int, ShownResponse]:
    """Import the prompts as a lead's file would be, and return what the simulation knows
    about each response by id (its latent quality stays in memory, never in the database).

    Responses are shuffled per prompt, so the import order (which the prompt browser labels
    A, B, …) says nothing about quality.
    """
    ordered = [_shuffled(prompt, rng) for prompt in scenario.prompts]
    records = [_import_record(prompt) for prompt in ordered]
    prompt_ids = labeling_services.prompts_import(project=project, raw=orjson.dumps(records))
    by_prompt = {prompt_id: prompt for prompt_id, prompt in zip(prompt_ids, ordered, strict=True)}
    shown = {}
    for response_id, prompt_id, position, text in Response.objects.filter(
        prompt_id__in=prompt_ids
    ).values_list("id", "prompt_id", "position", "text"):
        latent = by_prompt[prompt_id].responses[position]
        shown[response_id] = ShownResponse(
            response_id=response_id,
            length=len(text),
            quality=latent.quality,
            note=latent.note,
            flaws=latent.flaws,
        )
    return shown


def _shuffled(prompt: DemoPrompt, rng: random.Random) -> DemoPrompt:
    responses = list(prompt.responses)
    rng.shuffle(responses)
    return DemoPrompt(prompt.external_id, prompt.messages, tuple(responses), prompt.gold)


def _import_record(prompt: DemoPrompt) -> dict[str, Any]:
    """The import format a lead uploads: no quality, no notes, nothing only the crowd knows."""
    record: dict[str, Any] = {
        "external_id": prompt.external_id,
        "messages": prompt.import_messages(),
        "responses": [{"text": r.text, "model": r.model} for r in prompt.responses],
    }
    if prompt.gold:
        record["gold_ranking"] = _reference_ranking(prompt)
    return record


def _reference_ranking(prompt: DemoPrompt) -> list[list[int]]:
    """The lead's reference for a gold prompt: positions by latent quality, equal ones tied."""
    positions = sorted(
        range(len(prompt.responses)), key=lambda index: -prompt.responses[index].quality
    )
    groups: list[list[int]] = []
    for position in positions:
        quality = prompt.responses[position].quality
        if groups and prompt.responses[groups[-1][0]].quality == quality:
            groups[-1].append(position)
        else:
            groups.append([position])
    return groups


# The export ---------------------------------------------------------------------------------


def demo_export_create(*, project: Project, lead: User) -> ExportJob:
    """A TRL export with the default strategy, run in this process; a failure is recorded
    on the job (the Exports page shows it) rather than stopping the demo."""
    job = export_services.export_job_create(project=project, created_by=lead)
    # Without a broker the job already ran when it was committed; otherwise run it here
    # (whoever claims it first runs it: the claim is a conditional UPDATE).
    export_services.export_job_run(job_id=job.pk)
    job.refresh_from_db()
    return job
