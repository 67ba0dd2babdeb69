"""Projects, their members and invites, prompts with responses, assignments (leases), API
tokens and the audit log.

Over 400 lines because Django wants an app's models in one module; each model is short
and keeps its own invariants (constraints, indexes) beside its fields.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length, Now
from django.utils import timezone

from core.jobs import Job

MIN_RESPONSES = 2
MAX_RESPONSES = 9


class TaskKind(models.TextChoices):
    """What a project's raters do; `labeling.task_kinds` holds each kind's handler."""

    RANK = "rank", "Rank responses"
    DEMONSTRATION = "demonstration", "Write demonstrations"
    RED_TEAM = "red_team", "Red-team a model"
    ARENA = "arena", "Compare live models (arena)"


class Role(models.TextChoices):
    RATER = "rater", "Rater"
    LEAD = "lead", "Lead"
    ENGINEER = "engineer", "ML engineer"


def new_rater_key_salt() -> str:
    return secrets.token_hex(16)


class Project(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to raters.")
    guidelines_version = models.PositiveIntegerField(
        default=1, editable=False, help_text="Goes up by one each time the guidelines change."
    )
    guidelines_updated_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the guidelines last changed; raters who saw them before see them again.",
    )
    task_kind = models.CharField(
        max_length=20,
        choices=TaskKind.choices,
        default=TaskKind.RANK,
        help_text="What raters do: rank responses, write demonstrations, red-team, arena.",
    )
    task_options = models.JSONField(
        default=dict,
        blank=True,
        help_text="The task kind's own settings, checked by the kind's handler.",
    )
    overlap = models.PositiveSmallIntegerField(
        default=3, help_text="Complete rankings collected per prompt from distinct raters."
    )
    lease_seconds = models.PositiveIntegerField(default=600)
    allow_ties = models.BooleanField(default=True)
    gold_rate = models.FloatField(
        default=0.1, help_text="Share of served tasks that are gold prompts (when any are left)."
    )
    repeat_rate = models.FloatField(
        default=0.0, help_text="Share of served tasks that repeat a prompt the rater ranked."
    )
    repeat_delay_seconds = models.PositiveIntegerField(
        default=1800, help_text="A ranking is repeated no sooner than this after it was made."
    )
    max_overlap = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Adaptive overlap: low-agreement prompts get extra raters up to this many.",
    )
    adaptive_agreement_threshold = models.FloatField(
        null=True, blank=True, help_text="Prompt agreement below this asks for extra raters."
    )
    rubric = models.JSONField(
        default=list,
        blank=True,
        help_text="Rating scales shown under each response: "
        '[{"key": "helpful", "label": "Helpful", "kind": "scale", "min": 1, "max": 7, '
        '"required": false}, {"key": "unsafe", "label": "Unsafe", "kind": "checkbox"}]',
    )
    require_rationale = models.BooleanField(default=False)
    quality_settings = models.JSONField(
        default=dict, blank=True, help_text="Flag thresholds overriding the defaults."
    )
    agreement_every_n_rankings = models.PositiveIntegerField(
        default=50, help_text="Queue an agreement run after this many new rankings (0: off)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="created_projects"
    )
    created_at = models.DateTimeField(default=timezone.now)
    rater_key_salt = models.CharField(
        max_length=64,
        default=new_rater_key_salt,
        editable=False,
        help_text="Secret behind the pseudonymous rater keys in exports; stable per project.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )
    staged_for = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        editable=False,
        help_text="Set on the hidden stage of an import written by several processes "
        "(labeling.services.staged_import): its prompts move to this project when it is "
        "published. Stages are listed nowhere.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(overlap__gte=1) & Q(overlap__lte=100), name="project_overlap_range"
            ),
            models.CheckConstraint(condition=Q(lease_seconds__gte=30), name="project_lease_min"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_range"
            ),
            models.CheckConstraint(
                condition=Q(repeat_rate__gte=0) & Q(repeat_rate__lte=1),
                name="project_repeat_rate_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class MemberStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.RATER)
    status = models.CharField(
        max_length=16, choices=MemberStatus.choices, default=MemberStatus.ACTIVE
    )
    excluded = models.BooleanField(
        default=False, help_text="Leave this member's rankings out of agreement and exports."
    )
    joined_at = models.DateTimeField(default=timezone.now)
    guidelines_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="When the rater last confirmed the guidelines."
    )
    queue_frontier = models.BigIntegerField(
        default=0,
        editable=False,
        help_text="The furthest prompt id the queue has leased to this rater; their next scan "
        "starts just behind it, so it never walks back through all they have done.",
    )

    class Meta:
        ordering = ["project_id", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
            models.CheckConstraint(
                condition=Q(status__in=MemberStatus.values), name="membership_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"

    def needs_guidelines(self, project: Project) -> bool:
        """The rater must read the guidelines before the next task: never confirmed, or
        confirmed before they last changed. `project` is this membership's project
        (passed in, so no query is needed)."""
        if not project.guidelines.strip():
            return False
        if self.guidelines_seen_at is None:
            return True
        changed = project.guidelines_updated_at
        return changed is not None and self.guidelines_seen_at < changed


def new_invite_code() -> str:
    return secrets.token_urlsafe(16)


def default_invite_expiry() -> datetime:
    return timezone.now() + timedelta(days=30)


class Invite(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invites")
    code = models.CharField(max_length=64, unique=True, default=new_invite_code)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.RATER)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=default_invite_expiry)
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.role} invite to {self.project_id}"

    def is_usable(self) -> bool:
        if self.expires_at <= timezone.now():
            return False
        return self.max_uses is None or self.uses < self.max_uses


class Prompt(models.Model):
    # No index of its own: the (project, id) index answers every lookup by project, and
    # each index on the prompt table is written by every imported prompt.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="prompts", db_index=False
    )
    external_id = models.CharField(max_length=200, blank=True, default="")
    messages = models.JSONField(help_text="Conversation as a list of {role, content}.")
    metadata = models.JSONField(default=dict, blank=True)
    gold_ranking = models.JSONField(
        null=True, blank=True, help_text="Reference ranking as tie groups of response ids."
    )
    is_gold = models.BooleanField(default=False)
    is_complete = models.BooleanField(
        default=False, help_text="Set once `overlap` rankings are in; keeps the queue scan short."
    )
    extra_raters = models.PositiveSmallIntegerField(
        default=0, help_text="Raters asked for beyond the project's overlap (adaptive overlap)."
    )
    extra_reason = models.CharField(max_length=300, blank=True, default="")
    n_responses = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        help_text="How many responses the prompt has (kept by the services); it is served "
        f"only from {MIN_RESPONSES} on, the rest wait for generation.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    archived_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Archived by a lead: out of the queue and, by default, out of exports.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"],
                condition=~Q(external_id=""),
                name="prompt_unique_external_id",
            ),
            models.CheckConstraint(
                condition=Q(is_gold=False) | Q(gold_ranking__isnull=False),
                name="prompt_gold_has_ranking",
            ),
        ]
        indexes = [
            models.Index(
                fields=["project", "id"],
                condition=Q(is_complete=False),
                name="prompt_open_queue",
            ),
            # The prompt browser pages through a project by id (newest first); its rarer
            # states have small partial indexes of their own.
            models.Index(fields=["project", "id"], name="prompt_project_id"),
            models.Index(fields=["project", "id"], condition=Q(is_gold=True), name="prompt_gold"),
            models.Index(
                fields=["project", "id"], condition=Q(extra_raters__gt=0), name="prompt_reopened"
            ),
            models.Index(
                fields=["project", "id"],
                condition=Q(archived_at__isnull=False),
                name="prompt_archived",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id or f"prompt {self.pk}"


class Response(models.Model):
    # No index of its own: the unique (prompt, position) index answers every prompt lookup.
    prompt = models.ForeignKey(
        Prompt, on_delete=models.CASCADE, related_name="responses", db_index=False
    )
    external_id = models.CharField(max_length=200, blank=True, default="")
    position = models.PositiveSmallIntegerField(help_text="Order in the imported data.")
    text = models.TextField()
    # Kept by the database from the text, whatever writes it: the agreement run's length
    # bias reads every response's length, and with this column in the unique index below
    # it does so from the index alone, never reading the texts.
    text_length = models.GeneratedField(
        expression=Length("text"), output_field=models.PositiveIntegerField(), db_persist=True
    )
    model_name = models.CharField(max_length=200, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["prompt_id", "position"]
        constraints = [
            # On PostgreSQL its index also carries id and text_length (migration 0013): it
            # covers what the agreement reader asks of a prompt range's responses, so one
            # index serves both and an import writes one entry per response, not two.
            models.UniqueConstraint(fields=["prompt", "position"], name="response_unique_position"),
            models.CheckConstraint(
                condition=Q(position__lt=MAX_RESPONSES), name="response_position_range"
            ),
        ]

    def __str__(self) -> str:
        return self.external_id or f"response {self.pk}"


class PromptSearchText(models.Model):
    """A prompt's text as the prompt browser searches it (PostgreSQL), one row per prompt.

    Triggers on the prompt table (labeling migration 0010) write the row with the prompt,
    rewrite it when the prompt's messages change and delete it with the prompt, so the text
    is always current, whatever wrote the prompt. The trigram index covers only rows
    `indexed`: a new or changed prompt's row is left out of it, so an import never waits on
    the index; a `PromptSearchJob` marks the rows indexed after the import commits, a batch
    at a time, and the search reads rows not yet indexed the slow way meanwhile.

    No database constraints: checking one per imported row would cost the import what the
    index did; the triggers keep the rows in step with the prompts instead."""

    prompt = models.OneToOneField(
        Prompt,
        primary_key=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    project = models.ForeignKey(
        Project, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    text = models.TextField(help_text="labeling_prompt_text(messages), kept by the triggers.")
    indexed = models.BooleanField(
        default=False, db_default=False, help_text="In the trigram index (set by the job)."
    )
    changed_at = models.DateTimeField(
        default=timezone.now, db_default=Now(), help_text="When the text was last written."
    )

    class Meta:
        indexes = [
            # The rows the jobs and the search's slow way read: few, recent.
            models.Index(
                fields=["project", "prompt"],
                condition=Q(indexed=False),
                name="prompt_search_pending",
            )
        ]

    def __str__(self) -> str:
        return f"search text of prompt {self.prompt_id}"


class PromptSearchJob(Job):
    """Indexes a project's prompts not yet in the search index, in batches
    (`labeling.services.search_index`); queued by each import, and by the sweep for prompts
    left behind."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="prompt_search_jobs"
    )
    prompts_indexed = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["project", "status"], name="prompt_search_job_project")]

    def __str__(self) -> str:
        return f"search index of project {self.project_id} ({self.status})"


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired (taken over)"


