"""`GET|POST /api/tokens/`, `DELETE /api/tokens/{id}/`: the signed-in user's own tokens.

A token may be used to create another, but never one that outlives it: a leaked
short-lived token cannot be turned into a permanent one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_RESPONSES, ErrorSerializer
from core.auth import signed_in_user
from core.errors import InvalidInput
from core.serializers import RefuseUnknownFields
from labeling.accounts import services
from labeling.accounts.models import ApiToken
from labeling.accounts.throttles import TokenCreateThrottle


def token_state(token: ApiToken) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if token.is_expired else "live"


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    state = serializers.SerializerMethodField(help_text="live, expired or revoked")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "origin", "created_at", "expires_at", "revoked_at"]
        fields += ["state"]
        read_only_fields = fields

    def get_state(self, token: ApiToken) -> str:
        return token_state(token)


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(
        help_text="The secret: shown this once, never again. Send it as `Authorization: Token …`."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class ApiTokenCreateSerializer(RefuseUnknownFields, serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    expires_in_days = serializers.IntegerField(
        min_value=1,
        max_value=services.MAX_EXPIRY_DAYS,
        default=90,
        allow_null=True,
        help_text="Days until the token stops working (default 90); null: never.",
    )


class ApiTokenListView(APIView):
    def get_throttles(self) -> list[Any]:
        return [TokenCreateThrottle()] if self.request.method == "POST" else []

    @extend_schema(responses={200: ApiTokenSerializer(many=True)})
    def get(self, request: Request) -> Response:
        tokens = services.api_tokens_for_user(user=signed_in_user(request))[:200]
        return Response(ApiTokenSerializer(tokens, many=True).data)

    @extend_schema(
        request=ApiTokenCreateSerializer,
        responses={
            201: ApiTokenCreatedSerializer,
            429: OpenApiResponse(
                ErrorSerializer, description="Too many tokens created; see Retry-After"
            ),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request) -> Response:
        data = ApiTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        days = data.validated_data["expires_in_days"]
        _refuse_outliving(request.auth, days)
        created = services.api_token_create(
            user=signed_in_user(request), name=data.validated_data["name"], expires_in_days=days
        )
        body = {**ApiTokenSerializer(created.token).data, "token": created.secret}
        return Response(body, status=status.HTTP_201_CREATED)


def _refuse_outliving(auth: Any, days: int | None) -> None:
    if not isinstance(auth, ApiToken) or auth.expires_at is None:
        return
    if days is None or timezone.now() + timedelta(days=days) > auth.expires_at:
        raise InvalidInput(
            "a token cannot outlive the token that creates it "
            f"(yours expires {auth.expires_at:%Y-%m-%d %H:%M} UTC)",
            field="expires_in_days",
        )


class ApiTokenDetailView(APIView):
    @extend_schema(
        responses={204: OpenApiResponse(description="Revoked (or already was)"), **ERROR_RESPONSES}
    )
    def delete(self, request: Request, token_id: int) -> Response:
        services.api_token_revoke(user=signed_in_user(request), token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
