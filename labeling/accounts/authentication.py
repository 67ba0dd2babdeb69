"""`Authorization: Token <secret>`: the secret's hash is looked up in one query; a revoked
or expired token, or one of a deactivated user, is refused with 401."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from labeling.accounts.models import ApiToken
from labeling.accounts.services import token_hash


class ApiTokenAuthentication(TokenAuthentication):
    keyword = "Token"
    model = ApiToken

    def authenticate_credentials(self, key: str) -> tuple[User, ApiToken]:
        token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(key)).first()
        if token is None or token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("invalid or revoked token")
        if token.expires_at is not None and token.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed(
                "this token expired; create a new one at /account/tokens/ or POST /api/auth/token/"
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("user inactive or deleted")
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
