"""The audit log's one write: `audit_record`, called by every service a lead or engineer
acts through (settings, members, invites, imports, gold, flags, exports, tokens)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import AnonymousUser, User

from labeling.models import AuditEvent, Project

Changes = dict[str, dict[str, Any]]


def audit_record(
    *,
    action: str,
    actor: User | AnonymousUser | None,
    project: Project | None = None,
    target: str = "",
    changes: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event; runs inside the caller's transaction, so an action that rolls
    back leaves no record and a recorded action cannot be lost."""
    person = actor if isinstance(actor, User) else None
    return AuditEvent.objects.create(
        project=project,
        actor=person,
        actor_name=person.get_username() if person is not None else "",
        action=action,
        target=str(target)[:200],
        changes=dict(changes or {}),
    )


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> Changes:
    """`{name: {"old": …, "new": …}}` for each field whose value differs."""
    return {
        name: {"old": before.get(name), "new": value}
        for name, value in after.items()
        if before.get(name) != value
    }


def field_values(instance: Any, names: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in names}
