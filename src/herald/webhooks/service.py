"""Endpoints: create, read, update, delete; their delivery log, redelivery, the test ping.

A manager's tools (admins and members; reviewers get 403): an endpoint receives the workspace's
events. Another workspace's endpoint or delivery is a 404, as a missing one is. The
secret is encrypted at rest (``herald.core.crypto``) and returned once: in the answer
that made it.

Errors::

    HeraldError
    ├── NotFound        404: no such endpoint (or delivery) in this workspace
    ├── Conflict        409: a test or redelivery to a disabled endpoint, or a delivery
    │                   being sent right now
    └── InvalidInput    422: an unknown event type (the known ones listed), a URL that is
                        not http(s), or one the guarded client would refuse
"""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from herald.core.address_guard import AddressNotAllowed, check_url
from herald.core.clock import utcnow
from herald.core.errors import Conflict, InvalidInput, NotFound
from herald.core.pagination import Page, decode_cursor, encode_cursor
from herald.core.tx import after_commit
from herald.users.principal import Principal
from herald.webhooks import outbox, signing
from herald.webhooks.events import EVENT_TYPES, NAMES
from herald.webhooks.models import (
    ALL_EVENTS,
    DeliveryState,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookState,
    WebhookSubscription,
)
from herald.webhooks.outbox import POINTER_LEASE, send_pointers
from herald.webhooks.schemas import (
    WebhookCreate,
    WebhookDeliveryRead,
    WebhookRead,
    WebhookUpdate,
)

DISABLED_BY_PERSON = "disabled by a person"


def _url(url: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        usable = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not any(c.isspace() or ord(c) < 32 for c in url)
        )
        parts.port  # noqa: B018 - raises ValueError for a port out of range
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        usable = False
    if not usable:
        raise InvalidInput(
            f"url must be an absolute http:// or https:// address, not {url!r}.", field="url"
        )
    try:
        check_url(url)  # cheap here; the guarded client checks again where it connects
    except AddressNotAllowed as exc:
        raise InvalidInput(
            f"url: {exc.message}; a receiver on this machine or network needs its address "
            "in HERALD_ALLOWED_PRIVATE_NETWORKS",
            field="url",
        ) from None
    return url


def _events(events: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(e.strip() for e in events))
    unknown = [e for e in wanted if e not in NAMES and e != ALL_EVENTS]
    if unknown:
        known = ", ".join(e.name for e in EVENT_TYPES)
        raise InvalidInput(
            f"events: unknown event type(s) {', '.join(map(repr, unknown))}; "
            f"the known ones are {known}, or '*' for all.",
            field="events",
        )
    return [ALL_EVENTS] if ALL_EVENTS in wanted else wanted


def _subscribe(session: Session, webhook: Webhook, events: list[str]) -> None:
    session.execute(delete(WebhookSubscription).where(WebhookSubscription.webhook_id == webhook.id))
    session.add_all(
        WebhookSubscription(webhook_id=webhook.id, event_type=e, workspace_id=webhook.workspace_id)
        for e in events
    )
    session.flush()


def read_webhook(session: Session, webhook: Webhook, secret: str | None = None) -> WebhookRead:
    events = list(
        session.scalars(
            select(WebhookSubscription.event_type)
            .where(WebhookSubscription.webhook_id == webhook.id)
            .order_by(WebhookSubscription.event_type)
        )
    )
    return WebhookRead(
        id=webhook.id,
        url=webhook.url,
        description=webhook.description,
        events=events,
        state=webhook.state,
        disabled_reason=webhook.disabled_reason,
        consecutive_failures=webhook.consecutive_failures,
        failing_since=webhook.failing_since,
        created_at=webhook.created_at,
        updated_at=webhook.updated_at,
        secret=secret,
    )


def create_webhook(
    session: Session, principal: Principal, body: WebhookCreate
) -> tuple[Webhook, str]:
    """The endpoint and its secret (shown this once)."""
    principal.require_manager()
    url, events = _url(body.url), _events(body.events)
    secret = body.secret or signing.new_secret()
    webhook = Webhook(
        workspace_id=principal.workspace_id,
        url=url,
        description=body.description,
        secret_encrypted=signing.Secrets(secret).encrypt(),
        state=WebhookState.ACTIVE,
        consecutive_failures=0,
    )
    session.add(webhook)
    session.flush()
    _subscribe(session, webhook, events)
    return webhook, secret


def get_webhook(session: Session, principal: Principal, webhook_id: uuid.UUID) -> Webhook:
    principal.require_manager()
    webhook = session.get(Webhook, webhook_id)
    if webhook is None or webhook.workspace_id != principal.workspace_id:
        raise NotFound(f"No webhook {webhook_id}.")
    return webhook


def resolve_webhook(session: Session, principal: Principal, ref: str) -> Webhook:
    """An endpoint by its id or a unique prefix of it (the command line's way)."""
    ref = ref.strip().lower()
    matches = [w for w in list_webhooks(session, principal) if str(w.id).startswith(ref)]
    if ref and len(matches) == 1:
        return matches[0]
    if ref and matches:
        raise InvalidInput(f"{ref!r} matches {len(matches)} webhooks; give more of the id.")
    raise NotFound(f"No webhook with an id starting {ref!r}; see `herald webhook list`.")


def resolve_delivery(
    session: Session, principal: Principal, webhook: Webhook, ref: str
) -> uuid.UUID:
    """One of the endpoint's deliveries by its id or a unique prefix of it."""
    ref = ref.strip().lower()
    ids = session.scalars(
        select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == webhook.id)
    )
    matches = [d for d in ids if str(d).startswith(ref)] if ref else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidInput(f"{ref!r} matches {len(matches)} deliveries; give more of the id.")
    raise NotFound(f"No delivery of webhook {webhook.id} with an id starting {ref!r}.")


