"""A worker's moves: claim a queued delivery, settle it with its attempt's outcome.

Both run the hot path's prebuilt statements (``publishing.statements``) through the one
compare-and-set, :func:`~herald.publishing.actions.compare_and_set.transition`.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update

from herald.channels.service import mark_needs_reconnect
from herald.core import direct
from herald.core.clock import utcnow
from herald.core.settings import get_settings
from herald.core.tx import Tx
from herald.publishing import statements
from herald.publishing.actions.compare_and_set import ChangedRow, transition
from herald.publishing.models import (
    ErrorKind,
    Publication,
    PublicationAttempt,
    PublicationState,
)
from herald.publishing.outcomes import (
    Cancelled,
    Failed,
    HoldForReconnect,
    Outcome,
    Published,
    RetryLater,
    Unconfirmed,
    WaitForBudget,
)

log = logging.getLogger(__name__)
S = PublicationState
MAX_RETRY_AFTER = 7 * 24 * 3600.0


def claim(tx: Tx, publication_id: uuid.UUID) -> ChangedRow | None:
    """queued → publishing, only if the channel is active, no cancel was asked for and an
    attempt is left; None if someone else has it. Starts the attempt's row."""
    now = utcnow()
    lease = timedelta(seconds=get_settings().publish_lease_seconds)
    params = {"p_id": publication_id, "p_updated_at": now, "p_lease_until": now + lease}
    rows = transition(
        tx, publication_id, [S.QUEUED], S.PUBLISHING, prebuilt=(statements.claim(), params)
    )
    if not rows:
        return None
    (row,) = rows
    direct.execute(
        tx.connection(),
        statements.start_attempt(),
        {
            "id": uuid.uuid4(),
            "publication_id": publication_id,
            "number": row.attempt,
            "started_at": now,
            "outcome": "started",
        },
    )
    return row


def backoff_seconds(base: float, maximum: float, attempt: int, retry_after: float | None) -> float:
    """Full jitter: uniform in [0, min(max, base·2^(attempt-1))], never before Retry-After."""
    ceiling = min(maximum, base * 2 ** (attempt - 1))
    delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not security
    if retry_after is not None:
        # Bounded: a platform's absurd Retry-After must not overflow the clock.
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def _settlement(
    outcome: Outcome, claimed: ChangedRow, retry_seconds: tuple[float, float], now: datetime
) -> tuple[PublicationState, dict[str, Any], datetime | None]:
    """Where the outcome takes the delivery: its state, the columns to set, and when it
    is tried again (None: it is not)."""
    values: dict[str, Any] = {"lease_until": None, "last_error": outcome.error}
    match outcome:
        case Published(receipt=receipt) if receipt is not None:
            values |= {
                "external_id": receipt.external_id,
                "external_url": receipt.url,
                "published_at": now,
                "error_kind": None,
                "last_error": None,
            }
            return S.PUBLISHED, values, None
        case RetryLater(retry_after=retry_after) if claimed.attempt < claimed.max_attempts:
            delay = backoff_seconds(*retry_seconds, claimed.attempt, retry_after)
            retry_at = now + timedelta(seconds=delay)
            return (
                S.RETRY_WAIT,
                values | {"due_at": retry_at, "error_kind": ErrorKind.RETRYABLE},
                retry_at,
            )
        case RetryLater():
            values |= {
                "error_kind": ErrorKind.RETRYABLE,
                "last_error": f"out of retries: {outcome.error}",
            }
            return S.FAILED, values, None
        case WaitForBudget(until=until) if until is not None:
            # Not sent: back to wait for the budget, with the reason in last_error.
            return S.RETRY_WAIT, values | {"due_at": until, "error_kind": None}, until
        case HoldForReconnect():
            # Held until the channel is reconnected. Nothing was posted and the fault is
            # the channel's: keep an attempt for then, even if this one was the last.
            values |= {
                "max_attempts": max(claimed.max_attempts, claimed.attempt + 1),
                "due_at": now,
                "error_kind": ErrorKind.AUTH,
                "last_error": f"held until the channel is reconnected: {outcome.error}",
            }
            return S.RETRY_WAIT, values, now
        case Unconfirmed():
            return S.UNCONFIRMED, values | {"error_kind": ErrorKind.AMBIGUOUS}, None
        case Cancelled():
            return S.CANCELLED, values, None
        case _:  # Failed, or a Published with no receipt (an adapter's bug)
            return S.FAILED, values | {"error_kind": ErrorKind.PERMANENT}, None


def record_outcome(
    tx: Tx,
    publication_id: uuid.UUID,
    claimed: ChangedRow,
    outcome: Outcome,
    *,
    retry_seconds: tuple[float, float],
) -> None:
    """Settle the attempt ``claimed`` (the claim's row) with its outcome, only if the
    delivery is still that attempt's (a reconciled, re-claimed one has a newer one)."""
    now = utcnow()
    target, values, retry_at = _settlement(outcome, claimed, retry_seconds, now)
    if isinstance(outcome, HoldForReconnect):
        mark_needs_reconnect(tx, claimed.channel_id, outcome.error or "credentials refused")
    params = {
        "p_id": publication_id,
        "p_attempt": claimed.attempt,
        "p_state": target,
        "p_updated_at": now,
        **{f"p_{column}": value for column, value in values.items()},
    }
    settle = statements.settle(tuple(sorted(values)))
    if transition(tx, publication_id, [S.PUBLISHING], target, prebuilt=(settle, params)):
        if isinstance(outcome, WaitForBudget):
            _give_back_attempt(tx, publication_id, claimed.attempt)
        if target == S.RETRY_WAIT:
            _cancel_if_requested(tx, publication_id)
        if isinstance(outcome, WaitForBudget):
            return
    else:
        log.warning(
            "delivery %s changed hands while attempt %s ran", publication_id, claimed.attempt
        )
    retrying = isinstance(outcome, RetryLater) and retry_at is None
    direct.execute(
        tx.connection(),
        statements.finish_attempt(),
        {
            "p_publication_id": publication_id,
            "p_number": claimed.attempt,
            "p_finished_at": now,
            # Out of retries: the attempt's own outcome says it failed.
            "p_outcome": Failed.kind if retrying else outcome.kind,
            "p_error": outcome.error,
            "p_retry_at": retry_at,
            "p_external_id": outcome.receipt.external_id
            if isinstance(outcome, Published) and outcome.receipt
            else None,
            "p_external_url": outcome.receipt.url
            if isinstance(outcome, Published) and outcome.receipt
            else None,
        },
    )


def _give_back_attempt(tx: Tx, publication_id: uuid.UUID, number: int) -> None:
    """A delivery the rate budget held back was never sent: the claim's attempt is
    undone (its count and its row), so waiting for a budget uses up no retry."""
    tx.execute(
        update(Publication)
        .where(
            Publication.id == publication_id,
            Publication.state == S.RETRY_WAIT,
            Publication.attempt == number,
        )
        .values(attempt=number - 1)
    )
    tx.execute(
        delete(PublicationAttempt).where(
            PublicationAttempt.publication_id == publication_id,
            PublicationAttempt.number == number,
        )
    )


def _cancel_if_requested(tx: Tx, publication_id: uuid.UUID) -> None:
    """A cancel asked for while the attempt ran: honoured now that it waits to retry."""
    transition(
        tx,
        publication_id,
        [S.RETRY_WAIT],
        S.CANCELLED,
        where=[Publication.cancel_requested.is_(True)],
        values={"last_error": "cancelled"},
    )
