"""Shapes of the prompt browser's API answers (read from the selectors' dataclasses)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from rankings.prompts.actions import BULK_ACTIONS
from rankings.prompts.query import STATES


class PromptRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    snippet = serializers.CharField(help_text="The last user turn, shortened.")
    created_at = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=list(STATES))
    is_gold = serializers.BooleanField()
    archived = serializers.BooleanField()
    extra_raters = serializers.IntegerField()
    extra_reason = serializers.CharField()
    models = serializers.ListField(child=serializers.CharField(), help_text="In import order.")
    n_responses = serializers.IntegerField()
    rankings = serializers.IntegerField(help_text="Submitted rankings, repeats left out.")
    skips = serializers.IntegerField()
    wanted = serializers.IntegerField(help_text="Rankings the prompt collects (overlap + extra).")
    agreement = serializers.FloatField(allow_null=True, help_text="In the latest finished run.")
    flagged_raters = serializers.IntegerField(
        help_text="Rankings by raters with an open quality flag."
    )


class PromptPageSerializer(serializers.Serializer):
    results = PromptRowSerializer(many=True)
    next = serializers.CharField(allow_null=True, help_text="The next page's URL, or null.")
    run_id = serializers.IntegerField(allow_null=True, help_text="The run agreement comes from.")


class ResponseViewSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField(help_text="A, B, C… in import order.")  # type: ignore[assignment]
    position = serializers.IntegerField()
    external_id = serializers.CharField()
    model = serializers.CharField()
    text = serializers.CharField()
    metadata = serializers.DictField()
    consensus_score = serializers.FloatField(allow_null=True)
    consensus_place = serializers.IntegerField(allow_null=True)
    gold_place = serializers.IntegerField(allow_null=True)


class RankingViewSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rater = serializers.CharField()
    shown_order = serializers.ListField(child=serializers.IntegerField())
    shown_labels = serializers.ListField(child=serializers.CharField())
    groups = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    labels = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    ratings = serializers.DictField()
    rationale = serializers.CharField()
    seconds = serializers.FloatField(allow_null=True)
    strength = serializers.IntegerField(allow_null=True)
    is_repeat = serializers.BooleanField()
    is_gold = serializers.BooleanField()
    gold_match = serializers.FloatField(
        allow_null=True, help_text="Share of pairs ordered as the gold ranking does."
    )
    excluded = serializers.BooleanField()
    flagged = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    revised = serializers.BooleanField()


class SkipViewSerializer(serializers.Serializer):
    rater = serializers.CharField()
    reason = serializers.CharField()
    at = serializers.DateTimeField(allow_null=True)


class PairViewSerializer(serializers.Serializer):
    first = serializers.CharField(source="votes.first")
    second = serializers.CharField(source="votes.second")
    first_label = serializers.CharField(source="first")
    second_label = serializers.CharField(source="second")
    first_better = serializers.IntegerField(source="votes.first_better")
    second_better = serializers.IntegerField(source="votes.second_better")
    ties = serializers.IntegerField(source="votes.ties")
    agreement = serializers.FloatField(source="votes.agreement", allow_null=True)


class HistorySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    lines = serializers.ListField(child=serializers.CharField())


class PromptDetailSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="prompt.pk")
    project = serializers.IntegerField(source="project.pk")
    external_id = serializers.CharField(source="prompt.external_id")
    messages = serializers.ListField(child=serializers.DictField(), source="prompt.messages")
    metadata = serializers.DictField(source="prompt.metadata")
    created_at = serializers.DateTimeField(source="prompt.created_at")
    state = serializers.CharField()
    is_gold = serializers.BooleanField(source="prompt.is_gold")
    gold_ranking = serializers.JSONField(source="prompt.gold_ranking", allow_null=True)
    archived_at = serializers.DateTimeField(source="prompt.archived_at", allow_null=True)
    is_complete = serializers.BooleanField(source="prompt.is_complete")
    wanted = serializers.IntegerField()
    extra_raters = serializers.IntegerField(source="prompt.extra_raters")
    extra_reason = serializers.CharField(source="prompt.extra_reason")
    responses = ResponseViewSerializer(many=True)
    rankings = RankingViewSerializer(many=True)
    skips = SkipViewSerializer(many=True)
    run_id = serializers.IntegerField(source="run.pk", allow_null=True, default=None)
    agreement = serializers.FloatField(allow_null=True)
    consensus = serializers.JSONField(help_text="Tie groups of response ids, best first.")
    consensus_labels = serializers.JSONField()
    consensus_method = serializers.CharField()
    pairs = PairViewSerializer(many=True)
    history = HistorySerializer(many=True)
    editable = serializers.SerializerMethodField()
    edit_refusal = serializers.CharField(allow_null=True)
    extras = serializers.SerializerMethodField(
        help_text="Panels other apps add to the prompt, by key (e.g. `ai_judge`); "
        "a key is absent when its app has nothing for this prompt."
    )

    def get_editable(self, detail: object) -> bool:
        return getattr(detail, "edit_refusal", None) is None

    def get_extras(self, detail: object) -> dict[str, Any]:
        return {extra.key: extra.data for extra in getattr(detail, "extras", [])}


class PromptEditSerializer(serializers.Serializer):
    """Only for the schema: the service validates the body as an import record would be."""

    prompt = serializers.CharField(required=False)
    messages = serializers.ListField(child=serializers.DictField(), required=False)
    responses = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="The whole list in import order: {text, model?, metadata?, external_id?}.",
    )


class BulkActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(BULK_ACTIONS))
    prompt_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=1000
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")

    def validate(self, attrs: dict) -> dict:
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({sorted(unknown)[0]: "unknown field"})
        return attrs


class BulkResultSerializer(serializers.Serializer):
    action = serializers.CharField()
    changed = serializers.ListField(child=serializers.IntegerField())
    unchanged = serializers.ListField(child=serializers.DictField())
