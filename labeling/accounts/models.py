"""A personal API token: only the SHA-256 of its secret is stored; the secret is shown once."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class TokenOrigin(models.TextChoices):
    PERSONAL = "personal", "Personal (named)"
    SIGN_IN = "sign_in", "Sign-in (POST /api/auth/token/)"
    SIGN_UP = "sign_up", "Sign-up (POST /api/auth/signup/)"
    MIGRATED = "migrated", "From before tokens were hashed"


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    origin = models.CharField(
        max_length=16, choices=TokenOrigin.choices, default=TokenOrigin.PERSONAL
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=12, editable=False, help_text="The secret's first characters, to recognise it."
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    session_key_hash = models.CharField(
        max_length=64,
        blank=True,
        default="",
        editable=False,
        help_text="Made on the token page in this browser session: logging out may revoke it.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="api_token_user_live")]
        constraints = [
            models.CheckConstraint(
                condition=Q(origin__in=TokenOrigin.values), name="api_token_origin_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) of {self.user_id}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and not self.is_expired
