"""Plain helpers (not fixtures) shared by these tests."""

from __future__ import annotations

from typing import Any

from authoring.demonstrations.models import DemonstrationReview
from authoring.demonstrations.reviews import review_lease_new
from authoring.demonstrations.services import demonstration_submit
from labeling import services as labeling_services
from labeling.models import Project, TaskKind


def make_demo_project(lead, *, mode: str = "write", overlap: int = 1, **options) -> Project:
    project = labeling_services.project_create(
        creator=lead,
        name=f"Demonstrations ({mode})",
        overlap=overlap,
        gold_rate=0.0,
        task_kind=TaskKind.DEMONSTRATION,
        task_options={"mode": mode, **options},
        guidelines="Be **helpful** and honest.",
    )
    return project


def demonstration_in_review(
    project: Project, *, writer: Any, reviewer: Any, text: str = "An ideal reply."
) -> DemonstrationReview:
    """A write-mode demonstration by `writer`, leased to `reviewer` for review (the project
    routes every demonstration to review: `review_rate=1.0`)."""
    assignment = labeling_services.lease_next_assignment(project=project, rater=writer)
    assert assignment is not None, "no prompt left to write for"
    demonstration_submit(assignment_id=assignment.pk, rater=writer, text=text)
    review = review_lease_new(project=project, rater=reviewer)
    assert review is not None, "the demonstration was not routed to review"
    return review
