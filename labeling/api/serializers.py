"""Serializers for projects, members, invites and tasks: shape and field checks only."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from core.errors import InvalidInput
from core.serializers import RefuseUnknownFields, refuse_nul_characters
from labeling.models import AuditEvent, Invite, Membership, Project, Role, TaskKind
from labeling.rubric import RubricProblem, clean_rubric
from labeling.setting_checks import setting_problems
from labeling.task_kinds import clean_task_options


class ProjectSerializer(RefuseUnknownFields, serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "description",
            "task_kind",
            "task_options",
            "guidelines",
            "overlap",
            "lease_seconds",
            "allow_ties",
            "gold_rate",
            "repeat_rate",
            "repeat_delay_seconds",
            "max_overlap",
            "adaptive_agreement_threshold",
            "rubric",
            "require_rationale",
            "quality_settings",
            "agreement_every_n_rankings",
            "created_at",
            "role",
            "guidelines_version",
            "guidelines_updated_at",
        ]
        read_only_fields = [
            "id",
            "created_at",
            "role",
            "guidelines_version",
            "guidelines_updated_at",
        ]
        extra_kwargs = {
            "overlap": {"min_value": 1, "max_value": 100},
            "lease_seconds": {"min_value": 30, "max_value": 86_400},
            "gold_rate": {"min_value": 0.0, "max_value": 1.0},
            "repeat_rate": {"min_value": 0.0, "max_value": 1.0},
            "max_overlap": {"min_value": 1, "max_value": 100},
            "adaptive_agreement_threshold": {"min_value": 0.0, "max_value": 1.0},
        }

    def validate_rubric(self, value: Any) -> list[dict[str, Any]]:
        try:
            return clean_rubric(value)
        except RubricProblem as problem:
            raise serializers.ValidationError(str(problem)) from None

    def validate_quality_settings(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be an object of flag settings")
        refuse_nul_characters(value)
        problems = setting_problems("quality_settings", value)
        if problems:
            raise serializers.ValidationError("; ".join(problems))
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        overlap = attrs.get("overlap", getattr(self.instance, "overlap", 3))
        max_overlap = attrs.get("max_overlap", getattr(self.instance, "max_overlap", None))
        if max_overlap is not None and max_overlap < overlap:
            raise serializers.ValidationError({"max_overlap": "must be at least overlap"})
        if "task_kind" in attrs or "task_options" in attrs:
            attrs["task_options"] = self._task_options(attrs)
        return attrs

    def _task_options(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The options checked by the kind's handler; a new kind starts from its defaults."""
        kind = attrs.get("task_kind", getattr(self.instance, "task_kind", TaskKind.RANK))
        same_kind = self.instance is not None and kind == self.instance.task_kind
        kept = self.instance.task_options if same_kind and self.instance else {}
        try:
            return clean_task_options(kind, attrs.get("task_options", kept), project=self.instance)
        except InvalidInput as problem:
            field = problem.field or "task_options"
            raise serializers.ValidationError({field: problem.message}) from None

    def get_role(self, project: Project) -> str | None:
        roles = self.context.get("roles") or {}
        return roles.get(project.pk)


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "status", "excluded", "joined_at"]
        read_only_fields = ["username", "joined_at"]


class MemberUpdateSerializer(RefuseUnknownFields, serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    status = serializers.ChoiceField(choices=["active", "paused"], required=False)
    excluded = serializers.BooleanField(required=False)


class InviteCreateSerializer(RefuseUnknownFields, serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, default=Role.RATER)
    max_uses = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )


class InviteSerializer(serializers.ModelSerializer):
    join_url = serializers.SerializerMethodField()

    class Meta:
        model = Invite
        fields = ["code", "role", "join_url", "expires_at", "max_uses", "uses"]

    def get_join_url(self, invite: Invite) -> str:
        path = reverse("labeling:join", kwargs={"code": invite.code})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else f"{settings.SITE_URL}{path}"


class TokenRequestSerializer(RefuseUnknownFields, serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class SignupSerializer(RefuseUnknownFields, serializers.Serializer):
    invite_code = serializers.CharField()
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token …`; shown only here.")
    username = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)


class ImportResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    prompt_ids = serializers.ListField(child=serializers.IntegerField())


class TaskResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    # A field named like Field.label: the metaclass moves it into the declared fields.
    label = serializers.CharField()  # type: ignore[assignment]
    text = serializers.CharField()


class TaskPromptSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    messages = serializers.ListField(child=serializers.DictField())


class TaskSerializer(serializers.Serializer):
    kind = serializers.CharField(
        default="rank",
        help_text="The project's task kind; kinds other than rank carry their own payload.",
    )
    assignment_id = serializers.IntegerField()
    prompt = TaskPromptSerializer()
    responses = TaskResponseSerializer(many=True)
    allow_ties = serializers.BooleanField()
    expires_at = serializers.DateTimeField()
    guidelines_version = serializers.IntegerField(required=False)
    guidelines_changed = serializers.BooleanField(
        default=False,
        help_text="The guidelines changed since this rater last confirmed them: show them "
        "again (the rater page does so before the next task).",
    )


class SkipSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class GoldSerializer(RefuseUnknownFields, serializers.Serializer):
    gold_ranking = serializers.JSONField(
        allow_null=True, help_text="Tie groups of response ids best→worst; null makes it normal."
    )


class GoldResultSerializer(serializers.Serializer):
    prompt_id = serializers.IntegerField()
    is_gold = serializers.BooleanField()
    gold_ranking = serializers.JSONField(allow_null=True)


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(
        source="actor_name", help_text="Username at the time; empty: the system."
    )
    changes = serializers.JSONField(
        help_text='{"field": {"old": …, "new": …}} for changed settings, else the details.'
    )

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "action", "target", "changes"]
        read_only_fields = fields
