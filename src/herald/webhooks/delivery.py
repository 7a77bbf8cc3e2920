"""Delivering the outbox: claim, POST with no transaction open, record, in three steps.

1. **Claim** (one short transaction): ``pending → sending`` with a lease and one attempt
   more, only if the delivery is due and its endpoint active (a compare-and-set: a
   second worker, or a duplicate message, changes nothing and stops). The event and the
   endpoint's URL and secrets are read in the same transaction.
2. **Send**, no transaction open, through the guarded HTTP client
   (:mod:`herald.core.http`: no private address unless allowed, size cap), 10 s timeout.
3. **Record** (one short write): 2xx → ``delivered``; otherwise back to ``pending`` with
   the next ``due_at`` (back-off with jitter, never before the answer's Retry-After), or
   ``failed`` once the next try would fall more than 24 h after the event. Only the
   attempt that holds the claim records (state and attempt number both checked).

The endpoint's failure streak is kept on it: a success clears it; an endpoint whose every
attempt has failed for 24 h (:data:`DISABLE_AFTER`) is disabled, and a ``410 Gone``
disables it at once. Disabling keeps its pending deliveries; enabling it again
(``PATCH state=active``) makes them due at once.

**The periodic pass** (:func:`dispatch_due`, run by the scheduler every few seconds)
puts back in ``pending`` the deliveries whose attempt lost its worker (lease over), and
sends a pointer for every due pending delivery without one on the broker, marking it
sent for :data:`~herald.webhooks.outbox.POINTER_LEASE` (so it is not sent again every
pass). Two schedulers claim disjoint rows (``SKIP LOCKED``; SQLite has one writer).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from herald.adapters.http import retry_after_seconds
from herald.core.clock import utcnow
from herald.core.db import session_scope
from herald.core.http import OutgoingRequestRefused, shared_client
from herald.core.tx import after_commit
from herald.events.service import publish_after_commit
from herald.webhooks import signing
from herald.webhooks.models import (
    DeliveryState,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookState,
)
from herald.webhooks.outbox import POINTER_LEASE, send_pointers

log = logging.getLogger(__name__)
D = DeliveryState

TIMEOUT_SECONDS = 10.0
# An attempt's lease: the request's timeouts and the two writes, with room to spare.
LEASE = timedelta(seconds=60)
# Seconds before the 1st, 2nd... retry (each ±20 % jitter), then every hour.
BACKOFF = (10, 30, 60, 300, 900, 1800, 3600)
MAX_BACKOFF = 3600.0
# No attempt is made later than this after the event.
GIVE_UP_AFTER = timedelta(hours=24)
# An endpoint whose every attempt has failed for this long is disabled.
DISABLE_AFTER = timedelta(hours=24)
EXCERPT_BYTES = 1024
DISPATCH_BATCH = 500


# -- the periodic pass -------------------------------------------------------------------


def dispatch_due(session: Session, now: datetime | None = None) -> dict[str, int]:
    """Recover abandoned attempts, then send a pointer for each due delivery (after
    commit)."""
    now = now or utcnow()
    abandoned = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.state == D.SENDING, WebhookDelivery.lease_until < now)
        .values(
            state=D.PENDING,
            lease_until=None,
            due_at=now,
            last_error="the attempt's worker stopped before it recorded an answer; sent again",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    active = select(Webhook.id).where(Webhook.state == WebhookState.ACTIVE)
    due = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.state == D.PENDING,
            WebhookDelivery.due_at <= now,
            (WebhookDelivery.lease_until.is_(None)) | (WebhookDelivery.lease_until < now),
            WebhookDelivery.webhook_id.in_(active),
        )
        .order_by(WebhookDelivery.due_at)
        .limit(DISPATCH_BATCH)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    ids = list(
        session.scalars(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due))
            .values(lease_until=now + POINTER_LEASE)
            .returning(WebhookDelivery.id)
            .execution_options(synchronize_session=False)
        )
    )
    if ids:
        after_commit(session, lambda: send_pointers(ids))
    return {"recovered": int(getattr(abandoned, "rowcount", 0) or 0), "sent": len(ids)}


# -- one attempt -------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker now holds, and everything its request needs."""

    delivery_id: uuid.UUID
    attempt: int
    webhook_id: uuid.UUID
    workspace_id: uuid.UUID
    url: str
    secrets: list[str]
    event_id: uuid.UUID
    event_type: str
    event_created_at: datetime
    body: bytes


@dataclass(frozen=True)
class Answer:
    """What the endpoint said (``status`` None: no answer: ``error`` says why)."""

    status: int | None
    error: str | None
    excerpt: str | None
    duration_ms: int
    retry_after: float | None = None


