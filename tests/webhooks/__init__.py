"""Helpers for the event webhook tests: a movable clock, an endpoint made through the
API, and the worker's part run in this process (claim, POST, record)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from herald.core.clock import set_clock, utcnow
from herald.core.db import session_scope
from herald.webhooks import delivery, signing
from herald.webhooks.models import DeliveryState, Webhook, WebhookDelivery, WebhookState
from tests.conftest import Account
from tests.fakes.event_receiver import EventReceiver


class Clock:
    """Herald's clock, moved by the test (no sleeping for time to pass)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@contextmanager
def movable_clock() -> Iterator[Clock]:
    clock = Clock()
    set_clock(lambda: clock.now)
    try:
        yield clock
    finally:
        set_clock(None)


def add_webhook(
    client: TestClient, account: Account, receiver: EventReceiver, events: list[str] | None = None
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "events": events or ["*"], "secret": receiver.secret},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def signed_by(secret: str, request: dict[str, Any]) -> bool:
    """Whether a request the receiver got carries a valid signature for ``secret``."""
    headers = request["headers"]
    return signing.verify(
        secret, headers["herald-timestamp"], request["body"], headers["herald-signature"]
    )


def due_ids() -> list[uuid.UUID]:
    """What a worker would be given now: due pending deliveries of active endpoints."""
    with session_scope() as session:
        return list(
            session.scalars(
                select(WebhookDelivery.id)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(
                    WebhookDelivery.state == DeliveryState.PENDING,
                    WebhookDelivery.due_at <= utcnow(),
                    Webhook.state == WebhookState.ACTIVE,
                )
                .order_by(WebhookDelivery.due_at)
            )
        )


def run_due() -> list[DeliveryState | None]:
    """Run every due delivery's attempt, as workers given their pointers would."""
    return [delivery.deliver(delivery_id) for delivery_id in due_ids()]


def deliveries() -> list[WebhookDelivery]:
    with session_scope() as session:
        rows = list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))
        session.expunge_all()
        return rows