def list_webhooks(session: Session, principal: Principal) -> list[Webhook]:
    principal.require_manager()
    return list(
        session.scalars(
            select(Webhook)
            .where(Webhook.workspace_id == principal.workspace_id)
            .order_by(Webhook.created_at, Webhook.id)
        )
    )


def update_webhook(
    session: Session, principal: Principal, webhook_id: uuid.UUID, body: WebhookUpdate
) -> tuple[Webhook, str | None]:
    """The endpoint, and its new secret if one was asked for (shown this once)."""
    webhook = get_webhook(session, principal, webhook_id)
    if body.url is not None:
        webhook.url = _url(body.url)
    if body.events is not None:
        _subscribe(session, webhook, _events(body.events))
    if "description" in body.model_fields_set:
        webhook.description = body.description
    secret = None
    if body.rotate_secret:
        secret = signing.new_secret()
        current = signing.Secrets.decrypt(webhook.secret_encrypted)
        webhook.secret_encrypted = current.rotated(secret, utcnow()).encrypt()
    if body.state is not None and body.state != webhook.state:
        if body.state == WebhookState.ACTIVE:
            enable(session, webhook)
        else:
            webhook.state, webhook.disabled_reason = WebhookState.DISABLED, DISABLED_BY_PERSON
    webhook.updated_at = utcnow()
    session.flush()
    return webhook, secret


def enable(session: Session, webhook: Webhook) -> None:
    """Active again: the failure streak is forgotten and what waited is due now."""
    now = utcnow()
    webhook.state, webhook.disabled_reason = WebhookState.ACTIVE, None
    webhook.consecutive_failures, webhook.failing_since = 0, None
    ids = list(
        session.scalars(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.webhook_id == webhook.id,
                WebhookDelivery.state == DeliveryState.PENDING,
            )
            .values(due_at=now, lease_until=now + POINTER_LEASE, updated_at=now)
            .returning(WebhookDelivery.id)
            .execution_options(synchronize_session=False)
        )
    )
    if ids:
        after_commit(session, lambda: send_pointers(ids))


def delete_webhook(session: Session, principal: Principal, webhook_id: uuid.UUID) -> None:
    session.delete(get_webhook(session, principal, webhook_id))
    session.flush()


def _delivery_read(delivery: WebhookDelivery, event_type: str) -> WebhookDeliveryRead:
    return WebhookDeliveryRead(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=event_type,
        state=delivery.state,
        attempts=delivery.attempts,
        due_at=delivery.due_at,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        response_excerpt=delivery.response_excerpt,
        duration_ms=delivery.duration_ms,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
    )


def list_deliveries(
    session: Session,
    principal: Principal,
    webhook_id: uuid.UUID,
    *,
    state: DeliveryState | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[WebhookDeliveryRead]:
    """The endpoint's delivery log, newest first (keyset pages)."""
    webhook = get_webhook(session, principal, webhook_id)
    query = (
        select(WebhookDelivery, WebhookEvent.type)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.webhook_id == webhook.id)
    )
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    if cursor:
        at, last_id = decode_cursor(cursor, 2)
        try:
            before, before_id = datetime.fromisoformat(str(at)), uuid.UUID(str(last_id))
            if before.tzinfo is None:
                raise ValueError("a cursor's time has its zone")
        except ValueError:
            raise InvalidInput(
                "cursor is not one Herald returned; start again without it.", field="cursor"
            ) from None
        query = query.where(
            (WebhookDelivery.created_at < before)
            | ((WebhookDelivery.created_at == before) & (WebhookDelivery.id < before_id))
        )
    rows = session.execute(
        query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(
            limit + 1
        )
    ).all()
    items = [_delivery_read(d, t) for d, t in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        next_cursor = encode_cursor([last.created_at.isoformat(), str(last.id)])
    return Page(items=items, next_cursor=next_cursor)


def redeliver(
    session: Session, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDeliveryRead:
    """Send the delivery's event again (same event id: receivers dedupe on it), now."""
    webhook = get_webhook(session, principal, webhook_id)
    found = session.execute(
        select(WebhookDelivery, WebhookEvent.type)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook.id)
    ).first()
    if found is None:
        raise NotFound(f"No delivery {delivery_id} of webhook {webhook_id}.")
    _require_active(webhook, "redeliver")
    delivery, event_type = found
    if delivery.state == DeliveryState.SENDING:
        raise Conflict(f"Delivery {delivery_id} is being sent right now; look again shortly.")
    now = utcnow()
    delivery.state, delivery.due_at = DeliveryState.PENDING, now
    delivery.lease_until, delivery.updated_at = now + POINTER_LEASE, now
    session.flush()
    after_commit(session, lambda: send_pointers([delivery_id]))
    return _delivery_read(delivery, event_type)


def _require_active(webhook: Webhook, what: str) -> None:
    if webhook.state != WebhookState.ACTIVE:
        raise Conflict(
            f"Webhook {webhook.id} is disabled ({webhook.disabled_reason}); enable it first "
            f"(PATCH state=active), then {what}."
        )


def send_test(session: Session, principal: Principal, webhook_id: uuid.UUID) -> WebhookDeliveryRead:
    """A ``webhook.test`` event to this endpoint only; its delivery (pending)."""
    webhook = get_webhook(session, principal, webhook_id)
    _require_active(webhook, "test it")
    event_id = outbox.record(
        session,
        principal.workspace_id,
        "webhook.test",
        {"webhook_id": webhook.id, "message": "Hello from Herald"},
        webhook_ids=[webhook.id],
    )
    delivery = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.event_id == event_id, WebhookDelivery.webhook_id == webhook.id
        )
    ).one()
    return _delivery_read(delivery, "webhook.test")
