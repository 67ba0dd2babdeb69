"""Projects, their members and invites, prompts with responses, and assignments (leases)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

MIN_RESPONSES = 2
MAX_RESPONSES = 9


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
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
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
    created_at = models.DateTimeField(default=timezone.now)

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
            )
        ]

    def __str__(self) -> str:
        return self.external_id or f"prompt {self.pk}"


class Response(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses")
    external_id = models.CharField(max_length=200, blank=True, default="")
    position = models.PositiveSmallIntegerField(help_text="Order in the imported data.")
    text = models.TextField()
    model_name = models.CharField(max_length=200, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["prompt_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "position"], name="response_unique_position"),
            models.CheckConstraint(
                condition=Q(position__lt=MAX_RESPONSES), name="response_position_range"
            ),
        ]

    def __str__(self) -> str:
        return self.external_id or f"response {self.pk}"


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
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments"
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
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()
