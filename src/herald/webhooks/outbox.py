"""The outbox: an event is written in the transaction that makes the change it reports.

:func:`record` runs inside that transaction (a Session, or the delivery hot path's
:class:`~herald.core.tx.CoreTx`: it only uses ``tx.connection()`` and prebuilt
statements run through :mod:`herald.core.direct`). It first asks which active endpoints
of the workspace subscribe to the type (one probe of the subscriptions' (workspace,
type) index): when none do, which is the usual case, that is all it costs and nothing is
written. Otherwise it inserts the event and one pending delivery per endpoint, and once
the transaction commits it sends each delivery's pointer to the ``maintenance`` queue. A
rolled-back change therefore leaves no event, and a committed one always has its
deliveries: a lost pointer only delays them until the periodic pass
(:func:`herald.webhooks.delivery.dispatch_due`) sends another.

The endpoints are read, then the deliveries inserted with their ids made here, rather than
one ``INSERT ... SELECT``: a portable UUID default in SQL does not exist on SQLite, and
the ids have to be known anyway to send the pointers.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import Executable, bindparam, insert, literal, or_, select

from herald.core import direct
from herald.core.clock import utcnow
from herald.core.tx import Tx, after_commit
from herald.webhooks.events import NAMES
from herald.webhooks.models import (
    ALL_EVENTS,
    DeliveryState,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookState,
    WebhookSubscription,
)

log = logging.getLogger(__name__)

DELIVER_TASK = "herald.webhooks.deliver"
# A pointer sent to the broker counts for this long: the periodic pass sends another for
# a delivery still pending after it (a lost message, a worker that never took it).
POINTER_LEASE = timedelta(seconds=60)


@cache
def _listeners() -> Executable:
    """The active endpoints of a workspace that subscribe to a type (or to ``*``)."""
    sub = WebhookSubscription
    return (
        select(sub.webhook_id)
        .join(Webhook, Webhook.id == sub.webhook_id)
        .where(
            sub.workspace_id == bindparam("p_workspace_id"),
            or_(sub.event_type == bindparam("p_type"), sub.event_type == literal(ALL_EVENTS)),
            Webhook.state == literal(WebhookState.ACTIVE.value),
        )
        .distinct()
    )


@cache
def _insert_event() -> Executable:
    return insert(WebhookEvent)


@cache
def _insert_deliveries() -> Executable:
    return insert(WebhookDelivery)


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    # UUIDs and datetimes as their strings, as the receiver will read them.
    value = json.loads(json.dumps(data, default=str))
    assert isinstance(value, dict)
    return value


def record(
    tx: Tx,
    workspace_id: uuid.UUID,
    event_type: str,
    data: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    *,
    webhook_ids: Sequence[uuid.UUID] | None = None,
) -> uuid.UUID | None:
    """Record an event for the endpoints that subscribe to it (or exactly for
    ``webhook_ids``: a test ping); its id, or None when no endpoint wants it.

    ``data`` may be a function, called only when some endpoint wants the event: what
    costs a read to gather is then read only for them."""
    assert event_type in NAMES, f"unknown webhook event type {event_type!r}"
    connection = tx.connection()
    if webhook_ids is None:
        found = direct.execute(
            connection, _listeners(), {"p_workspace_id": workspace_id, "p_type": event_type}
        )
        webhook_ids = [row[0] for row in found]
    if not webhook_ids:
        return None
    now = utcnow()
    event_id = uuid.uuid4()
    direct.execute(
        connection,
        _insert_event(),
        {
            "id": event_id,
            "workspace_id": workspace_id,
            "type": event_type,
            "data": _jsonable(data() if callable(data) else data),
            "created_at": now,
        },
    )
    ids = [uuid.uuid4() for _ in webhook_ids]
    deliveries = [
        {
            "id": delivery_id,
            "webhook_id": webhook_id,
            "event_id": event_id,
            "state": DeliveryState.PENDING.value,
            "attempts": 0,
            "due_at": now,
            "lease_until": now + POINTER_LEASE,
            "created_at": now,
            "updated_at": now,
        }
        for delivery_id, webhook_id in zip(ids, webhook_ids, strict=True)
    ]
    direct.execute(connection, _insert_deliveries(), deliveries)
    after_commit(tx, lambda: send_pointers(ids))
    return event_id


def send_pointers(delivery_ids: Sequence[uuid.UUID]) -> None:
    """Send one ``deliver`` message per delivery (after commit). At the first broker
    failure stop: the rest are sent by the periodic pass once their pointer lease ends."""
    # The Celery app loads here, not with this module: the services that record events
    # load in the command line, which must start fast (and most commands send nothing).
    from herald.worker import app  # noqa: PLC0415

    for delivery_id in delivery_ids:
        try:
            app.send_task(DELIVER_TASK, (str(delivery_id),), ignore_result=True)
        except Exception as exc:
            log.warning("broker unavailable; webhook deliveries wait for the next pass: %s", exc)
            return
