"""factory_boy factories for the domain objects tests build directly.

Call ``XFactory.create(...)`` (typed: it returns the model) rather than ``XFactory(...)``.

Tests that exercise a flow (import, lease, submit) go through the services; tests that only
need rows to exist — a submitted ranking, a member, a prompt with its responses — build them
here, so each model's required fields are spelled out once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import (
    Assignment,
    AssignmentStatus,
    Membership,
    Project,
    Prompt,
    Response,
    Role,
)
from rankings.models import Ranking
from tests.helpers import PASSWORD, response_ids


class UserFactory(factory.django.DjangoModelFactory[Any]):
    """A user who can sign in with ``tests.helpers.PASSWORD``."""

    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        return model_class.objects.create_user(*args, password=PASSWORD, **kwargs)


class ProjectFactory(factory.django.DjangoModelFactory[Project]):
    """A project made as a lead makes one: through ``project_create`` (lead membership, key
    salt and defaults included)."""

    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    created_by = factory.SubFactory(UserFactory)

    @classmethod
    def _create(cls, model_class: type[Project], *args: Any, **kwargs: Any) -> Project:
        creator = kwargs.pop("created_by")
        return labeling_services.project_create(creator=creator, **kwargs)


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.RATER


class PromptFactory(factory.django.DjangoModelFactory[Prompt]):
    """A prompt with ``responses`` responses (3 unless told), models ``model-0``, …"""

    class Meta:
        model = Prompt
        skip_postgeneration_save = True

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"p{n}")
    messages = factory.LazyAttribute(
        lambda prompt: [{"role": "user", "content": f"Question {prompt.external_id}"}]
    )

    @factory.post_generation
    def responses(self, create: bool, extracted: int | None, **kwargs: Any) -> None:
        if create:
            responses_add(self, count=3 if extracted is None else extracted)


def responses_add(prompt: Any, *, count: int) -> None:
    Response.objects.bulk_create(
        Response(
            prompt=prompt,
            position=slot,
            external_id=f"{prompt.external_id}-r{slot}",
            text=f"Answer {slot} to {prompt.external_id}",
            model_name=f"model-{slot}",
        )
        for slot in range(count)
    )


class AssignmentFactory(factory.django.DjangoModelFactory[Assignment]):
    """A submitted assignment, shown in import order, finished now."""

    class Meta:
        model = Assignment

    prompt = factory.SubFactory(PromptFactory)
    project = factory.SelfAttribute("prompt.project")
    rater = factory.SubFactory(UserFactory)
    status = AssignmentStatus.SUBMITTED
    shown_order = factory.LazyAttribute(lambda assignment: response_ids(assignment.prompt))
    finished_at = factory.LazyFunction(timezone.now)
    leased_at = factory.LazyAttribute(lambda a: a.finished_at - timedelta(minutes=1))
    expires_at = factory.LazyAttribute(lambda a: a.finished_at + timedelta(minutes=9))


class RankingFactory(factory.django.DjangoModelFactory[Ranking]):
    """A submitted ranking. ``positions`` (tie groups of 0-based import positions) is the
    convenient way to say what the rater chose; ``groups`` (response ids) also works. Without
    either the rater ranks in import order, no ties."""

    class Meta:
        model = Ranking

    class Params:
        positions: list[list[int]] | None = None

    prompt = factory.SubFactory(PromptFactory)
    project = factory.SelfAttribute("prompt.project")
    rater = factory.SubFactory(UserFactory)
    is_repeat = False
    created_at = factory.LazyFunction(timezone.now)
    assignment = factory.SubFactory(
        AssignmentFactory,
        prompt=factory.SelfAttribute("..prompt"),
        rater=factory.SelfAttribute("..rater"),
        is_repeat=factory.SelfAttribute("..is_repeat"),
        finished_at=factory.SelfAttribute("..created_at"),
    )
    groups = factory.LazyAttribute(
        lambda ranking: [
            [ids[position] for position in group]
            for ids in [response_ids(ranking.prompt)]
            for group in (ranking.positions or [[slot] for slot in range(len(ids))])
        ]
    )
