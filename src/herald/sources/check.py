"""One check of a source, in three steps so that no transaction waits on the network
(DESIGN §2; the same shape as :mod:`herald.jobs.runner`)::

    claim / plan(session, ...) -> Plan     the claim and a short read
    read(plan) -> Read                     the network: the feed or the site answers
    record(session, plan, read) -> dict    counters, validators, items, drafts, next check

A check is claimed before it reads (``Source.claimed_due_at``), and ``record`` stores
only if that claim is still the source's: a check whose lease ran out and was taken by
another worker stores nothing, so each due check is recorded once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from herald.core.clock import utcnow
from herald.core.crypto import decrypt_json
from herald.core.errors import HeraldError
from herald.core.settings import get_settings
from herald.events.service import publish_after_commit
from herald.jobs.runner import JobFailed
from herald.sources import drafts, monitor, sites
from herald.sources.entries import Entry
from herald.sources.feed_reader import read_feed, test_feed
from herald.sources.feeds import NotAFeed
from herald.sources.fetch import FetchFailed, Validators
from herald.sources.items import store_entries
from herald.sources.models import Source, SourceKind

log = logging.getLogger(__name__)

# Statuses that say "later": the source is there but busy or failing for now.
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Plan:
    """What a check needs from the database, read under its claim."""

    source_id: uuid.UUID
    workspace_id: uuid.UUID
    claim: datetime
    kind: SourceKind
    url: str | None
    query: str | None
    settings: dict[str, Any]
    credentials: dict[str, Any] | None
    validators: Validators
    first: bool  # no baseline yet: this read is it

    def site_fields(self) -> dict[str, Any]:
        """What a site client takes besides the kind."""
        return {
            "url": self.url,
            "query": self.query,
            "settings": self.settings,
            "credentials": self.credentials,
        }


@dataclass(frozen=True)
class Read:
    """What the source answered (no database involved)."""

    status: int | None = None
    entries: list[Entry] | None = None  # None: nothing to store (304, or a failure)
    not_modified: bool = False
    error: str | None = None
    gone: bool = False  # 410: the source says it will never come back
    hint_seconds: int | None = None
    wire_bytes: int = 0
    elapsed_seconds: float = 0.0
    url: str | None = None  # where the source now is (a permanent redirect, a found feed)
    page_url: str | None = None
    validators: Validators = field(default_factory=Validators)
    title: str | None = None
    format: str | None = None


# -- claim ------------------------------------------------------------------------------


def _plan(source: Source, claim: datetime) -> Plan:
    return Plan(
        source_id=source.id,
        workspace_id=source.workspace_id,
        claim=claim,
        kind=SourceKind(source.kind),
        url=source.url,
        query=source.query,
        settings=dict(source.settings),
        credentials=decrypt_json(source.credentials_encrypted)
        if source.credentials_encrypted
        else None,
        validators=Validators(etag=source.etag, last_modified=source.last_modified),
        first=source.subscribed_at is None,
    )


def plan_claimed(session: Session, source_id: uuid.UUID, claim: datetime) -> Plan | None:
    """The plan of a check the monitor claimed, or None if the claim is no longer ours
    (the source was deleted, disabled, or its lease ran out and it was claimed again)."""
    source = session.get(Source, source_id)
    if source is None or not source.enabled or source.claimed_due_at != claim:
        return None
    return _plan(source, claim)


def claim_now(session: Session, source_id: uuid.UUID) -> Plan:
    """Claim a check of the source now (a check asked for by a person): refused while
    another check of it runs, as two reads of one source must not store at once."""
    now = utcnow()
    lease = timedelta(seconds=get_settings().source_check_lease_seconds)
    claimed = session.execute(
        update(Source)
        .where(
            Source.id == source_id,
            or_(Source.claimed_due_at.is_(None), Source.next_check_at <= now),
        )
        .values(claimed_due_at=now, next_check_at=now + lease)
    )
    if not getattr(claimed, "rowcount", 0):
        if session.get(Source, source_id) is None:
            raise JobFailed("The source was deleted.")
        raise JobFailed("A check of this source is running now; its result will show soon.")
    source = session.get_one(Source, source_id, populate_existing=True)
    return _plan(source, now)


# -- read -------------------------------------------------------------------------------


def read(plan: Plan) -> Read:
    """Ask the source (no transaction open). Never raises for what the source does."""
    if plan.kind == SourceKind.FEED:
        return _read_feed(plan)
    return _read_site(plan)


def _read_feed(plan: Plan) -> Read:
    assert plan.url is not None
    try:
        got = read_feed(plan.url, plan.validators)
    except (FetchFailed, NotAFeed) as exc:
        return Read(error=str(exc))
    fetched, document = got.fetched, got.document
    answer = Read(
        status=fetched.status,
        wire_bytes=fetched.wire_bytes,
        elapsed_seconds=fetched.elapsed_seconds,
        hint_seconds=fetched.hint_seconds,
        url=got.feed_url if got.feed_url != plan.url else None,
        page_url=got.page_url,
    )
    if fetched.status == 304:
        return replace(answer, not_modified=True, validators=plan.validators)
    if document is None:
        return replace(answer, error=_http_error(fetched.status), gone=fetched.status == 410)
    return replace(
        answer,
        hint_seconds=max(filter(None, (fetched.hint_seconds, document.ttl_seconds)), default=None),
        entries=document.entries,
        validators=fetched.validators,
        title=document.title,
        format=document.version,
    )


def _http_error(status: int) -> str:
    if status == 410:
        return "HTTP 410 Gone: the source says it has been removed for good"
    if status in _TRANSIENT:
        return f"HTTP {status}: the source is busy or failing; trying again later"
    return f"HTTP {status}"


def _read_site(plan: Plan) -> Read:
    try:
        got = sites.latest(str(plan.kind), **plan.site_fields())
    except sites.SiteError as exc:
        return Read(error=str(exc), status=exc.status, hint_seconds=exc.hint_seconds)
    return Read(
        status=got.status,
        entries=got.entries,
        hint_seconds=got.hint_seconds,
        wire_bytes=got.wire_bytes,
        elapsed_seconds=got.elapsed_seconds,
        title=got.title,
        format=sites.FORMATS[str(plan.kind)],
    )


# -- record -----------------------------------------------------------------------------


def _release(session: Session, plan: Plan) -> Source | None:
    """Take the claim back (compare-and-set): None if it is no longer ours."""
    released = session.execute(
        update(Source)
        .where(Source.id == plan.source_id, Source.claimed_due_at == plan.claim)
        .values(claimed_due_at=None)
    )
    if not getattr(released, "rowcount", 0):
        return None
    # As the UPDATE left it, whatever this session held before.
    return session.get_one(Source, plan.source_id, populate_existing=True)


def record(
    session: Session, plan: Plan, got: Read, *, auto_generate: bool | None = None
) -> dict[str, Any]:
    """Record one check: its counters, the items it found, the drafts it made and when
    the source is checked next. Returns the check's result (a job's result)."""
    now = utcnow()
    source = _release(session, plan)
    if source is None:
        log.info("check of source %s lost its claim; not recorded", plan.source_id)
        return {"source_id": str(plan.source_id), "recorded": False}
    source.checks += 1
    source.last_checked_at = now
    source.last_status = got.status
    source.bytes_fetched += got.wire_bytes
    if got.error is not None:
        return _failed(session, source, got, now)
    # What the source asks for now (a 304 that says nothing keeps the last answer's word).
    if got.hint_seconds is not None or not got.not_modified:
        source.hinted_interval_seconds = got.hint_seconds
    source.failures, source.last_error, source.last_success_at = 0, None, now
    if got.url:
        source.url = got.url
    if got.page_url:
        source.page_url = got.page_url
    stored_new: list[uuid.UUID] = []
    updated: list[uuid.UUID] = []
    made = drafts.Drafted()
    if got.not_modified:
        source.not_modified += 1
    elif got.entries is not None:
        source.etag, source.last_modified = got.validators.etag, got.validators.last_modified
        source.title = got.title or source.title
        source.format = got.format or source.format
        stored = store_entries(
            session,
            workspace_id=source.workspace_id,
            entries=got.entries,
            source_id=source.id,
            baseline=source.subscribed_at is None,
            backfill=source.backfill,
            now=now,
        )
        if source.subscribed_at is None:
            source.subscribed_at = now
        stored_new, updated = stored.new, stored.updated
        if source.auto_generate if auto_generate is None else auto_generate:
            made = drafts.from_items(session, source, stored_new, source.max_drafts_per_check)
    source.next_check_at = monitor.next_check(source, now, failed=False)
    result = {
        "source_id": str(source.id),
        "recorded": True,
        "status": got.status,
        "not_modified": got.not_modified,
        "new": [str(i) for i in stored_new],
        "updated": [str(i) for i in updated],
        "drafts": [str(p) for p in made.posts],
        "to_agent": [str(i) for i in made.to_agent],
        "next_check_at": source.next_check_at.isoformat(),
    }
    if stored_new or updated:
        publish_after_commit(
            session,
            source.workspace_id,
            "source.items",
            {"source_id": source.id, "new": len(stored_new), "updated": len(updated),
             "drafts": made.posts, "to_agent": made.to_agent},
        )  # fmt: skip
    session.flush()
    return result


def _failed(session: Session, source: Source, got: Read, now: datetime) -> dict[str, Any]:
    source.failures += 1
    source.last_error = got.error
    if got.gone:
        source.enabled = False
        source.disabled_reason = got.error
    source.next_check_at = monitor.next_check(
        source, now, failed=True, retry_after=got.hint_seconds
    )
    session.flush()
    return {
        "source_id": str(source.id),
        "recorded": True,
        "status": got.status,
        "error": got.error,
        "disabled": got.gone,
        "next_check_at": source.next_check_at.isoformat(),
    }


# -- the connection test ----------------------------------------------------------------


def probe_plan(session: Session, source_id: uuid.UUID) -> Plan:
    source = session.get(Source, source_id)
    if source is None:
        raise JobFailed("The source was deleted.")
    return _plan(source, utcnow())


def probe(plan: Plan) -> dict[str, Any]:
    """Ask the source what it is, without storing anything (a job's result)."""
    if plan.kind == SourceKind.FEED:
        assert plan.url is not None
        answer = test_feed(plan.url).as_json()
    else:
        try:
            answer = sites.test_site(str(plan.kind), **plan.site_fields())
        except HeraldError as exc:
            answer = {"reachable": False, "error": str(exc)}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in answer.items()}
