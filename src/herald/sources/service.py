"""Sources: create, read, update, delete; their items; and the jobs that check and test
them on demand (the checks themselves: :mod:`herald.sources.check`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, Uuid, and_, column, or_, select, table
from sqlalchemy.orm import Session

from herald.core.address_guard import check_url
from herald.core.clock import utcnow
from herald.core.crypto import encrypt_json
from herald.core.dates import to_utc
from herald.core.db import flush_unique, own_row, own_rows, resolve_ref
from herald.core.errors import InvalidInput
from herald.core.pagination import decode_cursor, encode_cursor
from herald.core.tx import after_commit
from herald.jobs import service as jobs
from herald.jobs.models import Job
from herald.sources import sites
from herald.sources.models import ItemUse, Source, SourceItem, SourceKind
from herald.sources.schemas import ItemRead, SourceCreate, SourceRead, SourceUpdate
from herald.users.principal import Principal
from herald.worker import app as celery_app

CHECK_JOB_TASK = "herald.sources.check_job"
TEST_JOB_TASK = "herald.sources.test_job"


# -- the source itself ------------------------------------------------------------------


def _http_url(url: str | None, kind: SourceKind) -> str:
    if not url:
        raise InvalidInput(f"A {kind} source needs a url.", field="url")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"url must be an absolute http:// or https:// address, not {url!r}.", field="url"
        )
    check_url(url)  # a refused address is refused now, not at the first check
    return url


def _fields(
    kind: SourceKind, url: str | None, query: str | None, settings: dict[str, Any]
) -> tuple[str | None, str | None, dict[str, Any]]:
    """The source's url, query and settings, checked and normalised for its kind."""
    if kind == SourceKind.FEED:
        if query:
            raise InvalidInput("A feed source takes a url, not a query.", field="query")
        return _http_url(url, kind), None, settings
    if url:
        url = _http_url(url, kind)
    return sites.check_config(str(kind), url=url, query=query, settings=settings)


# The agents' table, named as the foreign key names it: agents build on sources, so
# sources never import the agents package (tests/test_layers.py).
_AGENTS = table("agents", column("id", Uuid()), column("workspace_id", Uuid()))


def _agent_id(
    session: Session, principal: Principal, agent_id: uuid.UUID | None
) -> uuid.UUID | None:
    """The agent's id if it is this workspace's; another's answers as a missing one."""
    if agent_id is None:
        return None
    found = session.scalar(
        select(_AGENTS.c.id).where(
            _AGENTS.c.id == agent_id, _AGENTS.c.workspace_id == principal.workspace_id
        )
    )
    if found is None:
        raise InvalidInput(f"No agent {agent_id}.", field="agent_id")
    return agent_id


def create_source(session: Session, principal: Principal, body: SourceCreate) -> Source:
    principal.require_manager()
    url, query, settings = _fields(body.kind, body.url, body.query, dict(body.settings))
    source = Source(
        workspace_id=principal.workspace_id,
        kind=body.kind,
        name=body.name,
        url=url,
        query=query,
        settings=settings,
        credentials_encrypted=encrypt_json(dict(body.credentials)) if body.credentials else None,
        interval_minutes=body.interval_minutes,
        enabled=body.enabled,
        agent_id=_agent_id(session, principal, body.agent_id),
        auto_generate=body.auto_generate,
        max_drafts_per_check=body.max_drafts_per_check,
        backfill=body.backfill,
        # The first check (the baseline) as soon as a worker can take it.
        next_check_at=utcnow(),
        failures=0,
        checks=0,
        not_modified=0,
        bytes_fetched=0,
    )
    session.add(source)
    flush_unique(session, "source", body.name)
    return source


def get_source(session: Session, principal: Principal, source_id: uuid.UUID) -> Source:
    return own_row(session, Source, principal.workspace_id, source_id, "source")


def resolve_source(session: Session, principal: Principal, ref: str) -> Source:
    """A source by its id, a unique prefix of its id, or its name (the CLI's argument)."""
    return resolve_ref(session, Source, principal.workspace_id, ref, "source")


def list_sources(session: Session, principal: Principal) -> list[Source]:
    return own_rows(session, Source, principal.workspace_id)


def update_source(
    session: Session, principal: Principal, source_id: uuid.UUID, body: SourceUpdate
) -> Source:
    principal.require_manager()
    source = get_source(session, principal, source_id)
    given = body.model_fields_set
    if given & {"url", "query", "settings"}:
        url = body.url if "url" in given else (source.page_url or source.url)
        query = body.query if "query" in given else source.query
        settings = dict(body.settings) if body.settings is not None else source.settings
        new_url, source.query, source.settings = _fields(source.kind, url, query, settings)
        if "url" in given and new_url not in (source.url, source.page_url):
            # Another address: its validators and the page it was found through are not
            # this one's. Items keep their identity (keys do not depend on the URL).
            source.url, source.page_url = new_url, None
            source.etag = source.last_modified = None
            source.next_check_at = utcnow()
    if "credentials" in given:
        source.credentials_encrypted = (
            encrypt_json(dict(body.credentials)) if body.credentials else None
        )
    if body.name is not None:
        source.name = body.name
    if body.interval_minutes is not None:
        source.interval_minutes = body.interval_minutes
    if body.enabled is not None:
        if body.enabled and not source.enabled:
            source.disabled_reason, source.failures = None, 0
            source.next_check_at = utcnow()
        elif not body.enabled:
            source.disabled_reason = "disabled by a person"
        source.enabled = body.enabled
    if "agent_id" in given:
        source.agent_id = _agent_id(session, principal, body.agent_id)
    if body.auto_generate is not None:
        source.auto_generate = body.auto_generate
    if body.max_drafts_per_check is not None:
        source.max_drafts_per_check = body.max_drafts_per_check
    flush_unique(session, "source", source.name)
    return source


