"""The lead's hand on the queue: release a stuck lease so its prompt goes back to the pool."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core.errors import Conflict, NotFound
from labeling.models import Assignment, AssignmentStatus, AuditAction, Project
from labeling.services.audit import audit_record


@transaction.atomic
def lease_release(*, project: Project, assignment_id: int, by: User | None) -> Assignment:
    """Expire a live lease now: the slot it held is free again, so the prompt is served to
    the next rater; the rater who held it can no longer submit once it is taken over.
    Audited with the rater, the prompt and when the lease began."""
    assignment = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("rater")
        .filter(pk=assignment_id, project=project)
        .first()
    )
    if assignment is None:
        raise NotFound("no such lease in this project", field="assignment")
    now = timezone.now()
    if assignment.status != AssignmentStatus.LEASED or assignment.expires_at <= now:
        raise Conflict("this lease has already ended", code="lease_not_live", field="assignment")
    # expires_at must stay after leased_at (a check constraint), even for a lease made now.
    assignment.expires_at = max(now, assignment.leased_at + timedelta(microseconds=1))
    assignment.save(update_fields=["expires_at"])
    audit_record(
        action=AuditAction.LEASE_RELEASE,
        actor=by,
        project=project,
        target=assignment.rater.get_username(),
        changes={
            "assignment": assignment.pk,
            "prompt": assignment.prompt_id,
            "leased_at": assignment.leased_at,
        },
    )
    return assignment
