"""The red-team panel of the lead's prompt page (`rankings.prompts.extras`): on a brief, its
attempts with their labels; on a prompt sent to ranking, the attempt it came from."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from authoring.redteam.models import Attempt
from labeling.models import Prompt, TaskKind

PANEL_KEY = "red_team"
PANEL_TEMPLATE = "redteam/_prompt_panel.html"


def prompt_red_team_panel(*, prompt: Prompt, labels: dict[int, str]) -> dict[str, Any] | None:
    metadata = prompt.metadata or {}
    if metadata.get("source") == "red-team":
        project_id = metadata.get("red_team_project")
        return {
            "sent": True,
            "attempt": metadata.get("attempt"),
            "category": metadata.get("category", ""),
            "page_url": reverse("redteam:attempts", args=[project_id]) if project_id else None,
        }
    if prompt.project.task_kind != TaskKind.RED_TEAM:
        return None
    attempts = (
        Attempt.objects.filter(prompt=prompt)
        .select_related("rater", "assignment")
        .prefetch_related("labels")
        .order_by("id")
    )
    return {
        "sent": False,
        "page_url": reverse("redteam:attempts", args=[prompt.project_id]),
        "attempts": [
            {
                "id": attempt.pk,
                "rater": attempt.rater.username,
                "status": attempt.assignment.status,
                "labels": [
                    {
                        "role": label.role,
                        "succeeded": label.succeeded,
                        "category": label.category,
                        "severity": label.severity,
                    }
                    for label in attempt.labels.all()
                ],
            }
            for attempt in attempts
        ],
    }
