"""Serializers for ranking submissions and agreement results."""

from __future__ import annotations

from rest_framework import serializers

from rankings.metrics import PROJECT_STATISTICS


class RankingSubmitSerializer(serializers.Serializer):
    ranking = serializers.JSONField(help_text="Tie groups best→worst: [[12], [11, 13], [14]]")
    ratings = serializers.JSONField(required=False, allow_null=True)
    rationale = serializers.CharField(required=False, allow_blank=True, default="")
    seconds = serializers.JSONField(required=False, allow_null=True)
    strength = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="Pairwise tasks: 3 much better, 2 better, 1 slightly better, 0 about the same",
    )


class RankingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    assignment_id = serializers.IntegerField()
    ranking = serializers.JSONField(source="groups")
    ratings = serializers.JSONField()
    rationale = serializers.CharField()
    seconds = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()


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
