"""The queue's health for leads and engineers, and releasing a stuck lease (leads)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES
from core.auth import signed_in_user
from labeling import selectors, services


class LiveLeaseSerializer(serializers.Serializer):
    assignment_id = serializers.IntegerField(source="pk")
    prompt_id = serializers.IntegerField()
    rater = serializers.CharField(source="rater.username")
    leased_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class RaterTodaySerializer(serializers.Serializer):
    username = serializers.CharField()
    submitted = serializers.IntegerField()
    skipped = serializers.IntegerField()


class QueueHealthSerializer(serializers.Serializer):
    prompts = serializers.IntegerField(help_text="Prompts that are neither gold nor archived.")
    complete = serializers.IntegerField()
    in_progress = serializers.IntegerField(help_text="Not complete, with a ranking or live lease.")
    untouched = serializers.IntegerField()
    per_hour_last_hour = serializers.IntegerField()
    per_hour_last_day = serializers.FloatField()
    rankings_remaining = serializers.IntegerField()
    hours_to_finish = serializers.FloatField(
        allow_null=True, help_text="At the current pace; null: done, or no rankings in 24 h."
    )
    live_lease_count = serializers.IntegerField()
    live_leases = LiveLeaseSerializer(many=True, help_text="The oldest 50.")
    raters_today = RaterTodaySerializer(many=True, help_text="Since midnight UTC.")


class QueueHealthView(APIView):
    @extend_schema(responses={200: QueueHealthSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=selectors.DATA_ROLES
        )
        return Response(QueueHealthSerializer(selectors.queue_health(project=project)).data)


class LeaseReleaseView(APIView):
    @extend_schema(
        request=None,
        responses={
            200: LiveLeaseSerializer,
            409: OpenApiResponse(description="The lease has already ended"),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request, project_id: int, assignment_id: int) -> Response:
        """Expire a live lease now; its prompt goes back to the queue (audited)."""
        project = selectors.project_for_user(
            user=signed_in_user(request), project_id=project_id, roles=selectors.LEAD_ROLES
        )
        assignment = services.lease_release(
            project=project, assignment_id=assignment_id, by=signed_in_user(request)
        )
        return Response(LiveLeaseSerializer(assignment).data)
