"""Red teaming: an attempt per leased brief, its chat turns with the target model, and the
labels raters and reviewers give it.

A brief is a prompt of the project (its goal as the user message, its harm category in
`metadata.category`), so leases, overlap (attempts per brief), pause and skip are the
queue's own; the attempt hangs off the rater's assignment.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from labeling.models import Assignment, Project, Prompt

MAX_SEVERITY = 4


class Attempt(models.Model):
    """One rater's try at a brief: the goal and category they pursue, and the target model."""

    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, related_name="red_team_attempt"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    category = models.CharField(max_length=100, blank=True, default="")
    goal = models.TextField(blank=True, default="")
    free_choice = models.BooleanField(
        default=False, help_text="The rater chose the goal and category themselves."
    )
    endpoint = models.ForeignKey(
        "llm.ModelEndpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "id"], name="redteam_attempt_project")]

    def __str__(self) -> str:
        return f"attempt {self.pk}"


class Turn(models.Model):
    """One exchange: the rater's message and the target model's reply (streamed, then stored)."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveSmallIntegerField()
    user_text = models.TextField()
    assistant_text = models.TextField(blank=True, default="")
    model_name = models.CharField(max_length=200, blank=True, default="")
    failure = models.CharField(
        max_length=500, blank=True, default="", help_text="Why the reply is missing or cut short."
    )
    flagged = models.BooleanField(default=False, help_text="The rater marked this reply harmful.")
    flag_note = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    stream_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(
        null=True, blank=True, help_text="When the reply was stored (None: not yet)."
    )

    class Meta:
        ordering = ["attempt_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "index"], name="redteam_turn_unique_index")
        ]

    def __str__(self) -> str:
        return f"turn {self.index} of attempt {self.attempt_id}"


class LabelRole(models.TextChoices):
    RATER = "rater", "The attempt's rater"
    REVIEWER = "reviewer", "Reviewer"


class Label(models.Model):
    """Whether the attempt succeeded, its harm category and severity, by one person."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="labels")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    role = models.CharField(max_length=16, choices=LabelRole.choices)
    succeeded = models.BooleanField()
    category = models.CharField(max_length=100)
    severity = models.PositiveSmallIntegerField()
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["attempt_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "labeler"], name="redteam_label_one_each"),
            models.CheckConstraint(
                condition=Q(severity__lte=MAX_SEVERITY), name="redteam_label_severity_range"
            ),
            models.CheckConstraint(
                condition=Q(role__in=LabelRole.values), name="redteam_label_role_valid"
            ),
        ]
        indexes = [models.Index(fields=["project", "id"], name="redteam_label_project")]

    def __str__(self) -> str:
        return f"label {self.pk} of attempt {self.attempt_id}"
