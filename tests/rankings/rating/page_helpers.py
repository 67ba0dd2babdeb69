"""Helpers for the rater page's tests: URLs, the rater's live leases, posted rank fields."""

from __future__ import annotations

import json
import re

from django.urls import reverse
from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus

JSON = {"HTTP_ACCEPT": "application/json"}
EMPTY_QUEUE = "Nothing left to rank in this project — thank you!"


def rate_url(project) -> str:
    return reverse("rankings:rate", kwargs={"project_id": project.pk})


def action_url(name: str, assignment) -> str:
    return reverse(f"rankings:{name}", kwargs={"assignment_id": assignment.pk})


def leased(project, rater) -> Assignment:
    """The rater's next lease, which the test expects there to be."""
    assignment = labeling_services.lease_next_assignment(project=project, rater=rater)
    assert assignment is not None, "nothing to lease"
    return assignment


def shown(assignment: Assignment | None) -> Assignment:
    """A task the test expects to be there (a selector's result is optional)."""
    assert assignment is not None, "no task"
    return assignment


def live_assignments(rater) -> list[Assignment]:
    return list(
        Assignment.objects.filter(
            rater=rater, status=AssignmentStatus.LEASED, expires_at__gt=timezone.now()
        ).order_by("id")
    )


def current_task(client, project, rater) -> Assignment:
    client.get(rate_url(project))
    return live_assignments(rater)[0]


def shown_card_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-response-id="(\d+)"', html)]


def rank_fields(assignment, order: list[int] | None = None) -> dict[str, str]:
    """rank_<id> fields: the shown order as given ranks, or the ranks in `order`."""
    ranks = order or list(range(1, len(assignment.shown_order) + 1))
    return {
        f"rank_{response_id}": str(rank)
        for response_id, rank in zip(assignment.shown_order, ranks, strict=True)
    }


def set_project(project, **fields) -> None:
    for name, value in fields.items():
        setattr(project, name, value)
    project.save(update_fields=list(fields))


def pairwise_project(project, rater, **fields):
    set_project(project, **fields)
    labeling_services.prompts_import(
        project=project,
        raw=json.dumps([{"prompt": f"q{i}", "responses": ["one", "two"]} for i in range(3)]),
    )
    return project
