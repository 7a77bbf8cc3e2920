from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.core.pagination import Page
from herald.users.deps import PrincipalDep
from herald.webhooks import service
from herald.webhooks.models import DeliveryState
from herald.webhooks.schemas import (
    WebhookCreate,
    WebhookDeliveryRead,
    WebhookRead,
    WebhookUpdate,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=problem_responses(401, 403))

Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=200)]


@router.get("")
def list_webhooks(principal: PrincipalDep, session: SessionDep) -> list[WebhookRead]:
    """The workspace's event webhooks (managers only)."""
    return [service.read_webhook(session, w) for w in service.list_webhooks(session, principal)]


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(422))
def create_webhook(
    body: WebhookCreate, principal: PrincipalDep, session: SessionDep
) -> WebhookRead:
    """Add an endpoint for the event types in `events`. The answer holds the signing
    secret, this once (see docs/webhooks.md for checking `Herald-Signature`)."""
    webhook, secret = service.create_webhook(session, principal, body)
    return service.read_webhook(session, webhook, secret)


@router.get("/{webhook_id}", responses=problem_responses(404))
def get_webhook(webhook_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> WebhookRead:
    return service.read_webhook(session, service.get_webhook(session, principal, webhook_id))


@router.patch("/{webhook_id}", responses=problem_responses(404, 422))
def update_webhook(
    webhook_id: uuid.UUID, body: WebhookUpdate, principal: PrincipalDep, session: SessionDep
) -> WebhookRead:
    """Change the URL, events, description or state; `rotate_secret: true` makes a new
    secret, shown once in this answer."""
    webhook, secret = service.update_webhook(session, principal, webhook_id, body)
    return service.read_webhook(session, webhook, secret)


@router.delete(
    "/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404)
)
def delete_webhook(webhook_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> None:
    """Delete the endpoint and its delivery log."""
    service.delete_webhook(session, principal, webhook_id)


@router.get("/{webhook_id}/deliveries", responses=problem_responses(404, 422))
def list_deliveries(
    webhook_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    state: DeliveryState | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[WebhookDeliveryRead]:
    """The endpoint's delivery log, newest first: each event's attempts, state, last
    status and error, duration and times."""
    return service.list_deliveries(
        session, principal, webhook_id, state=state, limit=limit, cursor=cursor
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(404, 409),
)
def redeliver(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> WebhookDeliveryRead:
    """Send the event again now, with the same event id (receivers dedupe on it)."""
    return service.redeliver(session, principal, webhook_id, delivery_id)


@router.post(
    "/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(404, 409),
)
def test_webhook(
    webhook_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> WebhookDeliveryRead:
    """Send a `webhook.test` event to this endpoint; follow it in its delivery log."""
    return service.send_test(session, principal, webhook_id)
