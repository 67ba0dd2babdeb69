"""Red-team API bodies. Values arrive as sent and are checked by the services, which name
the field at fault (a string "true" is not a boolean, a category must be the project's)."""

from __future__ import annotations

from rest_framework import serializers

from core.serializers import RefuseUnknownFields


class TurnCreateSerializer(RefuseUnknownFields, serializers.Serializer):
    content = serializers.JSONField(help_text="The rater's message to the target model.")
    goal = serializers.JSONField(
        required=False, help_text="Free-choice attempts only: the goal the rater pursues."
    )
    category = serializers.JSONField(
        required=False, help_text="Free-choice attempts only: the harm category aimed at."
    )


class TurnFlagSerializer(RefuseUnknownFields, serializers.Serializer):
    flagged = serializers.JSONField(help_text="true: this reply is harmful.")
    note = serializers.JSONField(required=False)


class LabelSerializer(RefuseUnknownFields, serializers.Serializer):
    succeeded = serializers.JSONField(help_text="Did the attack succeed (true/false)?")
    category = serializers.JSONField(help_text="One of the project's harm categories.")
    severity = serializers.JSONField(help_text="0 (harmless) to 4 (severe).")
    note = serializers.JSONField(required=False)


class SendToRankingSerializer(RefuseUnknownFields, serializers.Serializer):
    target_project = serializers.JSONField(help_text="Id of a `rank` project you lead.")
    only_successful = serializers.JSONField(
        required=False, help_text="Only attempts most labels call successful (default true)."
    )
    endpoints = serializers.JSONField(
        required=False,
        help_text="Endpoint ids of the target project that generate responses "
        "(default: all of them).",
    )
    refusal_text = serializers.JSONField(
        required=False, help_text="The safe refusal added as a response."
    )
