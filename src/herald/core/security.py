"""Password hashing (Argon2) and opaque bearer tokens stored as SHA-256 digests."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from herald.core.settings import get_settings

_hasher = PasswordHash((Argon2Hasher(),))


@functools.cache
def _dummy_hash(hasher: PasswordHash) -> str:
    """Verifying against this when the account does not exist keeps the timing the same.

    Made on the first unknown sign-in, not at import: an Argon2 hash costs ~0.3 s of CPU,
    which every process (each CLI command, each pool child) would otherwise pay at start.
    """
    return hasher.hash("herald-timing-equaliser")


TOKEN_PREFIX = "hld_"  # noqa: S105 (a prefix, not a secret)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _hasher.verify(password, _dummy_hash(_hasher))
        return False
    return _hasher.verify(password, password_hash)


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def new_token() -> str:
    """A fresh bearer token; only its digest is ever stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no dictionary to attack);
    # keyed with the secret key, so a copy of the database alone cannot check a token.
    key = get_settings().secret_key_value().encode()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()
