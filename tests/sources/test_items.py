"""Storing what sources bring: identity, edits, baselines, research scopes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from herald.core.db import session_scope
from herald.jobs.service import create_job
from herald.sources.entries import Entry, item_key, normalise_link
from herald.sources.items import Stored, store_entries
from herald.sources.models import Source, SourceItem, SourceKind
from tests.conftest import Account

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _source(account: Account) -> uuid.UUID:
    with session_scope() as s:
        source = Source(
            workspace_id=account.workspace_id,
            kind=SourceKind.FEED,
            name=f"feed-{uuid.uuid4().hex[:6]}",
            url="https://example.org/feed.xml",
        )
        s.add(source)
        s.flush()
        return source.id


def _entry(n: int, **changes: Any) -> Entry:
    fields: dict[str, Any] = {
        "site": "feed",
        "title": f"Item {n}",
        "guid": f"urn:item:{n}",
        "link": f"https://example.org/{n}",
        "summary_html": f"<p>Body {n}</p>",
        "summary_text": f"Body {n}",
        "published_at": T0 + timedelta(minutes=n),
    }
    fields.update(changes)
    return Entry(**fields)


def _store(
    source_id: uuid.UUID,
    account: Account,
    entries: list[Entry],
    *,
    baseline: bool = False,
    backfill: int = 0,
) -> Stored:
    with session_scope() as s:
        return store_entries(
            s,
            workspace_id=account.workspace_id,
            entries=entries,
            source_id=source_id,
            baseline=baseline,
            backfill=backfill,
        )


def _count(source_id: uuid.UUID) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).where(SourceItem.source_id == source_id)) or 0


def test_identity_prefers_the_id_then_the_normalised_link_then_a_hash() -> None:
    assert item_key(_entry(1)) == "id:urn:item:1"
    by_link = _entry(1, guid=None, link="HTTPS://Example.org:443/1?utm_source=rss#top")
    assert item_key(by_link) == "link:https://example.org/1"
    assert normalise_link("http://a.example/x?b=2&a=1") == "http://a.example/x?a=1&b=2"
    assert normalise_link(" http://a.example:99999/x ") == "http://a.example:99999/x"
    hashed = _entry(1, guid=None, link=None)
    assert item_key(hashed).startswith("hash:")
    assert item_key(hashed) == item_key(_entry(1, guid=None, link=None, published_at=None))
    assert item_key(hashed) != item_key(_entry(2, guid=None, link=None))
    long_id = "x" * 2000
    assert len(item_key(_entry(1, guid=long_id))) < 600
    assert item_key(_entry(1, guid=long_id)) != item_key(_entry(1, guid=long_id + "y"))


def test_a_read_stores_new_items_once_and_an_edit_updates_in_place(account: Account) -> None:
    source_id = _source(account)
    first = _store(source_id, account, [_entry(1), _entry(2), _entry(2)])
    assert (len(first.new), first.updated, first.unchanged) == (2, [], 0)

    again = _store(source_id, account, [_entry(2), _entry(1)])
    assert (again.new, again.updated, again.unchanged) == ([], [], 2)

    edited = _store(
        source_id, account, [_entry(1, title="Item 1, corrected", score=5), _entry(2), _entry(3)]
    )
    assert len(edited.new) == 1 and len(edited.updated) == 1 and edited.unchanged == 1
    assert _count(source_id) == 3
    with session_scope() as s:
        row = s.get_one(SourceItem, edited.updated[0])
        assert (row.title, row.revision, row.score) == ("Item 1, corrected", 2, 5)
        assert row.changed_at is not None


def test_a_score_change_is_kept_but_is_not_an_edit(account: Account) -> None:
    source_id = _source(account)
    _store(source_id, account, [_entry(1, score=1, comments=0)])
    later = _store(source_id, account, [_entry(1, score=40, comments=7)])
    assert (later.updated, later.unchanged) == ([], 1)
    with session_scope() as s:
        row = s.scalars(select(SourceItem).where(SourceItem.source_id == source_id)).one()
        assert (row.score, row.comments, row.revision) == (40, 7, 1)


def test_undated_and_same_second_items_keep_their_identity(account: Account) -> None:
    source_id = _source(account)
    same_second = T0.replace(second=30)
    entries = [
        _entry(1, published_at=None),
        _entry(2, published_at=None),
        _entry(3, published_at=same_second),
        _entry(4, published_at=same_second),
    ]
    assert len(_store(source_id, account, entries).new) == 4
    # Out of date order, still the same four items.
    assert _store(source_id, account, list(reversed(entries))).unchanged == 4
    assert _count(source_id) == 4


def test_the_first_read_is_a_baseline_except_the_backfill(account: Account) -> None:
    source_id = _source(account)
    # Out of date order: the backfill takes the two newest by date, not the first two.
    entries = [_entry(3), _entry(9), _entry(1), _entry(7)]
    stored = _store(source_id, account, entries, baseline=True, backfill=2)
    assert len(stored.baseline) == 2 and len(stored.new) == 2
    with session_scope() as s:
        new_titles = {s.get_one(SourceItem, i).title for i in stored.new}
        quiet = {s.get_one(SourceItem, i).seen_at_subscribe for i in stored.baseline}
    assert new_titles == {"Item 9", "Item 7"}
    assert quiet == {True}


def test_a_research_job_keeps_its_own_copy_of_an_item(account: Account) -> None:
    source_id = _source(account)
    _store(source_id, account, [_entry(1)])
    with session_scope() as s:
        job = create_job(s, workspace_id=account.workspace_id, kind="research", params={})
        research = store_entries(
            s, workspace_id=account.workspace_id, entries=[_entry(1)], research_id=job.id
        )
    assert len(research.new) == 1
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(SourceItem)) == 2
