"""Submitted rankings and the agreement runs computed over them: a run's project metrics,
a score row per rater (the columns of ``rankings.stats.registry``), a row per prompt, flags."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.jobs import Job, JobStatus
from labeling.models import Assignment, Project, Prompt


class Ranking(models.Model):
    """A rater's ordering of all shown responses, best to worst, as tie groups of ids."""

    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="ranking")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rankings")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="rankings")
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rankings"
    )
    groups = models.JSONField(help_text="Tie groups best→worst, e.g. [[12], [11, 13]].")
    ratings = models.JSONField(default=dict, blank=True)
    rationale = models.TextField(blank=True, default="")
    seconds = models.FloatField(null=True, blank=True)
    strength = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Pairwise strength of preference: 3 much better … 0 about the same.",
    )
    is_repeat = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)
    revisions = models.JSONField(
        default=list,
        blank=True,
        help_text="Earlier versions replaced by an undo and resubmit; nothing is deleted.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(seconds__isnull=True) | Q(seconds__gte=0),
                name="ranking_seconds_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(strength__isnull=True) | Q(strength__lte=3),
                name="ranking_strength_range",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "id"], name="ranking_project_id"),
            # A run's raters in one index probe each (``postgresql.counted_rater_ids``).
            models.Index(fields=["project", "rater", "id"], name="ranking_project_rater"),
        ]

    def __str__(self) -> str:
        return f"ranking {self.pk} by {self.rater_id}"


class AgreementRun(Job):
    """One computation of a project's agreement: a job (``core.jobs``) whose result is the
    metrics here, a ``RaterScore`` per rater and a ``PromptAgreement`` per prompt."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="agreement_runs")
    trigger = models.CharField(max_length=32, default="manual")
    last_ranking_id = models.BigIntegerField(
        default=0, help_text="Highest ranking id the run saw; same data, same run."
    )
    n_prompts = models.PositiveIntegerField(default=0)
    n_rankings = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="agreement_run_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"agreement run {self.pk} ({self.status})"


class AgreementRunPart(Job):
    """One prompt range of an agreement run, in one of the run's two passes: a job of the one
    lifecycle, so the worker that runs the run and any other worker can each claim parts
    (``rankings.runs.parts``). ``payload`` holds what a part computed when a worker other
    than the run's computed it (its sums, and its labels for the reliability fit) until
    the run is stored; the rows stay as the record of who computed what."""

    run = models.ForeignKey(AgreementRun, on_delete=models.CASCADE, related_name="parts")
    attempt = models.PositiveSmallIntegerField(help_text="The run's attempt the part is of.")
    phase = models.PositiveSmallIntegerField()
    index = models.PositiveIntegerField()
    prompt_low = models.BigIntegerField(help_text="The range starts above this prompt id.")
    prompt_high = models.BigIntegerField(help_text="The range ends at this prompt id.")
    worker = models.CharField(max_length=200, blank=True, default="")
    payload = models.BinaryField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "attempt", "phase", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "attempt", "phase", "index"], name="agreement_run_part_unique"
            ),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="agreement_run_part_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"part {self.index} of pass {self.phase} of agreement run {self.run_id}"


class RaterScore(models.Model):
    """One rater's statistics in one run: a column per ``rankings.stats.registry`` statistic
    (the registry says what each one is; the tests hold the two to each other)."""

    run = models.ForeignKey(AgreementRun, on_delete=models.CASCADE, related_name="rater_scores")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    rankings = models.PositiveIntegerField(default=0)
    agreement = models.FloatField(null=True, blank=True)
    agreement_low = models.FloatField(null=True, blank=True)
    agreement_high = models.FloatField(null=True, blank=True)
    compared_pairs = models.PositiveIntegerField(default=0)
    gold_accuracy = models.FloatField(null=True, blank=True)
    gold_pairs = models.PositiveIntegerField(default=0)
    self_consistency = models.FloatField(null=True, blank=True)
    repeat_pairs = models.PositiveIntegerField(default=0)
    first_shown_win_rate = models.FloatField(
        null=True, blank=True, help_text="Share of shown-adjacent pairs won by the earlier card."
    )
    position_p_value = models.FloatField(null=True, blank=True)
    position_pairs = models.PositiveIntegerField(default=0)
    straight_lining_rate = models.FloatField(
        null=True, blank=True, help_text="Share of rankings equal to the shown order."
    )
    median_seconds = models.FloatField(null=True, blank=True)
    speed_ratio = models.FloatField(
        null=True, blank=True, help_text="Rater's median seconds over the project's, by length."
    )
    tie_rate = models.FloatField(null=True, blank=True)
    longer_win_rate = models.FloatField(
        null=True, blank=True, help_text="Share of decided pairs won by the longer response."
    )
    agreement_no_ties = models.FloatField(null=True, blank=True)
    agreement_no_ties_low = models.FloatField(null=True, blank=True)
    agreement_no_ties_high = models.FloatField(null=True, blank=True)
    compared_pairs_no_ties = models.PositiveIntegerField(default=0)
    gold_rankings = models.PositiveIntegerField(default=0)
    repeat_rankings = models.PositiveIntegerField(default=0)
    straight_lined = models.PositiveIntegerField(default=0)
    straight_lining_chance = models.FloatField(null=True, blank=True)
    timed_rankings = models.PositiveIntegerField(default=0)
    labelled_pairs = models.PositiveIntegerField(default=0)
    length_pairs = models.PositiveIntegerField(default=0)
    reliability_weight = models.FloatField(null=True, blank=True)
    competence = models.FloatField(
        null=True, blank=True, help_text="Share of labels the reliability model calls careful."
    )
    competence_low = models.FloatField(null=True, blank=True)
    competence_high = models.FloatField(null=True, blank=True)
    reliability_evidence = models.FloatField(
        null=True, blank=True, help_text="Log likelihood ratio, careless or biased over careful."
    )
    evidence_per_task = models.FloatField(null=True, blank=True)
    first_shown_share = models.FloatField(null=True, blank=True)
    longer_share = models.FloatField(null=True, blank=True)
    reliability_labels = models.PositiveIntegerField(default=0)
    reliability_tasks = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["run_id", "rater_id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "rater"], name="rater_score_unique"),
        ]

    def __str__(self) -> str:
        return f"score of rater {self.rater_id} in run {self.run_id}"


class PromptAgreement(models.Model):
    """One prompt's consensus ranking and agreement as of a run."""

    # No database constraints: a run stores hundreds of thousands of these rows at once and
    # checking each one's keys was a large part of storing them. The rows are only written
    # by ``runs.services.agreement_run_compute`` with ids it just read, and deletes still cascade
    # (Django collects the rows in Python). No index of its own for the run or the prompt
    # either: every read names the run, and the unique (run, prompt) index serves it; the
    # only lookup by prompt alone, a deleted prompt's cascade, is one statement for the
    # whole batch. (An index on the prompt alone served no read and took as much room as
    # the primary key: ~210 MB at the 10M bench's runs.)
    run = models.ForeignKey(
        AgreementRun,
        on_delete=models.CASCADE,
        related_name="prompt_rows",
        db_constraint=False,
        db_index=False,
    )
    prompt = models.ForeignKey(
        Prompt,
        on_delete=models.CASCADE,
        related_name="agreement_rows",
        db_constraint=False,
        db_index=False,
    )
    n_rankings = models.PositiveIntegerField(default=0)
    agreement = models.FloatField(null=True, blank=True, help_text="Pairwise agreement.")
    consensus = models.JSONField(
        default=list, blank=True, help_text="Consensus tie groups of response ids, best first."
    )
    scores = models.JSONField(
        default=dict, blank=True, help_text="Consensus strength per response id."
    )
    method = models.CharField(max_length=32, default="bradley_terry")

    class Meta:
        ordering = ["run_id", "prompt_id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "prompt"], name="prompt_agreement_unique"),
        ]
        # (agreement, prompt) orders the quality page's hard prompts and pages the prompt
        # browser's agreement orders with a keyset, ties included.
        indexes = [models.Index(fields=["run", "agreement", "prompt"], name="prompt_agreement_low")]

    def __str__(self) -> str:
        return f"prompt {self.prompt_id} in run {self.run_id}"


