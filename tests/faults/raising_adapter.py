"""An adapter that breaks after sending, as the folder adapter did for a channel at
``../../tmp/x``: the file was written, then ``Path.as_uri()`` raised ValueError, and
raised it again in ``find_existing``. Imported by the test and preloaded by its worker."""

from __future__ import annotations

from typing import ClassVar

from herald.adapters.base import Receipt, Rendition
from herald.adapters.registry import register
from herald.adapters.webhook import WebhookAdapter

MESSAGE = "relative path can't be expressed as a file URI"


@register
class RaisesAfterSending(WebhookAdapter):
    platform = "test-raises-after-sending"
    display_name = "Raises after sending (test)"
    # Like the folder: a resend is made safe by looking the post up, not by a key.
    honours_idempotency_key: ClassVar[bool] = False

    def publish(self, rendition: Rendition, idempotency_key: str) -> Receipt:
        super().publish(rendition, idempotency_key)
        raise ValueError(MESSAGE)

    def find_existing(self, rendition: Rendition, idempotency_key: str) -> Receipt | None:
        raise ValueError(MESSAGE)
