"""Serializers for ranking submissions and agreement results."""

from __future__ import annotations

from rest_framework import serializers


class RankingSubmitSerializer(serializers.Serializer):
    ranking = serializers.JSONField(help_text="Tie groups best→worst: [[12], [11, 13], [14]]")
    ratings = serializers.JSONField(required=False, allow_null=True)
    rationale = serializers.CharField(required=False, allow_blank=True, default="")
    seconds = serializers.JSONField(required=False, allow_null=True)


class RankingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    assignment_id = serializers.IntegerField()
    ranking = serializers.JSONField(source="groups")
    ratings = serializers.JSONField()
    rationale = serializers.CharField()
    seconds = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()


class AgreementRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    n_prompts = serializers.IntegerField()
    n_rankings = serializers.IntegerField()
    metrics = serializers.JSONField()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # Flatten the metrics so clients read latest.kappa, latest.alpha_ordinal, …
        metrics = data.pop("metrics") or {}
        return {**metrics, **data}


class AgreementSerializer(serializers.Serializer):
    latest = AgreementRunSerializer(allow_null=True)
    history = AgreementRunSerializer(many=True)


class AgreementQueuedSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    status = serializers.CharField()
