"""The demo's demonstration project: tutor prompts whose ideal replies the crowd wrote
(pre-written here, offline) and a reviewer accepted, edited or rejected; one writer's work
is rejected often enough to raise the DEMONSTRATIONS_REJECTED flag.

Built through the same services as the rater API (lease, submit, review), once: a project
of that name that exists already is left as it is.
"""

from __future__ import annotations

import orjson
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from authoring.demonstrations import reviews as demonstration_reviews
from authoring.demonstrations import services as demonstration_services
from labeling import services as labeling_services
from labeling.models import Membership, Project, Role, TaskKind

NAME = "Demo: tutor demonstrations"
GUIDELINES = (
    "Write the reply a **patient tutor** would give: correct first, then short and kind. "
    "Use markdown where it helps (lists, code). Reviewers: reject replies that are wrong or "
    "unhelpful and say why; fix small slips with an edit."
)
# (prompt, (writer, reply), review decision, reviewer's edit or reason)
WORK: tuple[tuple[str, str, str, str, str], ...] = (
    ("What is a prime number?", "careful",
     "A whole number above 1 whose only divisors are 1 and itself: 2, 3, 5, 7, 11…",
     "accept", ""),
    ("Why is the sky blue?", "careful",
     "Air scatters short (blue) wavelengths of sunlight far more than long (red) ones, so "
     "blue light reaches your eyes from every direction of the sky.", "accept", ""),
    ("How do I reverse a list in Python?", "careful",
     "Use `items.reverse()` to reverse in place, or `items[::-1]` for a reversed copy.",
     "edit", "Use `items.reverse()` to reverse it in place, or `items[::-1]` (or "
     "`list(reversed(items))`) for a reversed copy."),
    ("What causes the seasons?", "hasty", "The Earth is closer to the Sun in summer.",
     "reject", "Wrong: the seasons come from the tilt of the Earth's axis."),
    ("What is 15% of 80?", "hasty", "It's 10.", "reject", "Wrong answer: 15% of 80 is 12."),
    ("Translate 'thank you' into French.", "hasty", "Merci.", "accept", ""),
    ("Name the largest planet.", "hasty", "Saturn, probably.", "reject",
     "Jupiter is the largest planet."),
)  # fmt: skip
WRITERS = {"careful": "demo-writer-careful", "hasty": "demo-writer-hasty"}
REVIEWER = "rater1"


def demo_demonstrations_ensure(*, people: dict[str, User]) -> Project:
    """The demonstration project, built now unless it exists already."""
    project = Project.objects.filter(name=NAME).order_by("id").first()
    if project is not None:
        return project
    with transaction.atomic():
        return _build(lead=people["lead"], reviewer=people[REVIEWER])


def _build(*, lead: User, reviewer: User) -> Project:
    project = labeling_services.project_create(
        creator=lead,
        name=NAME,
        description="Raters write the ideal reply; a second rater reviews it.",
        guidelines=GUIDELINES,
        overlap=1,
        gold_rate=0.0,
        task_kind=TaskKind.DEMONSTRATION,
        task_options={"mode": "write", "review_rate": 1.0, "flag_min_reviews": 3},
    )
    labeling_services.prompts_import(
        project=project,
        raw=orjson.dumps([{"prompt": prompt, "responses": []} for prompt, *_ in WORK]),
        by=lead,
    )
    now = timezone.now()
    writers = {
        key: User.objects.get_or_create(username=username)[0] for key, username in WRITERS.items()
    }
    for user in [*writers.values(), reviewer]:
        Membership.objects.get_or_create(
            project=project, user=user, defaults={"role": Role.RATER, "guidelines_seen_at": now}
        )
    Membership.objects.get_or_create(project=project, user=lead, defaults={"role": Role.LEAD})
    for _, writer_key, reply, _, _ in WORK:
        writer = writers[writer_key]
        # The write lease itself: the rater flow would offer the other writer's reply for
        # review first.
        assignment = labeling_services.lease_next_assignment(project=project, rater=writer)
        assert assignment is not None
        demonstration_services.demonstration_submit(
            assignment_id=assignment.pk, rater=writer, text=reply
        )
    for _, _, _, decision, detail in WORK:
        task = demonstration_services.task_for_rater(project=project, rater=reviewer)
        assert task is not None and task.review is not None
        demonstration_reviews.review_submit(
            review_id=task.review.pk,
            reviewer=reviewer,
            decision=decision,
            reason=detail if decision == "reject" else "",
            text=detail if decision == "edit" else None,
        )
    return project
