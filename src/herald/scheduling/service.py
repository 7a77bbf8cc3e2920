"""Scheduling: deliveries at an exact time, and periodic jobs that are safe to run twice."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.core.clock import utcnow
from herald.core.dates import to_utc
from herald.core.db import session_scope
from herald.core.errors import InvalidInput
from herald.core.settings import get_settings
from herald.jobs.models import OWN_RETENTION_KINDS, READY_STATES, Job
from herald.publishing import actions
from herald.publishing.models import DUE, Publication
from herald.scheduling.models import PeriodicRun, SlotReservation
from herald.users.models import LoginFailure
from herald.users.principal import Principal
from herald.webhooks.models import FINISHED, WebhookDelivery, WebhookEvent

log = logging.getLogger(__name__)

# Allow a little slack so "now" typed by a person is not refused as past.
PAST_TOLERANCE = timedelta(seconds=60)
_ZONE_SUFFIX = re.compile(
    r"^(?P<local>.+?)(?:\s+|\[)(?P<zone>[A-Za-z_]+(?:/[A-Za-z0-9_+\-]+)*)\]?$"
)


def parse_when(value: str) -> datetime:
    """ISO 8601 with an offset, or a local time followed by a zone name.

    Accepts ``2026-12-03T10:00:00+01:00``, ``2026-12-03T09:00Z``,
    ``2026-12-03 10:00 Europe/Warsaw`` and ``2026-12-03T10:00[Europe/Warsaw]`` (RFC 9557).
    """
    text = value.strip()
    match = _ZONE_SUFFIX.match(text)
    if match and not text.endswith("Z"):
        try:
            zone = ZoneInfo(match.group("zone"))
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(
                f"unknown time zone {match.group('zone')!r}", field="scheduled_at"
            ) from None
        local = _parse_iso(match.group("local"))
        if local.tzinfo is not None:
            raise InvalidInput("give an offset or a zone name, not both", field="scheduled_at")
        return _in_utc(local.replace(tzinfo=zone))
    moment = _parse_iso(text)
    if moment.tzinfo is None:
        raise InvalidInput(
            "scheduled_at needs an offset (2026-12-03T10:00+01:00) or a zone name "
            "(2026-12-03 10:00 Europe/Warsaw)",
            field="scheduled_at",
        )
    return _in_utc(moment)


def _in_utc(moment: datetime) -> datetime:
    try:
        return to_utc(moment)
    except ValueError as exc:
        raise InvalidInput(f"scheduled_at: {exc}", field="scheduled_at") from None


def _parse_iso(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not an ISO 8601 date and time", field="scheduled_at"
        ) from None


def _future(moment: datetime) -> datetime:
    if moment < utcnow() - PAST_TOLERANCE:
        raise InvalidInput(
            f"scheduled_at {moment.isoformat()} is in the past; publish now instead",
            field="scheduled_at",
        )
    return moment


def schedule(
    session: Session,
    principal: Principal,
    post_id: uuid.UUID,
    channel_ids: list[uuid.UUID],
    when: datetime,
) -> list[Publication]:
    """Deliver the post to each channel at ``when`` (not in the past)."""
    return actions.publish(session, principal, post_id, channel_ids, due_at=_future(when))


def reschedule(
    session: Session,
    principal: Principal,
    post_id: uuid.UUID,
    when: datetime,
    channel_ids: list[uuid.UUID] | None = None,
) -> list[Publication]:
    """Move scheduled deliveries to a new time; those that already went out are left alone."""
    return actions.reschedule(session, principal, post_id, _future(when), channel_ids)


def upcoming(session: Session, principal: Principal, limit: int = 200) -> list[Publication]:
    return list(
        session.scalars(
            select(Publication)
            .where(
                Publication.workspace_id == principal.workspace_id,
                Publication.state.in_(list(DUE)),
            )
            .order_by(Publication.due_at)
            .limit(limit)
        )
    )


# --- the dispatcher ----------------------------------------------------------------------


def next_due_at(session: Session) -> datetime | None:
    """When the dispatcher next has something to do. Deliveries held by a paused or
    broken channel do not count: due long ago, they would keep the scheduler from
    sleeping at all until the channel is fixed (its fix releases them itself)."""
    return session.scalar(
        select(Publication.due_at)
        .where(*actions.waiting_to_dispatch())
        .order_by(Publication.due_at)
        .limit(1)
    )


# --- periodic jobs ----------------------------------------------------------------------


def claim_period(session: Session, name: str, period_key: int) -> bool:
    """True for the first run of ``name`` in this period; any later one gets False."""
    now = utcnow()
    result = session.execute(
        update(PeriodicRun)
        .where(PeriodicRun.name == name, PeriodicRun.period_key < period_key)
        .values(
            period_key=period_key,
            last_run_at=now,
            last_status="running",
            last_error=None,
            run_count=PeriodicRun.run_count + 1,
        )
    )
    if getattr(result, "rowcount", 0):
        return True
    if session.get(PeriodicRun, name) is None:
        try:
            with session.begin_nested():
                session.add(
                    PeriodicRun(
                        name=name,
                        period_key=period_key,
                        last_run_at=now,
                        last_status="running",
                        run_count=1,
                    )
                )
            return True
        except IntegrityError:
            pass
    session.execute(
        update(PeriodicRun)
        .where(PeriodicRun.name == name)
        .values(skipped_count=PeriodicRun.skipped_count + 1)
    )
    return False


def finish_period(
    session: Session, name: str, *, result: dict[str, Any] | None, error: str | None
) -> None:
    session.execute(
        update(PeriodicRun)
        .where(PeriodicRun.name == name)
        .values(
            last_finished_at=utcnow(),
            last_status="failed" if error else "ok",
            last_result=result,
            last_error=error,
        )
    )


def periodic_runs(session: Session) -> dict[str, PeriodicRun]:
    return {row.name: row for row in session.scalars(select(PeriodicRun))}


def clean_old_records(session: Session) -> dict[str, int]:
    """Delete finished job records past the retention, expired login failures, slot
    reservations for instants already past (the queue only looks ahead of now), and
    finished event webhook deliveries and their events past 30 days.

    Job rows that carry a delivery stay: they are the delivery's task history. Kinds with
    a retention of their own (``OWN_RETENTION_KINDS``) are cleaned by their feature.
    """
    settings = get_settings()
    cutoff = utcnow() - timedelta(days=settings.job_retention_days)
    carries_delivery = select(Publication.task_id)
    jobs = session.execute(
        delete(Job).where(
            Job.state.in_(READY_STATES),
            Job.finished_at < cutoff,
            Job.id.not_in(carries_delivery),
            Job.kind.not_in(OWN_RETENTION_KINDS),
        )
    )
    window = utcnow() - timedelta(seconds=settings.login_window_seconds)
    logins = session.execute(delete(LoginFailure).where(LoginFailure.at < window))
    reservations = session.execute(delete(SlotReservation).where(SlotReservation.due_at < utcnow()))
    webhooks = clean_old_webhook_records(session, utcnow() - WEBHOOK_RETENTION)
    return {
        **webhooks,
        "jobs_deleted": int(getattr(jobs, "rowcount", 0) or 0),
        "login_failures_deleted": int(getattr(logins, "rowcount", 0) or 0),
        "slot_reservations_deleted": int(getattr(reservations, "rowcount", 0) or 0),
    }


# Event webhook deliveries that are finished, and events no delivery refers to, are kept
# this long (the delivery log's reach).
WEBHOOK_RETENTION = timedelta(days=30)


def clean_old_webhook_records(session: Session, cutoff: datetime) -> dict[str, int]:
    """Delete delivered and failed webhook deliveries, and events left without any
    delivery, older than ``cutoff``."""
    done = session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.state.in_(list(FINISHED)), WebhookDelivery.created_at < cutoff
        )
    )
    referenced = select(WebhookDelivery.event_id)
    events = session.execute(
        delete(WebhookEvent).where(
            WebhookEvent.created_at < cutoff, WebhookEvent.id.not_in(referenced)
        )
    )
    return {
        "webhook_deliveries_deleted": int(getattr(done, "rowcount", 0) or 0),
        "webhook_events_deleted": int(getattr(events, "rowcount", 0) or 0),
    }


def epoch_key(moment: datetime, period_seconds: float) -> int:
    return int(moment.timestamp() // period_seconds)


def utc_day_key(moment: datetime) -> int:
    return int(moment.astimezone(UTC).strftime("%Y%m%d"))


# -- running a periodic job ---------------------------------------------------------------


def run_periodic(
    name: str,
    period_key: Callable[[datetime], int],
    body: Callable[[Session], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``body`` once in the period ``period_key`` names (a second scheduler sending
    it in the same period skips), recording its outcome for `GET /schedule/periodic`."""
    with session_scope() as session:
        if not claim_period(session, name, period_key(utcnow())):
            log.info("%s already ran this period; skipping", name)
            return {"skipped": True}
    try:
        with session_scope() as session:
            result = body(session)
    except Exception as exc:
        with session_scope() as session:
            finish_period(session, name, result=None, error=f"{type(exc).__name__}: {exc}")
        raise
    with session_scope() as session:
        finish_period(session, name, result=result, error=None)
    return result