class Assignment(models.Model):
    """One prompt leased to one rater; becomes `submitted` when its ranking arrives."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="assignments")
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="assignments",
        # No index of its own: `assignment_rater_status` starts with the rater, and a lone
        # rater index lets a planner with stale statistics walk a rater's whole history
        # where (rater, project, status) goes straight to their live leases.
        db_index=False,
    )
    status = models.CharField(
        max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED
    )
    shown_order = models.JSONField(help_text="Response ids in the order the rater saw them.")
    is_repeat = models.BooleanField(default=False)
    leased_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "rater"],
                condition=Q(is_repeat=False),
                name="assignment_one_per_prompt_rater",
            ),
            models.UniqueConstraint(
                fields=["prompt", "rater"],
                condition=Q(is_repeat=True),
                name="assignment_one_repeat_per_prompt_rater",
            ),
            models.CheckConstraint(
                condition=Q(status__in=AssignmentStatus.values), name="assignment_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("leased_at")),
                name="assignment_expires_after_lease",
            ),
        ]
        indexes = [
            models.Index(fields=["prompt", "status"], name="assignment_prompt_status"),
            models.Index(fields=["rater", "project", "status"], name="assignment_rater_status"),
            # The prompt browser's "skipped" filter and "most skipped" order.
            models.Index(
                fields=["project", "prompt"],
                condition=Q(status="skipped"),
                name="assignment_skipped",
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


class AuditAction(models.TextChoices):
    PROJECT_CREATE = "project.create", "Project created"
    PROJECT_SETTINGS = "project.settings", "Settings changed"
    MEMBER_UPDATE = "member.update", "Member changed"
    INVITE_CREATE = "invite.create", "Invite created"
    PROMPTS_IMPORT = "prompts.import", "Prompts imported"
    GOLD_SET = "gold.set", "Gold ranking set"
    GOLD_CLEAR = "gold.clear", "Gold ranking removed"
    PROMPTS_ARCHIVE = "prompts.archive", "Prompts archived"
    PROMPTS_UNARCHIVE = "prompts.unarchive", "Prompts restored from the archive"
    PROMPTS_REOPEN = "prompts.reopen", "Prompts reopened for more raters"
    RESPONSES_EDIT = "responses.edit", "Responses edited"
    FLAG_DISMISS = "flag.dismiss", "Flag dismissed"
    FLAG_PAUSE_RATER = "flag.pause_rater", "Flag: rater paused"
    FLAG_EXCLUDE_RATER = "flag.exclude_rater", "Flag: rankings excluded"
    EXPORT_CREATE = "export.create", "Export created"
    EXPORT_DELETE = "export.delete", "Export files deleted"
    TOKEN_CREATE = "token.create", "API token created"
    TOKEN_REVOKE = "token.revoke", "API token revoked"
    LEASE_RELEASE = "lease.release", "Lease released"


class AppendOnly(Exception):
    """The audit log is never changed or deleted, only added to."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: object) -> int:
        raise AppendOnly("audit events cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnly("audit events cannot be deleted")


class AuditEvent(models.Model):
    """Who did what, when: one row per lead or engineer action, never changed afterwards.

    Project and actor are kept as plain ids (no database constraint, no cascade), so the
    record outlives a deleted project or account; `actor_name` keeps the name as it was.
    An empty actor is the system (e.g. the quality rules pausing a rater)."""

    created_at = models.DateTimeField(default=timezone.now)
    project = models.ForeignKey(
        Project,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="audit_events",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=40, choices=AuditAction.choices)
    target = models.CharField(max_length=200, blank=True, default="")
    changes = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text='What changed: {"field": {"old": …, "new": …}}, or the action\'s details.',
    )

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "-id"], name="audit_event_project")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name or 'system'}: {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("audit events cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnly("audit events cannot be deleted")

    def change_lines(self) -> list[str]:
        """`field: old → new` for changed settings, `name: value` for other details."""
        lines = []
        for name, value in (self.changes or {}).items():
            if isinstance(value, dict) and set(value) == {"old", "new"}:
                lines.append(f"{name}: {_shown(value['old'])} → {_shown(value['new'])}")
            else:
                lines.append(f"{name}: {_shown(value)}")
        return lines


def _shown(value: Any) -> str:
    text = "—" if value is None or value == "" else str(value)
    return text if len(text) <= 120 else text[:119] + "…"


# The token model has its own area (labeling/accounts/); Django finds it through this module.
from labeling.accounts.models import ApiToken as ApiToken  # noqa: E402
from labeling.accounts.models import TokenOrigin as TokenOrigin  # noqa: E402
