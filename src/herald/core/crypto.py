"""Encryption at rest for channel credentials (MultiFernet: the first key encrypts,
every key decrypts, so keys can be rotated with ``herald keys rotate``)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from herald.core.settings import get_settings


class CredentialsUnreadable(RuntimeError):
    """Stored credentials cannot be decrypted with any configured key."""


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = get_settings().encryption_key_values()
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt_json(data: dict[str, Any]) -> bytes:
    return _fernet().encrypt(json.dumps(data, separators=(",", ":")).encode())


def decrypt_json(token: bytes) -> dict[str, Any]:
    try:
        value = json.loads(_fernet().decrypt(token))
    except InvalidToken as exc:
        raise CredentialsUnreadable(
            "channel credentials cannot be decrypted: is the key that encrypted them "
            "still in HERALD_ENCRYPTION_KEYS?"
        ) from exc
    assert isinstance(value, dict)
    return value


def rotate(token: bytes) -> bytes:
    """Re-encrypt with the newest key."""
    return _fernet().rotate(token)


def reset_crypto() -> None:
    _fernet.cache_clear()
