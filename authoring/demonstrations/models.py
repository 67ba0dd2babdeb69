"""Demonstrations: a rater's ideal reply to a prompt (written, or rewritten from the best of
the ranked responses) and its review by a second rater."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from labeling.models import Assignment, AssignmentStatus, Project, Prompt, Response
from rankings.models import Ranking


class DemonstrationMode(models.TextChoices):
    WRITE = "write", "Write the ideal reply"
    RANK_THEN_REWRITE = "rank_then_rewrite", "Rank the responses, then rewrite the best"


class DemonstrationStatus(models.TextChoices):
    UNREVIEWED = "unreviewed", "Not routed to review"
    PENDING_REVIEW = "pending_review", "Waiting for review"
    ACCEPTED = "accepted", "Accepted"
    EDITED = "edited", "Accepted with the reviewer's edits"
    REJECTED = "rejected", "Rejected"


ACCEPTED_STATUSES = (DemonstrationStatus.ACCEPTED, DemonstrationStatus.EDITED)
"""Reviewed and kept: what exports take by default."""


class Demonstration(models.Model):
    """One rater's ideal assistant reply for one leased prompt (one per assignment)."""

    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, related_name="demonstration"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="demonstrations")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="demonstrations")
    writer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="demonstrations"
    )
    mode = models.CharField(max_length=20, choices=DemonstrationMode.choices)
    text = models.TextField(help_text="The reply as the writer submitted it (markdown).")
    final_text = models.TextField(
        help_text="The reply as exported: the writer's, or the reviewer's edit of it."
    )
    ranking = models.OneToOneField(
        Ranking,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="demonstration",
        help_text="Rank then rewrite: the writer's ranking of the responses.",
    )
    original_response = models.ForeignKey(
        Response,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Rank then rewrite: the response the writer rewrote.",
    )
    original_text = models.TextField(
        blank=True, default="", help_text="That response's text when it was rewritten."
    )
    diff = models.TextField(
        blank=True, default="", help_text="Unified diff from the original response to the text."
    )
    edit_distance = models.PositiveIntegerField(
        null=True, blank=True, help_text="Levenshtein distance in characters, original → text."
    )
    seconds = models.FloatField(null=True, blank=True)
    guidelines_version = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=20, choices=DemonstrationStatus.choices, default=DemonstrationStatus.UNREVIEWED
    )
    created_at = models.DateTimeField(default=timezone.now)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DemonstrationStatus.values),
                name="demonstration_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(mode__in=DemonstrationMode.values), name="demonstration_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(mode=DemonstrationMode.WRITE) | Q(ranking__isnull=False),
                name="demonstration_rewrite_has_ranking",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status", "id"], name="demonstration_status"),
            models.Index(fields=["project", "writer"], name="demonstration_writer"),
        ]

    def __str__(self) -> str:
        return f"demonstration {self.pk} ({self.status})"


class ReviewDecision(models.TextChoices):
    ACCEPT = "accept", "Accept"
    EDIT = "edit", "Accept with edits"
    REJECT = "reject", "Reject"


class DemonstrationReview(models.Model):
    """A demonstration leased to a reviewer (never its writer), then their decision."""

    demonstration = models.ForeignKey(
        Demonstration, on_delete=models.CASCADE, related_name="reviews"
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="demonstration_reviews"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="demonstration_reviews"
    )
    writer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The demonstration's writer, kept here so the database refuses self-review.",
    )
    status = models.CharField(
        max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED
    )
    leased_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=8, choices=ReviewDecision.choices, blank=True)
    reason = models.TextField(blank=True, default="")
    edited_text = models.TextField(blank=True, default="")
    edit_distance = models.PositiveIntegerField(
        null=True, blank=True, help_text="Edit: Levenshtein distance in characters, text → edit."
    )
    skip_reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["demonstration", "reviewer"], name="review_one_per_reviewer"
            ),
            models.UniqueConstraint(
                fields=["demonstration"],
                condition=Q(status=AssignmentStatus.SUBMITTED),
                name="review_one_decision",
            ),
            models.CheckConstraint(condition=~Q(reviewer=F("writer")), name="review_not_by_writer"),
            models.CheckConstraint(
                condition=Q(status__in=AssignmentStatus.values), name="review_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(decision="") | Q(decision__in=ReviewDecision.values),
                name="review_decision_valid",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("leased_at")), name="review_expires_after_lease"
            ),
        ]
        indexes = [
            models.Index(fields=["reviewer", "project", "status"], name="review_reviewer_status"),
            models.Index(fields=["project", "writer", "status"], name="review_writer_status"),
        ]

    def __str__(self) -> str:
        return f"review {self.pk} of demonstration {self.demonstration_id} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()
