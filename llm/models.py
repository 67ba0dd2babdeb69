"""Model endpoints, generation jobs with one row per planned call, and AI judge runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.jobs import Job, JobStatus
from labeling.models import Project, Prompt, Response

MAX_CONCURRENCY = 64


class ModelEndpoint(models.Model):
    """An OpenAI-compatible chat completions endpoint (vLLM, Ollama, TGI, LiteLLM, OpenAI…)
    with the generation parameters a project uses it with.

    The API key is stored encrypted (`llm.crypto`) and is write-only: nothing reads it back
    out except the client that calls the endpoint.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_endpoints")
    name = models.CharField(max_length=100, help_text="Shown to leads; never to raters.")
    base_url = models.URLField(max_length=500, help_text="e.g. http://localhost:11434/v1")
    model = models.CharField(max_length=200, help_text="The model id the server expects.")
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    temperature = models.FloatField(default=0.7)
    top_p = models.FloatField(default=1.0)
    max_tokens = models.PositiveIntegerField(default=1024)
    system_prompt = models.TextField(blank=True, default="")
    concurrency = models.PositiveSmallIntegerField(
        default=4, help_text="Calls in flight at once against this endpoint, across workers."
    )
    timeout_seconds = models.FloatField(default=120.0)
    max_retries = models.PositiveSmallIntegerField(
        default=3, help_text="Retries of a call on 429, 5xx, timeouts and connection errors."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="endpoint_unique_name"),
            models.CheckConstraint(
                condition=Q(concurrency__gte=1) & Q(concurrency__lte=MAX_CONCURRENCY),
                name="endpoint_concurrency_range",
            ),
            models.CheckConstraint(
                condition=Q(timeout_seconds__gt=0), name="endpoint_timeout_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)


class GenerationJob(Job):
    """Generate `samples` responses per endpoint for a selection of prompts: a job
    (`core.jobs`) fanned out in chunks; its calls are `Generation` rows."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generation_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    endpoint_ids = models.JSONField(default=list)
    samples = models.PositiveSmallIntegerField(default=1)
    prompt_selection = models.JSONField(
        default=str, help_text='"missing", "all" or a list of prompt ids.'
    )
    planned = models.PositiveIntegerField(default=0, help_text="Calls planned.")
    skipped = models.JSONField(
        default=dict, blank=True, help_text="Prompts left out, by reason: {reason: count}."
    )
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="generation_job_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"generation {self.pk} ({self.status})"


class CallStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Generation(models.Model):
    """One planned call: sample `sample` of `endpoint` for `prompt`, at most once ever.

    The unique (prompt, endpoint, sample) makes generation idempotent: a retried or resumed
    job, or a second job over the same prompts, never adds the same response twice; a
    failed call is planned again by the next job.
    """

    job = models.ForeignKey(
        GenerationJob, null=True, on_delete=models.SET_NULL, related_name="calls"
    )
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.CASCADE, related_name="calls")
    sample = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=CallStatus.choices, default=CallStatus.PENDING)
    response = models.OneToOneField(
        Response, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True, default="")
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "endpoint", "sample"], name="generation_unique_call"
            ),
            models.CheckConstraint(
                condition=Q(status__in=CallStatus.values), name="generation_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["job", "status"], name="generation_job_status")]

    def __str__(self) -> str:
        return f"prompt {self.prompt_id}, endpoint {self.endpoint_id} #{self.sample}"


class JudgeTemplate(models.Model):
    """The project's judge prompt, editable by the lead; the defaults are `llm.judge`'s.
    Placeholders: {guidelines} {rubric} {ties} {conversation} {responses}."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="judge_template")
    system_template = models.TextField()
    user_template = models.TextField()
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"judge template of project {self.project_id}"


class JudgeRun(Job):
    """An AI judge ranking a selection of prompts through one endpoint: a `core.jobs` job."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judge_runs")
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.CASCADE, related_name="judge_runs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    prompt_selection = models.JSONField(default=str)
    system_template = models.TextField(blank=True, default="")
    user_template = models.TextField(blank=True, default="")
    planned = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="judge_run_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"judge run {self.pk} ({self.status})"


class JudgeVerdict(models.Model):
    """The judge's ranking of one prompt (one per prompt and endpoint, the latest run's):
    both shown orders, their combination, and the rationale. Kept apart from human
    rankings: agreement, flags and exports never read this table unless asked to."""

    run = models.ForeignKey(JudgeRun, null=True, on_delete=models.SET_NULL, related_name="verdicts")
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.CASCADE, related_name="verdicts")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=CallStatus.choices, default=CallStatus.PENDING)
    groups = models.JSONField(default=list, blank=True, help_text="Tie groups of response ids.")
    forward = models.JSONField(default=list, blank=True, help_text="Verdict in import order.")
    reverse = models.JSONField(default=list, blank=True, help_text="Verdict in reversed order.")
    consistent = models.BooleanField(null=True, blank=True)
    pairs = models.PositiveSmallIntegerField(default=0)
    flipped_pairs = models.PositiveSmallIntegerField(default=0)
    first_shown_wins = models.PositiveSmallIntegerField(default=0)
    second_shown_wins = models.PositiveSmallIntegerField(default=0)
    rationale = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "endpoint"], name="judge_verdict_unique"),
            models.CheckConstraint(
                condition=Q(status__in=CallStatus.values), name="judge_verdict_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["run", "status"], name="judge_verdict_run_status")]

    def __str__(self) -> str:
        return f"verdict on prompt {self.prompt_id} by endpoint {self.endpoint_id}"
