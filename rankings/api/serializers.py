"""Serializers for agreement results and rater quality (the rater API has its own)."""

from __future__ import annotations

from rest_framework import serializers

from rankings.stats.project import PROJECT_STATISTICS
from rankings.stats.registry import RATER_STATISTICS


def _metric_fields() -> dict[str, serializers.Field]:
    """One field per stored statistic and its counts, read from the run's ``metrics`` JSON.

    Declared rather than copied through so the schema documents them; runs stored before a
    statistic existed read as null / 0.
    """
    fields: dict[str, serializers.Field] = {}
    for name in PROJECT_STATISTICS:
        fields[name] = serializers.FloatField(
            source=f"metrics.{name}", default=None, allow_null=True, read_only=True
        )
        for count in (f"{name}_n_units", f"{name}_n_pairs"):
            fields[count] = serializers.IntegerField(
                source=f"metrics.{count}", default=0, read_only=True
            )
    fields["n_raters"] = serializers.IntegerField(
        source="metrics.n_raters", default=0, read_only=True
    )
    return fields


class _AgreementRunFields(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    n_prompts = serializers.IntegerField()
    n_rankings = serializers.IntegerField()


# A finished run with its statistics flat, so clients read latest.kappa, latest.alpha_ordinal…
AgreementRunSerializer = type(
    "AgreementRunSerializer", (_AgreementRunFields,), {**_metric_fields(), "__module__": __name__}
)


class AgreementSerializer(serializers.Serializer):
    latest = AgreementRunSerializer(allow_null=True)
    history = AgreementRunSerializer(many=True)


class AgreementQueuedSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    status = serializers.CharField()


# Rater quality: flags, raters, low-agreement prompts ------------------------------------------


class FlagSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    # A field named like Field.label: the metaclass moves it into the declared fields.
    label = serializers.CharField(source="get_code_display")  # type: ignore[assignment]
    status = serializers.CharField()
    rater = serializers.CharField(source="rater.username")
    evidence = serializers.JSONField()
    run_id = serializers.IntegerField(allow_null=True)
    note = serializers.CharField()
    resolved_by = serializers.CharField(
        source="resolved_by.username", allow_null=True, default=None
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class RaterFlagSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    evidence = serializers.JSONField()
    status = serializers.CharField()


class FlagActionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class RaterExcludeSerializer(serializers.Serializer):
    excluded = serializers.BooleanField(
        required=False, default=True, help_text="false puts the rater's rankings back in"
    )


class _RaterRowFields(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField()
    status = serializers.CharField()
    excluded = serializers.BooleanField()
    # Counted from the rankings when no run scored the rater yet, so never null.
    rankings = serializers.IntegerField()
    reliability_decision = serializers.CharField(
        source="decision.state",
        default=None,
        allow_null=True,
        help_text="The sequential test so far: flagged, careful, undecided or unknown "
        "(not tested yet); null for a rater no run has scored.",
    )
    tasks_to_decide = serializers.IntegerField(
        source="decision.tasks_needed",
        default=None,
        allow_null=True,
        help_text="About how many more tasks the sequential test needs to decide, at the "
        "rater's pace so far; 0 once decided, null when it cannot tell.",
    )


def _rater_statistic_fields() -> dict[str, serializers.Field]:
    """One field per statistic the registry puts in the API (``api=True``), with its help;
    null (counts too) for a rater no run has scored."""
    fields: dict[str, serializers.Field] = {}
    for stat in RATER_STATISTICS:
        if not stat.api or stat.name in _RaterRowFields._declared_fields:
            continue
        field_class = serializers.IntegerField if stat.is_count else serializers.FloatField
        fields[stat.name] = field_class(allow_null=True, read_only=True, help_text=stat.help)
    return fields


# A row per rater: membership, every API statistic of the latest run, and open flags.
RaterRowSerializer = type(
    "RaterRowSerializer",
    (_RaterRowFields,),
    {
        **_rater_statistic_fields(),
        "flags": RaterFlagSerializer(many=True),
        "__module__": __name__,
    },
)


class LabelledResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]
    text = serializers.CharField()
    model = serializers.CharField()


class PromptRankingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rater = serializers.CharField()
    excluded = serializers.BooleanField()
    ranking = serializers.JSONField(source="groups", help_text="Tie groups of response ids")
    labels = serializers.JSONField(help_text="The same tie groups as response labels")
    seconds = serializers.FloatField(allow_null=True)
    rationale = serializers.CharField()


class PromptReviewSerializer(serializers.Serializer):
    prompt_id = serializers.IntegerField(source="prompt.pk")
    external_id = serializers.CharField(source="prompt.external_id")
    messages = serializers.JSONField(source="prompt.messages")
    agreement = serializers.FloatField(allow_null=True)
    n_rankings = serializers.IntegerField()
    consensus = serializers.JSONField()
    consensus_labels = serializers.JSONField()
    extra_raters = serializers.IntegerField()
    extra_reason = serializers.CharField()
    is_complete = serializers.BooleanField(source="prompt.is_complete")
    responses = LabelledResponseSerializer(many=True)
    rankings = PromptRankingSerializer(many=True)


class LowAgreementSerializer(serializers.Serializer):
    run_id = serializers.IntegerField(allow_null=True)
    prompts = PromptReviewSerializer(many=True)


class ExtraRatersPromptSerializer(serializers.Serializer):
    prompt_id = serializers.IntegerField(source="pk")
    external_id = serializers.CharField()
    extra_raters = serializers.IntegerField()
    extra_reason = serializers.CharField()
    is_complete = serializers.BooleanField()


class ExtraRatersSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    prompts = ExtraRatersPromptSerializer(many=True)
