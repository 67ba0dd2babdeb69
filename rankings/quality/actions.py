"""The lead's actions on quality: dismiss a flag, pause or resume a rater, exclude a rater's
rankings from agreement and exports (which queues a new run). Nothing is deleted; each
action goes to the audit log.

Locks are taken in one order everywhere: the project row (no-key), then the membership,
then flags. The agreement run's findings lock the project first too, so a pause, an
exclusion and a run finishing at once queue behind each other instead of deadlocking.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import AuditAction, Membership, MemberStatus, Project
from rankings.models import Flag, FlagStatus
from rankings.runs import services as run_services

EXCLUSION_TRIGGER = "rater_excluded"


def flag_for_user(*, user: User, flag_id: int, lead_only: bool = True) -> Flag:
    """The flag if the user may act on it (lead) or see it; NotFound / NotAllowed otherwise."""
    flag = Flag.objects.select_related("project", "rater", "resolved_by").filter(pk=flag_id).first()
    if flag is None:
        raise NotFound("flag not found")
    try:
        labeling_selectors.project_for_user(
            user=user,
            project_id=flag.project_id,
            roles=labeling_selectors.LEAD_ROLES if lead_only else labeling_selectors.DATA_ROLES,
        )
    except NotFound:
        raise NotFound("flag not found") from None
    return flag


def _locked(flag: Flag) -> Flag:
    """The flag locked, after its project and the rater's membership (the one lock order)."""
    _lock_rater(project=flag.project, username=flag.rater.username)
    return Flag.objects.select_for_update().select_related("project", "rater").get(pk=flag.pk)


def _lock_rater(*, project: Project, username: str) -> Membership:
    Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
    return labeling_services.membership_lock(project=project, username=username)


def _audit_flag(action: str, flag: Flag, by: User, note: str) -> None:
    labeling_services.audit_record(
        action=action,
        actor=by,
        project=flag.project,
        target=flag.rater.username,
        changes={"flag": flag.pk, "code": flag.code, "note": note},
    )


def flag_dismiss(*, flag: Flag, by: User, note: str = "") -> Flag:
    """The lead looked and disagrees: the flag closes; dismissing twice is harmless."""
    note = _clean_note(note)
    with transaction.atomic():
        flag = _locked(flag)
        if flag.status == FlagStatus.DISMISSED:
            return flag
        if flag.status == FlagStatus.RATER_PAUSED:
            raise Conflict(
                "the rater was already paused for this flag; resume them instead",
                code="rater_paused",
            )
        flag.status, flag.resolved_by, flag.updated_at = FlagStatus.DISMISSED, by, timezone.now()
        flag.note = note
        flag.save(update_fields=["status", "resolved_by", "note", "updated_at"])
        _audit_flag(AuditAction.FLAG_DISMISS, flag, by, note)
    return flag


def flag_pause_rater(*, flag: Flag, by: User, note: str = "") -> Flag:
    """Pause the flagged rater; every open flag of theirs in the project closes with it."""
    note = _clean_note(note)
    with transaction.atomic():
        flag = _locked(flag)
        rater_pause(project=flag.project, username=flag.rater.username, by=by, note=note)
        if flag.status != FlagStatus.RATER_PAUSED:  # e.g. dismissed earlier, paused now
            flag.status, flag.resolved_by, flag.updated_at = (
                FlagStatus.RATER_PAUSED,
                by,
                timezone.now(),
            )
            flag.note = note or flag.note
            flag.save(update_fields=["status", "resolved_by", "note", "updated_at"])
        _audit_flag(AuditAction.FLAG_PAUSE_RATER, flag, by, note)
        flag.refresh_from_db()
    return flag


def flag_exclude_rater(*, flag: Flag, by: User, note: str = "") -> Flag:
    """Leave the rater's rankings out of agreement and exports, and pause them.

    Pausing goes with excluding: work that will not be used should not be collected, and
    it closes the flag (a flag has no "excluded" status). A new agreement run is queued.
    """
    note = _clean_note(note) or "Rankings excluded."
    with transaction.atomic():
        flag = _locked(flag)  # before the membership changes: the same order as pausing
        rater_set_excluded(project=flag.project, username=flag.rater.username, excluded=True, by=by)
        _audit_flag(AuditAction.FLAG_EXCLUDE_RATER, flag, by, note)
        return flag_pause_rater(flag=flag, by=by, note=note)


def rater_pause(*, project: Project, username: str, by: User, note: str = "") -> Membership:
    """Pause a rater (no more tasks, live leases released) and close their open flags."""
    with transaction.atomic():
        _lock_rater(project=project, username=username)
        membership = labeling_services.member_update(
            project=project, username=username, status=MemberStatus.PAUSED, by=by
        )
        Flag.objects.filter(
            project=project, rater_id=membership.user_id, status=FlagStatus.OPEN
        ).update(
            status=FlagStatus.RATER_PAUSED,
            resolved_by=by,
            note=_clean_note(note) or "Rater paused.",
            updated_at=timezone.now(),
        )
    return membership


def rater_resume(*, project: Project, username: str, by: User | None = None) -> Membership:
    with transaction.atomic():
        _lock_rater(project=project, username=username)
        return labeling_services.member_update(
            project=project, username=username, status=MemberStatus.ACTIVE, by=by
        )


def rater_set_excluded(
    *, project: Project, username: str, excluded: bool, by: User | None = None
) -> Membership:
    """Leave a rater's rankings out of (or back in) agreement and exports; queue a new run.

    Nothing is deleted. The run is queued on commit, so agreement reflects the change.
    """
    with transaction.atomic():
        before = _lock_rater(project=project, username=username)
        was_excluded = before.excluded
        membership = labeling_services.member_update(
            project=project, username=username, excluded=excluded, by=by
        )
        if was_excluded != excluded:
            run_services.agreement_run_request(project=project, trigger=EXCLUSION_TRIGGER)
    return membership


def _clean_note(note: Any) -> str:
    if note is None:
        return ""
    if not isinstance(note, str):
        raise InvalidInput("note must be text", field="note")
    text: str = note.strip()
    if len(text) > 500:
        raise InvalidInput("note must be at most 500 characters", field="note")
    return text
