"""Endpoint API keys encrypted at rest (Fernet) with a key from the environment.

`RANKLAB_SECRETS_KEY` (comma-separated to rotate: the first encrypts, any decrypts), else
one derived from `SECRET_KEY`. The plain key only ever exists in memory on its way to the
endpoint; error messages never carry it.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from core.errors import RanklabError

DERIVATION_CONTEXT = b"ranklab/model-endpoint-api-keys/v1:"


class SecretUnreadable(RanklabError):
    status_code = 500
    code = "secret_unreadable"


def _fernet_key(secret: str) -> bytes:
    digest = hashlib.sha256(DERIVATION_CONTEXT + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _fernet() -> MultiFernet:
    configured = [part.strip() for part in settings.RANKLAB_SECRETS_KEY.split(",") if part.strip()]
    secrets = configured or [settings.SECRET_KEY]
    return MultiFernet([Fernet(_fernet_key(secret)) for secret in secrets])


def secret_encrypt(plain: str) -> str:
    """The stored form of a secret; an empty secret stays empty (no key)."""
    if not plain:
        return ""
    return _fernet().encrypt(plain.encode()).decode()


def secret_decrypt(stored: str) -> str:
    if not stored:
        return ""
    try:
        return _fernet().decrypt(stored.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "the endpoint's API key cannot be decrypted (was RANKLAB_SECRETS_KEY changed?); "
            "enter it again"
        ) from None


def scrubbed(text: str, *secrets: str) -> str:
    """The text with every occurrence of the secrets replaced (an echoing server, an error
    quoting a header)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text
