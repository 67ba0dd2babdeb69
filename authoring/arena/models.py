"""Arena battles: a rater's conversation with two anonymous endpoints, a vote per turn.

Each turn is an ordinary prompt of the project (the shared context plus the rater's new
message) with one response per side and an assignment leased to the rater; a counted vote
is an ordinary pairwise `Ranking` of that assignment. So the leaderboard, agreement and the
preference exports read arena votes like any other ranking. The rows here say what only
the arena knows: which endpoint sits on which side, the streams' states, the vote as cast
(with "both bad"), and whether it counts.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from labeling.models import Assignment, Project, Prompt, Response
from llm.models import ModelEndpoint


class Battle(models.Model):
    """Two endpoints, drawn for one rater, over one or more turns."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="arena_battles")
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="arena_battles"
    )
    endpoint_a = models.ForeignKey(
        ModelEndpoint, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    endpoint_b = models.ForeignKey(
        ModelEndpoint, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    model_a = models.CharField(max_length=100, help_text="Side A's endpoint name, as recorded.")
    model_b = models.CharField(max_length=100, help_text="Side B's endpoint name, as recorded.")
    created_at = models.DateTimeField(default=timezone.now)
    revealed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the rater saw the models; later votes don't count."
    )
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="Ended: a new battle was started or a turn skipped."
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "rater"],
                condition=Q(closed_at__isnull=True),
                name="arena_battle_one_open_per_rater",
            ),
        ]
        indexes = [models.Index(fields=["project", "model_a", "model_b"], name="arena_pair")]

    def __str__(self) -> str:
        return f"arena battle {self.pk}"


class Side(models.TextChoices):
    A = "a", "A"
    B = "b", "B"


class StreamState(models.TextChoices):
    PENDING = "pending", "Not started"
    STREAMING = "streaming", "Streaming"
    DONE = "done", "Done"
    FAILED = "failed", "Failed or cut short"


FINISHED_STATES = (StreamState.DONE, StreamState.FAILED)


class Choice(models.TextChoices):
    A = "a", "A is better"
    B = "b", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both are bad"


class VoidReason(models.TextChoices):
    COUNTED = "", "Counted"
    REVEALED = "revealed", "Cast after the models were revealed"
    DAILY_CAP = "daily_cap", "Over the rater's daily cap"


class Turn(models.Model):
    battle = models.ForeignKey(Battle, on_delete=models.CASCADE, related_name="turns")
    number = models.PositiveSmallIntegerField(help_text="1 for the opening message.")
    prompt = models.OneToOneField(Prompt, on_delete=models.CASCADE, related_name="arena_turn")
    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, related_name="arena_turn"
    )
    response_a = models.OneToOneField(Response, on_delete=models.PROTECT, related_name="+")
    response_b = models.OneToOneField(Response, on_delete=models.PROTECT, related_name="+")
    state_a = models.CharField(
        max_length=16, choices=StreamState.choices, default=StreamState.PENDING
    )
    state_b = models.CharField(
        max_length=16, choices=StreamState.choices, default=StreamState.PENDING
    )
    choice = models.CharField(max_length=16, choices=Choice.choices, blank=True, default="")
    strength = models.PositiveSmallIntegerField(null=True, blank=True)
    voted_at = models.DateTimeField(null=True, blank=True)
    counted = models.BooleanField(default=False)
    void_reason = models.CharField(
        max_length=16, choices=VoidReason.choices, blank=True, default=""
    )
    context_side = models.CharField(
        max_length=1,
        choices=Side.choices,
        blank=True,
        default="",
        help_text="Whose reply the next turn continues from (the preferred one).",
    )

    class Meta:
        ordering = ["battle_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["battle", "number"], name="arena_turn_unique_number"),
            models.CheckConstraint(
                condition=Q(choice__in=[*Choice.values, ""]), name="arena_turn_choice_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["voted_at"], condition=Q(counted=True), name="arena_turn_counted"),
        ]

    def __str__(self) -> str:
        return f"turn {self.number} of battle {self.battle_id}"
