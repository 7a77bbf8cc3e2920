"""Signatures and secrets.

``Herald-Signature: v1=<hex>`` where ``<hex>`` is HMAC-SHA256 with the endpoint's secret
over ``f"{timestamp}.{body}"`` (``timestamp``: the ``Herald-Timestamp`` header, unix
seconds; ``body``: the raw request body). While a rotated secret is still honoured
(:data:`ROTATION_OVERLAP` after ``rotate_secret``) the header holds one ``v1=`` value per
secret, comma-separated, newest first: a receiver accepts the request if any matches.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from herald.core.crypto import decrypt_json, encrypt_json

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# How long the previous secret still signs after a rotation, so receivers can switch.
ROTATION_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """One ``v1=`` value."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signature_header(secrets_in_use: list[str], timestamp: int, body: bytes) -> str:
    return ",".join(sign(secret, timestamp, body) for secret in secrets_in_use)


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """A receiver's check (tests use it): does any ``v1=`` value match ``secret``?"""
    if not timestamp.isdigit():
        return False
    wanted = sign(secret, int(timestamp), body)
    return any(hmac.compare_digest(wanted, part.strip()) for part in header.split(","))


@dataclass(frozen=True)
class Secrets:
    """An endpoint's secret, and the one it replaced while that still signs."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def in_use(self, now: datetime) -> list[str]:
        if self.previous and self.previous_until and now < self.previous_until:
            return [self.current, self.previous]
        return [self.current]

    def encrypt(self) -> bytes:
        return encrypt_json(
            {
                "current": self.current,
                "previous": self.previous,
                "previous_until": self.previous_until.isoformat() if self.previous_until else None,
            }
        )

    @classmethod
    def decrypt(cls, token: bytes) -> Secrets:
        data = decrypt_json(token)
        until = data.get("previous_until")
        return cls(
            current=str(data["current"]),
            previous=data.get("previous"),
            previous_until=datetime.fromisoformat(until) if until else None,
        )

    def rotated(self, new: str, now: datetime) -> Secrets:
        return Secrets(current=new, previous=self.current, previous_until=now + ROTATION_OVERLAP)
