"""The arena API's bodies: a message, a vote, and the battle as the rater sees it."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from authoring.arena.models import Choice, StreamState
from core.serializers import RefuseUnknownFields


class ArenaTextField(serializers.CharField):
    """Text only: a number or a list is refused, not turned into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class ArenaTurnCreateSerializer(RefuseUnknownFields, serializers.Serializer):
    content = ArenaTextField(
        trim_whitespace=False, help_text="The rater's message to both models (markdown)."
    )


class ArenaVoteSerializer(RefuseUnknownFields, serializers.Serializer):
    choice = serializers.ChoiceField(choices=Choice.choices)
    strength = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="For a or b: 1 slightly, 2 better (default), 3 much better; none for a tie.",
    )


class ArenaReplySerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=StreamState.choices)
    html = serializers.CharField(help_text="The stored reply, sanitized; empty until finished.")
    stream_url = serializers.CharField(help_text="Server-sent events: delta…, then done or failed.")


class ArenaVoteReadSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=Choice.choices)
    strength = serializers.IntegerField()
    counted = serializers.BooleanField()
    void_reason = serializers.CharField(help_text="Why it does not count: revealed, daily_cap.")


class ArenaTurnSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    assignment_id = serializers.IntegerField()
    content = serializers.CharField()
    content_html = serializers.CharField()
    a = ArenaReplySerializer()
    b = ArenaReplySerializer()
    vote_url = serializers.CharField()
    vote = ArenaVoteReadSerializer(allow_null=True)
    context_side = serializers.CharField(
        allow_null=True, help_text="The reply the next turn continues from (a or b)."
    )


class ArenaRevealedSerializer(serializers.Serializer):
    a = serializers.CharField()
    b = serializers.CharField()


class ArenaBattleSerializer(serializers.Serializer):
    battle_id = serializers.IntegerField()
    assignment_id = serializers.IntegerField(
        allow_null=True, help_text="The turn waiting for a vote, if any."
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    turns = ArenaTurnSerializer(many=True)
    can_continue = serializers.BooleanField()
    votes_left = serializers.IntegerField(allow_null=True, help_text="Under the daily cap.")
    max_turns = serializers.IntegerField()
    reveal = serializers.BooleanField(help_text="The project reveals the models after a vote.")
    revealed = ArenaRevealedSerializer(allow_null=True)
    turns_url = serializers.CharField()
    reveal_url = serializers.CharField(allow_null=True)
    new_battle_url = serializers.CharField()
