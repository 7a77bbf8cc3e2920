"""Webhook: POST the post as JSON to a URL, signed, with an Idempotency-Key.

Receivers check ``X-Herald-Signature: sha256=<hex>``, the HMAC-SHA256 with the channel's
secret over ``"<X-Herald-Timestamp>.<raw body>"``, and reject old timestamps to stop
replays. The same delivery always carries the same ``Idempotency-Key``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, ClassVar

import httpx
from pydantic import Field, HttpUrl

from herald.adapters.base import Identity, Limits, PostContent, Receipt, Rendition, StrictModel
from herald.adapters.http import HttpAdapter, HttpSettings
from herald.adapters.registry import register


class WebhookCredentials(StrictModel):
    url: HttpUrl = Field(description="Where Herald POSTs; http(s) only.")
    secret: str = Field(min_length=16, description="Shared secret for the HMAC signature.")


class WebhookSettings(HttpSettings):
    pass


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers (and tests): constant-time check of a signature header."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@register
class WebhookAdapter(HttpAdapter[WebhookCredentials, WebhookSettings]):
    platform = "webhook"
    display_name = "Webhook"
    credentials_model = WebhookCredentials
    settings_model = WebhookSettings
    limits = Limits()
    # Our receivers deduplicate by Idempotency-Key, so resending after a timeout is safe.
    honours_idempotency_key: ClassVar[bool] = True

    def _post(self, event: str, payload: dict[str, Any], idempotency_key: str) -> httpx.Response:
        body = json.dumps({"event": event, **payload}, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            "X-Herald-Event": event,
            "X-Herald-Timestamp": timestamp,
            "X-Herald-Signature": sign(self.credentials.secret, timestamp, body),
        }
        request = self.build_request(
            "POST", str(self.credentials.url), content=body, headers=headers
        )
        return self.send(request)

    def verify(self) -> Identity:
        response = self._post("ping", {}, idempotency_key=f"ping-{time.time_ns()}")
        # The host only: a webhook URL often carries its own token in the path.
        return Identity(
            name=self.credentials.url.host or "webhook", detail={"status": response.status_code}
        )

    def render(self, post: PostContent) -> Rendition:
        document = {
            "id": str(post.id),
            "title": post.title,
            "body_markdown": post.body,
            "excerpt": post.excerpt,
            "tags": list(post.tags),
            "canonical_url": post.canonical_url,
        }
        return Rendition(format="json", parts=(json.dumps(document),), title=post.title)

    def publish(self, rendition: Rendition, idempotency_key: str) -> Receipt:
        payload = {"idempotency_key": idempotency_key, "post": json.loads(rendition.parts[0])}
        response = self._post("post.published", payload, idempotency_key)
        data: dict[str, Any] = {}
        try:
            parsed = response.json()
            if isinstance(parsed, dict):
                data = parsed
        except ValueError:
            pass
        return Receipt(
            external_id=str(data.get("id") or idempotency_key),
            url=data.get("url") if isinstance(data.get("url"), str) else None,
            data={"status": response.status_code},
        )
