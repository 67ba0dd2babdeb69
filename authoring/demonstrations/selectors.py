"""What a rater of a demonstration project is shown: the API payloads of a write or a review
task (the page renders the same dictionaries)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from authoring.demonstrations.models import DemonstrationReview
from authoring.demonstrations.options import DemonstrationOptions
from authoring.demonstrations.services import DemonstrationTask
from labeling import selectors as labeling_selectors
from labeling.models import Assignment, Membership, Project


def task_payload(
    task: DemonstrationTask, *, project: Project, membership: Membership | None = None
) -> dict[str, Any]:
    if task.review is not None:
        return review_payload(task.review, project=project, membership=membership)
    assert task.assignment is not None
    return write_payload(task.assignment, project=project, membership=membership)


def write_payload(
    assignment: Assignment, *, project: Project, membership: Membership | None = None
) -> dict[str, Any]:
    """A write task: the conversation and, in rank-then-rewrite mode, the K responses in
    shown order to rank (labels A, B, … as on the ranking page)."""
    assignment.project = project
    options = DemonstrationOptions.of(project)
    base = labeling_selectors.task_payload(assignment, membership=membership)
    return {
        "task": "write",
        "mode": options.mode,
        "assignment_id": assignment.pk,
        "prompt": base["prompt"],
        "responses": base["responses"] if options.rank_then_rewrite else [],
        "allow_ties": project.allow_ties,
        "expires_at": assignment.expires_at,
        "guidelines_version": project.guidelines_version,
        "guidelines_changed": base["guidelines_changed"],
        "submit_url": reverse("api-demonstration-submit", kwargs={"assignment_id": assignment.pk}),
        "skip_url": reverse("api-skip", kwargs={"assignment_id": assignment.pk}),
    }


def review_payload(
    review: DemonstrationReview, *, project: Project, membership: Membership | None = None
) -> dict[str, Any]:
    """A review task: the conversation, the demonstration and, for a rewrite, the response
    it was rewritten from and the diff."""
    demonstration = review.demonstration
    original = None
    if demonstration.original_response_id is not None:
        original = {"id": demonstration.original_response_id, "text": demonstration.original_text}
    return {
        "task": "review",
        "mode": demonstration.mode,
        "review_id": review.pk,
        "demonstration_id": demonstration.pk,
        "prompt": {"id": demonstration.prompt_id, "messages": demonstration.prompt.messages},
        "text": demonstration.text,
        "original_response": original,
        "diff": demonstration.diff,
        "expires_at": review.expires_at,
        "guidelines_version": project.guidelines_version,
        "guidelines_changed": bool(membership and membership.needs_guidelines(project)),
        "submit_url": reverse("api-demonstration-review", kwargs={"review_id": review.pk}),
        "skip_url": reverse("api-demonstration-review-skip", kwargs={"review_id": review.pk}),
    }
