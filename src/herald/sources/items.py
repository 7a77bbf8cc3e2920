"""Keeping what sources bring: each entry stored once per source (or research job), by
its key; an edit updates the item; the first read of a source is its baseline.

One ``SELECT`` finds which keys a read already has, then new items are inserted and
changed ones updated, in the caller's transaction. A source is read by one check at a
time (its claim, ``herald.sources.monitor``) and a research job by its own task, so no
two writers store the same scope at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.core.clock import utcnow
from herald.sources.entries import Entry
from herald.sources.models import SourceItem

# Keys looked up per SELECT (well under both databases' bound-parameter limits).
_LOOKUP_CHUNK = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Stored:
    """What storing one read did, by item id."""

    new: list[uuid.UUID] = field(default_factory=list)  # first seen, and counted as new
    updated: list[uuid.UUID] = field(default_factory=list)  # the source edited them
    baseline: list[uuid.UUID] = field(default_factory=list)  # first seen at subscribe
    unchanged: int = 0


def _newest_first(entries: Sequence[Entry]) -> list[int]:
    """Positions of ``entries`` newest first: dated ones by date, then the undated ones in
    document order (feeds list newest first when they have an order at all)."""
    dated = [i for i, e in enumerate(entries) if e.published_at is not None]
    undated = [i for i, e in enumerate(entries) if e.published_at is None]
    dated.sort(key=lambda i: entries[i].published_at or _EPOCH, reverse=True)
    return dated + undated


def store_entries(
    session: Session,
    *,
    workspace_id: uuid.UUID,
    entries: Sequence[Entry],
    source_id: uuid.UUID | None = None,
    research_id: str | None = None,
    baseline: bool = False,
    backfill: int = 0,
    now: datetime | None = None,
) -> Stored:
    """Store one read of a source (``source_id``) or one page of a research job
    (``research_id``).

    With ``baseline`` (the source's first read), items are recorded as
    ``seen_at_subscribe`` and not reported new, except the ``backfill`` newest ones.
    An entry whose key repeats within the read is stored once (the first one wins).
    """
    if (source_id is None) == (research_id is None):
        raise ValueError("store_entries needs exactly one of source_id and research_id")
    now = now or utcnow()
    unique: dict[str, Entry] = {}
    for entry in entries:
        unique.setdefault(entry.key, entry)
    batch = list(unique.values())
    existing = _existing(session, source_id, research_id, [e.key for e in batch])
    backfilled = (
        {batch[i].key for i in _newest_first(batch)[: max(backfill, 0)]} if baseline else set()
    )
    stored = Stored()
    for position, entry in enumerate(batch):
        row = existing.get(entry.key)
        if row is None:
            quiet = baseline and entry.key not in backfilled
            row = _new_row(entry, workspace_id, source_id, research_id, now, position, quiet)
            session.add(row)
            (stored.baseline if quiet else stored.new).append(row.id)
        elif row.content_hash != entry.content_hash:
            _apply(row, entry)
            row.changed_at = now
            row.revision += 1
            stored.updated.append(row.id)
        else:
            # Scores and comment counts move on their own: kept fresh, not an edit.
            row.score, row.comments = entry.score, entry.comments
            stored.unchanged += 1
    session.flush()
    return stored


def _existing(
    session: Session, source_id: uuid.UUID | None, research_id: str | None, keys: list[str]
) -> dict[str, SourceItem]:
    scope = (
        SourceItem.source_id == source_id
        if source_id is not None
        else SourceItem.research_id == research_id
    )
    found: dict[str, SourceItem] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        for row in session.scalars(select(SourceItem).where(scope, SourceItem.key.in_(chunk))):
            found[row.key] = row
    return found


def _new_row(
    entry: Entry,
    workspace_id: uuid.UUID,
    source_id: uuid.UUID | None,
    research_id: str | None,
    now: datetime,
    position: int,
    quiet: bool,
) -> SourceItem:
    row = SourceItem(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        source_id=source_id,
        research_id=research_id,
        site=entry.site,
        key=entry.key,
        # Undated items sort by when Herald first saw them, in the order the source
        # listed them (a microsecond apart, so the order is stable).
        sort_at=entry.published_at or now - timedelta(microseconds=position),
        first_seen_at=now,
        revision=1,
        seen_at_subscribe=quiet,
        auto_drafted=False,
    )
    _apply(row, entry)
    return row


def _apply(row: SourceItem, entry: Entry) -> None:
    row.guid = entry.guid
    row.link = entry.link
    row.title = entry.title
    row.summary_html = entry.summary_html
    row.summary_text = entry.summary_text
    row.author = entry.author
    if entry.published_at is not None:
        row.published_at = row.sort_at = entry.published_at
    row.source_updated_at = entry.updated_at
    row.score = entry.score
    row.comments = entry.comments
    row.comments_url = entry.comments_url
    row.extra = dict(entry.extra)
    row.content_hash = entry.content_hash
