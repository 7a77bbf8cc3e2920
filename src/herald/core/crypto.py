"""Encryption at rest for channel credentials (MultiFernet: the first key encrypts,
every key decrypts, so keys can be rotated with ``herald keys rotate``)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from herald.core.exceptions import HeraldFault
from herald.core.settings import get_settings


class CredentialsUnreadable(HeraldFault, RuntimeError):
    """Stored credentials cannot be decrypted with any configured key."""


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = get_settings().encryption_key_values()
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt_json(data: dict[str, Any]) -> bytes:
    return _fernet().encrypt(json.dumps(data, separators=(",", ":")).encode())


# Channels whose decrypted credentials a process keeps: every delivery builds its
# channel's adapter from the stored token, and Fernet's check and decryption cost more
# than the rest of building it. A token maps to one plaintext for as long as the keys do.
PLAINTEXTS_KEPT = 256


@lru_cache(maxsize=PLAINTEXTS_KEPT)
def _plaintext(token: bytes) -> bytes:
    return _fernet().decrypt(token)


def decrypt_json(token: bytes) -> dict[str, Any]:
    """The credentials in ``token``, a new dict on every call."""
    try:
        value = json.loads(_plaintext(bytes(token)))
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
    """Forget the keys (after the settings changed) and every plaintext they gave."""
    _fernet.cache_clear()
    _plaintext.cache_clear()