def event_body(event: WebhookEvent) -> bytes:
    """The request body: the same bytes on every attempt of the event."""
    return json.dumps(
        {
            "id": str(event.id),
            "type": event.type,
            "created_at": event.created_at.isoformat(),
            "workspace_id": str(event.workspace_id),
            "data": event.data,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def claim(session: Session, delivery_id: uuid.UUID, now: datetime | None = None) -> Claimed | None:
    """pending → sending, if due and its endpoint active; None if not (taken, not due,
    finished, endpoint disabled)."""
    now = now or utcnow()
    active = select(Webhook.id).where(Webhook.state == WebhookState.ACTIVE)
    row = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.state == D.PENDING,
            WebhookDelivery.due_at <= now,
            WebhookDelivery.webhook_id.in_(active),
        )
        .values(
            state=D.SENDING,
            attempts=WebhookDelivery.attempts + 1,
            lease_until=now + LEASE,
            updated_at=now,
        )
        .returning(WebhookDelivery.attempts, WebhookDelivery.webhook_id, WebhookDelivery.event_id)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    attempt, webhook_id, event_id = row
    webhook = session.get_one(Webhook, webhook_id)
    event = session.get_one(WebhookEvent, event_id)
    return Claimed(
        delivery_id=delivery_id,
        attempt=attempt,
        webhook_id=webhook_id,
        workspace_id=webhook.workspace_id,
        url=webhook.url,
        secrets=signing.Secrets.decrypt(webhook.secret_encrypted).in_use(now),
        event_id=event.id,
        event_type=event.type,
        event_created_at=event.created_at,
        body=event_body(event),
    )


def headers_for(claimed: Claimed, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Herald-Event-Id": str(claimed.event_id),
        "Herald-Event-Type": claimed.event_type,
        "Herald-Timestamp": str(timestamp),
        "Herald-Signature": signing.signature_header(claimed.secrets, timestamp, claimed.body),
    }


def send(claimed: Claimed) -> Answer:
    """POST the event (no transaction may be open: the client refuses)."""
    timestamp = int(utcnow().timestamp())
    client = shared_client()
    started = time.perf_counter()

    def took() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        request = client.build_request(
            "POST",
            claimed.url,
            content=claimed.body,
            headers=headers_for(claimed, timestamp),
            timeout=httpx.Timeout(TIMEOUT_SECONDS),
        )
        response = client.send(request)
        try:
            raw = response.read()
        finally:
            response.close()
    except OutgoingRequestRefused as exc:
        return Answer(None, f"refused by Herald's HTTP guard: {exc.message}", None, took())
    except httpx.TimeoutException:
        return Answer(None, f"no answer within {TIMEOUT_SECONDS:g} s", None, took())
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        # ValueError: a URL httpx cannot use (UnicodeError is one).
        failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Answer(None, failure, None, took())
    excerpt = raw[:EXCERPT_BYTES].decode("utf-8", "replace") or None
    status = response.status_code
    error = None if 200 <= status < 300 else f"HTTP {status} {response.reason_phrase}".strip()
    retry_after = retry_after_seconds(response) if status in (429, 503) else None
    return Answer(status, error, excerpt, took(), retry_after)


def backoff(attempt: int, retry_after: float | None) -> float:
    """Seconds before the next try after ``attempt`` failed ones (jitter ±20 %, at most an
    hour), never before Retry-After."""
    base = BACKOFF[min(attempt, len(BACKOFF)) - 1]
    delay = min(MAX_BACKOFF, base * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def record(
    session: Session, claimed: Claimed, answer: Answer, now: datetime | None = None
) -> D | None:
    """Record the attempt's answer; the delivery's new state (None: the claim was lost)."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "lease_until": None,
        "last_status": answer.status,
        "last_error": answer.error,
        "response_excerpt": answer.excerpt,
        "duration_ms": answer.duration_ms,
        "updated_at": now,
    }
    delivered = answer.error is None
    gone = answer.status == 410
    if delivered:
        state, values["delivered_at"] = D.DELIVERED, now
    else:
        retry_at = now + timedelta(seconds=backoff(claimed.attempt, answer.retry_after))
        if gone or retry_at > claimed.event_created_at + GIVE_UP_AFTER:
            state = D.FAILED
        else:
            state, values["due_at"] = D.PENDING, retry_at
    changed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claimed.delivery_id,
            WebhookDelivery.state == D.SENDING,
            WebhookDelivery.attempts == claimed.attempt,
        )
        .values(state=state, **values)
        .execution_options(synchronize_session=False)
    )
    if not getattr(changed, "rowcount", 0):
        log.warning(
            "webhook delivery %s changed hands while attempt %s ran",
            claimed.delivery_id,
            claimed.attempt,
        )
        return None
    _follow_endpoint(session, claimed, answer, now, gone=gone)
    return state


def _follow_endpoint(
    session: Session, claimed: Claimed, answer: Answer, now: datetime, *, gone: bool
) -> None:
    """The endpoint's failure streak; disabled after :data:`DISABLE_AFTER` of it, or at
    once on 410."""
    webhook = session.get(Webhook, claimed.webhook_id, with_for_update=True)
    if webhook is None:
        return
    if answer.error is None:
        webhook.consecutive_failures, webhook.failing_since = 0, None
        return
    webhook.consecutive_failures += 1
    webhook.failing_since = webhook.failing_since or now
    if webhook.state != WebhookState.ACTIVE:
        return
    if gone:
        disable(session, webhook, "the endpoint answered 410 Gone")
    elif now - webhook.failing_since >= DISABLE_AFTER:
        disable(
            session,
            webhook,
            f"every attempt failed for {DISABLE_AFTER.total_seconds() / 3600:g} h "
            f"({webhook.consecutive_failures} in a row; the last: {answer.error})",
        )


def disable(session: Session, webhook: Webhook, reason: str) -> None:
    """Disable an endpoint automatically: the reason on its record, a live event, a log
    line. Its pending deliveries wait for it to be enabled again."""
    webhook.state, webhook.disabled_reason = WebhookState.DISABLED, reason
    session.flush()
    log.warning("webhook %s (%s) disabled: %s", webhook.id, webhook.url, reason)
    publish_after_commit(
        session,
        webhook.workspace_id,
        "webhook.disabled",
        {"webhook_id": webhook.id, "url": webhook.url, "reason": reason},
    )


def deliver(delivery_id: uuid.UUID) -> D | None:
    """The ``deliver`` task's body: claim, send, record. None when not claimed."""
    with session_scope() as session:
        claimed = claim(session, delivery_id)
    if claimed is None:
        return None
    answer = send(claimed)
    with session_scope() as session:
        return record(session, claimed, answer)