def delete_source(session: Session, principal: Principal, source_id: uuid.UUID) -> None:
    """Delete the source and its items (drafts made from them stay)."""
    principal.require_manager()
    source = get_source(session, principal, source_id)
    session.delete(source)
    session.flush()


def read_source(source: Source) -> SourceRead:
    return SourceRead.model_validate(
        {
            **{
                name: getattr(source, name)
                for name in SourceRead.model_fields
                if name not in ("has_credentials", "checking")
            },
            "has_credentials": source.credentials_encrypted is not None,
            "checking": source.claimed_due_at is not None,
        }
    )


# -- items ------------------------------------------------------------------------------


def list_items(
    session: Session,
    principal: Principal,
    *,
    source_id: uuid.UUID | None = None,
    q: str | None = None,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ItemRead], str | None]:
    """Items newest first (published time, or first seen for undated ones), one page."""
    conditions: list[ColumnElement[bool]] = [SourceItem.workspace_id == principal.workspace_id]
    if source_id is not None:
        get_source(session, principal, source_id)
        conditions.append(SourceItem.source_id == source_id)
    if since is not None:
        try:
            conditions.append(SourceItem.sort_at >= to_utc(since))
        except ValueError as exc:
            raise InvalidInput(f"since: {exc}", field="since") from None
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(
                SourceItem.title.ilike(pattern, escape="\\"),
                SourceItem.summary_text.ilike(pattern, escape="\\"),
            )
        )
    if cursor:
        raw_at, raw_id = decode_cursor(cursor, 2)
        try:
            at, after_id = datetime.fromisoformat(str(raw_at)), uuid.UUID(str(raw_id))
        except ValueError:
            raise InvalidInput(
                "cursor is not one Herald returned; start again without it.", field="cursor"
            ) from None
        conditions.append(
            or_(SourceItem.sort_at < at, and_(SourceItem.sort_at == at, SourceItem.id < after_id))
        )
    rows = list(
        session.scalars(
            select(SourceItem)
            .where(*conditions)
            .order_by(SourceItem.sort_at.desc(), SourceItem.id.desc())
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    uses = drafts_of(session, [r.id for r in rows])
    page = [read_item(r, uses.get(r.id, [])) for r in rows]
    next_cursor = encode_cursor([rows[-1].sort_at.isoformat(), str(rows[-1].id)]) if more else None
    return page, next_cursor


def items_by_id(
    session: Session, principal: Principal, item_ids: list[uuid.UUID]
) -> list[ItemRead]:
    """These items of the workspace, newest first."""
    rows = session.scalars(
        select(SourceItem)
        .where(SourceItem.workspace_id == principal.workspace_id, SourceItem.id.in_(item_ids))
        .order_by(SourceItem.sort_at.desc(), SourceItem.id.desc())
    ).all()
    uses = drafts_of(session, [r.id for r in rows])
    return [read_item(r, uses.get(r.id, [])) for r in rows]


def drafts_of(session: Session, item_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    if item_ids:
        query = select(ItemUse.item_id, ItemUse.post_id).where(ItemUse.item_id.in_(item_ids))
        for item_id, post_id in session.execute(query.order_by(ItemUse.created_at)):
            found.setdefault(item_id, []).append(post_id)
    return found


def read_item(item: SourceItem, drafts: list[uuid.UUID]) -> ItemRead:
    return ItemRead.model_validate(
        {
            **{name: getattr(item, name) for name in ItemRead.model_fields if name != "drafts"},
            "drafts": drafts,
        }
    )


# -- on-demand jobs ---------------------------------------------------------------------


def _start(session: Session, principal: Principal, task: str, kind: str, params: Any) -> Job:
    job = jobs.create_job(
        session,
        workspace_id=principal.workspace_id,
        owner_id=principal.user_id,
        kind=kind,
        params=params,
    )
    job_id = job.id
    after_commit(session, lambda: celery_app.send_task(task, (job_id,), task_id=job_id))
    return job


def start_check(
    session: Session, principal: Principal, source_id: uuid.UUID, auto_generate: bool | None
) -> Job:
    """Check the source now, in the background (job kind ``source.check``): it stores
    items and may write drafts, so it is a manager's action (a test stores nothing)."""
    principal.require_manager()
    source = get_source(session, principal, source_id)
    params: dict[str, Any] = {"source_id": str(source.id)}
    if auto_generate is not None:
        params["auto_generate"] = auto_generate
    return _start(session, principal, CHECK_JOB_TASK, "source.check", params)


def start_test(session: Session, principal: Principal, source_id: uuid.UUID) -> Job:
    """Test the source's connection in the background (job kind ``source.test``): what
    it answers, what it is, how many items; nothing is stored."""
    source = get_source(session, principal, source_id)
    return _start(session, principal, TEST_JOB_TASK, "source.test", {"source_id": str(source.id)})