class FlagCode(models.TextChoices):
    LOW_AGREEMENT = "LOW_AGREEMENT", "Low agreement with other raters"
    GOLD_FAILURES = "GOLD_FAILURES", "Fails gold prompts"
    SELF_INCONSISTENT = "SELF_INCONSISTENT", "Inconsistent on repeats"
    POSITION_BIAS = "POSITION_BIAS", "Prefers the first-shown response"
    STRAIGHT_LINING = "STRAIGHT_LINING", "Ranks in shown order"
    TOO_FAST = "TOO_FAST", "Much faster than the project"
    UNRELIABLE = "UNRELIABLE", "Careless or biased (sequential test)"
    ARENA_OUTLIER = "ARENA_OUTLIER", "Arena votes at odds with the leaderboard"
    DEMONSTRATIONS_REJECTED = (
        "DEMONSTRATIONS_REJECTED",
        "Demonstrations often rejected in review",
    )


class FlagStatus(models.TextChoices):
    OPEN = "open", "Open"
    DISMISSED = "dismissed", "Dismissed"
    RATER_PAUSED = "rater_paused", "Rater paused"


class Flag(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="flags")
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quality_flags"
    )
    run = models.ForeignKey(
        AgreementRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="flags"
    )
    code = models.CharField(max_length=32, choices=FlagCode.choices)
    evidence = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=FlagStatus.choices, default=FlagStatus.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="resolved_flags",
    )
    note = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "rater", "code"],
                condition=Q(status="open"),
                name="flag_one_open_per_rater_code",
            ),
            models.CheckConstraint(condition=Q(code__in=FlagCode.values), name="flag_code_valid"),
            models.CheckConstraint(
                condition=Q(status__in=FlagStatus.values), name="flag_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} on rater {self.rater_id} ({self.status})"
