"""`Authorization: Token <secret>`: the secret's hash is looked up in one query; a revoked
or expired token, or one of a deactivated user, is refused with 401.

Every API call of a crowd passes here, so the lookup is written out as one statement
(`core.rows` turns its row into the token and its user as the ORM would)."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from core.rows import Columns
from labeling.accounts.models import ApiToken
from labeling.accounts.services import token_hash

TOKEN = Columns(ApiToken, "t")
USER = Columns(User, "u")


@cache
def _token_sql(vendor: str) -> str:
    return (
        f"SELECT {TOKEN.select(connection)}, {USER.select(connection)} "
        f"FROM {ApiToken._meta.db_table} t JOIN {User._meta.db_table} u ON u.id = t.user_id "
        "WHERE t.key_hash = %s"
    )


def token_with_user(key: str) -> ApiToken | None:
    """The token whose secret is `key`, with its user, or None."""
    with connection.cursor() as cursor:
        cursor.execute(_token_sql(connection.vendor), [token_hash(key)])
        row = cursor.fetchone()
    if row is None:
        return None
    token = TOKEN.build(row, 0, connection)
    token.user = USER.build(row, len(TOKEN), connection)
    return token


class ApiTokenAuthentication(TokenAuthentication):
    keyword = "Token"
    model = ApiToken

    def authenticate_credentials(self, key: str) -> tuple[User, ApiToken]:
        token = token_with_user(key)
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
