"""Personal API tokens: create (the secret is returned once), list, revoke, and revoke the
ones a browser session made when it logs out. Every change goes to the audit log."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.errors import InvalidInput, NotFound
from labeling.accounts.models import ApiToken, TokenOrigin
from labeling.models import AuditAction
from labeling.services.audit import audit_record

SECRET_PREFIX = "rl_"
MAX_EXPIRY_DAYS = 366
MAX_LIVE_PERSONAL_TOKENS = 50


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # shown to its owner once, never stored


def token_hash(secret: str) -> str:
    """Secrets are 256 random bits: a plain SHA-256 is enough (no guessing to slow down)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def session_hash(session_key: str | None) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest() if session_key else ""


def live_tokens(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )


@transaction.atomic
def api_token_create(
    *,
    user: User,
    name: str,
    expires_in_days: int | None = None,
    origin: str = TokenOrigin.PERSONAL,
    session_key: str | None = None,
) -> NewToken:
    """A new token for `user`; `expires_in_days` None: it never expires."""
    name = name.strip()
    if not name or len(name) > 100 or "\x00" in name:
        raise InvalidInput("name must be 1 to 100 characters", field="name")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(
            f"expires_in_days must be 1 to {MAX_EXPIRY_DAYS}, or null for never",
            field="expires_in_days",
        )
    if origin == TokenOrigin.PERSONAL:
        live = live_tokens(user=user).filter(origin=TokenOrigin.PERSONAL).count()
        if live >= MAX_LIVE_PERSONAL_TOKENS:
            raise InvalidInput(
                f"you have {live} live tokens; revoke some first", field="name", code="too_many"
            )
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        origin=origin,
        key_hash=token_hash(secret),
        prefix=secret[:10],
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        session_key_hash=session_hash(session_key),
    )
    if origin == TokenOrigin.SIGN_IN:
        _revoke_oldest_sign_in_tokens(user=user, now=now)
    audit_record(
        action=AuditAction.TOKEN_CREATE,
        actor=user,
        target=f"{name} ({token.prefix}…)",
        changes={"token": token.pk, "origin": origin, "expires_at": token.expires_at},
    )
    return NewToken(token=token, secret=secret)


def sign_in_token_create(*, user: User, origin: str = TokenOrigin.SIGN_IN) -> NewToken:
    """The token `POST /api/auth/token/` and sign-up answer with: one per sign-in, expiring
    after API_TOKEN_SIGN_IN_DAYS."""
    label = "sign-up" if origin == TokenOrigin.SIGN_UP else "sign-in"
    return api_token_create(
        user=user,
        name=f"{label} {timezone.now():%Y-%m-%d %H:%M}",
        expires_in_days=settings.API_TOKEN_SIGN_IN_DAYS,
        origin=origin,
    )


def _revoke_oldest_sign_in_tokens(*, user: User, now: object) -> None:
    """A script that signs in on every run would pile up tokens: keep the newest few."""
    keep = settings.API_TOKEN_SIGN_IN_KEEP
    stale = list(
        live_tokens(user=user)
        .filter(origin=TokenOrigin.SIGN_IN)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)[keep:]
    )
    if stale:
        ApiToken.objects.filter(pk__in=stale).update(revoked_at=now)


@transaction.atomic
def api_token_revoke(*, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens; revoking twice is harmless."""
    token = ApiToken.objects.select_for_update().filter(pk=token_id, user=user).first()
    if token is None:
        raise NotFound("token not found", field="id")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            action=AuditAction.TOKEN_REVOKE,
            actor=user,
            target=f"{token.name} ({token.prefix}…)",
            changes={"token": token.pk},
        )
    return token


@transaction.atomic
def api_tokens_revoke_all(*, user: User, session_key: str | None = None) -> int:
    """Revoke the user's live tokens: all, or (with `session_key`) those made on the token
    page in that browser session. Returns how many."""
    tokens = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
    if session_key is not None:
        tokens = tokens.filter(session_key_hash=session_hash(session_key)).exclude(
            session_key_hash=""
        )
    revoked = list(tokens.values_list("pk", flat=True))
    if revoked:
        ApiToken.objects.filter(pk__in=revoked).update(revoked_at=timezone.now())
        audit_record(
            action=AuditAction.TOKEN_REVOKE,
            actor=user,
            target="this browser's tokens" if session_key is not None else "all tokens",
            changes={"tokens": revoked},
        )
    return len(revoked)


def api_tokens_for_user(*, user: User) -> QuerySet[ApiToken]:
    """Every token of the user, newest first (revoked and expired ones too, marked)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")
