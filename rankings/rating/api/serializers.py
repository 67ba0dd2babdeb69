"""Serializers of the rater API: a ranking submitted, a ranking stored, a lease renewed.

The task payload and the skip reason keep their serializers in `labeling.api.serializers`,
beside the queue that produces them.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from labeling.models import Assignment
from rankings.models import Ranking


class RankingSubmitSerializer(serializers.Serializer[Any]):
    ranking = serializers.JSONField(help_text="Tie groups best→worst: [[12], [11, 13], [14]]")
    ratings = serializers.JSONField(required=False, allow_null=True)
    rationale = serializers.CharField(required=False, allow_blank=True, default="")
    seconds = serializers.JSONField(required=False, allow_null=True)
    strength = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="Pairwise tasks: 3 much better, 2 better, 1 slightly better, 0 about the same",
    )


class RankingSerializer(serializers.Serializer[Ranking]):
    id = serializers.IntegerField()
    assignment_id = serializers.IntegerField()
    ranking = serializers.JSONField(source="groups")
    ratings = serializers.JSONField()
    rationale = serializers.CharField()
    seconds = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()


class LeaseSerializer(serializers.Serializer[Assignment]):
    assignment_id = serializers.IntegerField(source="pk")
    expires_at = serializers.DateTimeField()
