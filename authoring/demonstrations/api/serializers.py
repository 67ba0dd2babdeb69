"""Serializers of the demonstration API: a reply submitted, a review decided, and what is
answered. Values are checked by the services, which name the field."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from authoring.demonstrations.models import Demonstration, DemonstrationReview
from core.serializers import RefuseUnknownFields


class DemonstrationSubmitSerializer(RefuseUnknownFields, serializers.Serializer[Any]):
    text = serializers.JSONField(help_text="The ideal assistant reply (markdown).")
    ranking = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="Rank then rewrite: tie groups best→worst of the shown responses.",
    )
    original_response = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="Rank then rewrite: the id of the best-ranked response the text rewrites "
        "(default: the first of the best group).",
    )
    seconds = serializers.JSONField(required=False, allow_null=True)
    rationale = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Rank then rewrite: why the best response is best (when the project asks).",
    )


class DemonstrationSerializer(serializers.Serializer[Demonstration]):
    id = serializers.IntegerField()
    assignment_id = serializers.IntegerField()
    prompt_id = serializers.IntegerField()
    mode = serializers.CharField()
    text = serializers.CharField()
    status = serializers.CharField()
    ranking = serializers.SerializerMethodField()
    original_response_id = serializers.IntegerField(allow_null=True)
    edit_distance = serializers.IntegerField(allow_null=True)
    diff = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_ranking(self, demonstration: Demonstration) -> list[list[int]] | None:
        ranking = demonstration.ranking
        return None if ranking is None else ranking.groups


class ReviewSubmitSerializer(RefuseUnknownFields, serializers.Serializer[Any]):
    decision = serializers.JSONField(help_text="accept, edit or reject")
    reason = serializers.JSONField(
        required=False, allow_null=True, help_text="Why (required to reject)."
    )
    text = serializers.JSONField(
        required=False, allow_null=True, help_text="Edit: the corrected reply (markdown)."
    )


class ReviewSerializer(serializers.Serializer[DemonstrationReview]):
    id = serializers.IntegerField()
    demonstration_id = serializers.IntegerField()
    status = serializers.CharField()
    decision = serializers.CharField()
    reason = serializers.CharField()
    edited_text = serializers.CharField()
    edit_distance = serializers.IntegerField(allow_null=True)
    demonstration_status = serializers.CharField(source="demonstration.status")


class ReviewSkipSerializer(RefuseUnknownFields, serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=500)
