"""Monitoring: each due check claimed once, however many schedulers; checks spread over
their interval; failures back off."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.sources.models import Source, SourceKind
from herald.sources.monitor import claim_due, next_check
from tests.conftest import Account

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _sources(account: Account, n: int, *, due: datetime = NOW, interval: int = 30) -> None:
    with session_scope() as s:
        for i in range(n):
            s.add(
                Source(
                    workspace_id=account.workspace_id,
                    kind=SourceKind.FEED,
                    name=f"feed {i}",
                    url=f"https://example.org/{i}.xml",
                    interval_minutes=interval,
                    next_check_at=due,
                )
            )


def test_a_due_check_is_claimed_once(account: Account) -> None:
    _sources(account, 3)
    with session_scope() as s:
        s.execute(update(Source).where(Source.name == "feed 2").values(enabled=False))
    with session_scope() as s:
        first = claim_due(s, NOW + timedelta(seconds=1))
    with session_scope() as s:
        second = claim_due(s, NOW + timedelta(seconds=2))
    assert len(first) == 2 and second == []
    assert {claim for _, claim in first} == {NOW}
    with session_scope() as s:
        leased = s.scalars(select(Source.next_check_at).where(Source.enabled.is_(True))).all()
    lease = get_settings().source_check_lease_seconds
    assert set(leased) == {NOW + timedelta(seconds=1 + lease)}


def test_a_check_whose_lease_ran_out_is_claimed_again(account: Account) -> None:
    _sources(account, 1)
    with session_scope() as s:
        ((_, first),) = claim_due(s, NOW)
    later = NOW + timedelta(seconds=get_settings().source_check_lease_seconds + 1)
    with session_scope() as s:
        ((_, second),) = claim_due(s, later)
    # A new claim: the first worker's record (if it ever comes) finds it gone.
    assert second != first


def test_a_claim_takes_at_most_its_batch(account: Account) -> None:
    _sources(account, 300)
    with session_scope() as s:
        first = claim_due(s, NOW + timedelta(seconds=1), limit=50)
    with session_scope() as s:
        rest = claim_due(s, NOW + timedelta(seconds=1), limit=1000)
    assert (len(first), len(rest)) == (50, 250)


def test_two_schedulers_claiming_at_once_take_disjoint_sets(account: Account) -> None:
    _sources(account, 60)
    claims: list[uuid.UUID] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    def scheduler() -> None:
        start.wait()
        for _ in range(10):
            with session_scope() as s:
                got = claim_due(s, NOW + timedelta(seconds=1), limit=7)
            with lock:
                claims.extend(source_id for source_id, _ in got)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(claims)
    assert len(counts) == 60 and set(counts.values()) == {1}


def _source(interval: int = 30, failures: int = 0, hinted: int | None = None) -> Source:
    return Source(
        id=uuid.uuid4(),
        interval_minutes=interval,
        failures=failures,
        hinted_interval_seconds=hinted,
    )


def test_checks_keep_their_interval_on_each_source_s_own_phase() -> None:
    source = _source(interval=30)
    due = next_check(source, NOW, failed=False)
    assert timedelta(minutes=15) <= due - NOW <= timedelta(minutes=45)
    # Checked a little late, the next one is still one interval after the last due time.
    assert next_check(source, due + timedelta(seconds=20), failed=False) == due + timedelta(
        minutes=30
    )


def test_a_thousand_sources_do_not_fire_in_the_same_second() -> None:
    dues = [next_check(_source(interval=30), NOW, failed=False) for _ in range(1000)]
    per_second = Counter(int(d.timestamp()) for d in dues)
    # 1,000 checks over 1,800 seconds: a uniform spread puts a handful in any one second.
    assert max(per_second.values()) <= 6
    assert max(dues) - min(dues) > timedelta(minutes=25)


def test_the_source_s_hints_lengthen_the_interval_but_never_shorten_it() -> None:
    longer = _source(interval=10, hinted=3600)
    due = next_check(longer, NOW, failed=False)
    assert due - NOW >= timedelta(minutes=30)
    shorter = _source(interval=60, hinted=60)
    assert next_check(shorter, NOW, failed=False) - NOW >= timedelta(minutes=30)


def test_failures_back_off_exponentially_up_to_a_cap() -> None:
    delays = [
        next_check(_source(interval=30, failures=n), NOW, failed=True) - NOW for n in (1, 2, 3, 9)
    ]
    assert delays[:3] == [timedelta(minutes=30), timedelta(minutes=60), timedelta(minutes=120)]
    assert delays[3] == timedelta(hours=get_settings().source_max_backoff_hours)
    # A Retry-After longer than the back-off wins.
    busy = _source(interval=1, failures=1)
    assert next_check(busy, NOW, failed=True, retry_after=900) - NOW == timedelta(seconds=900)
    # A year's Retry-After still comes back within the cap.
    cap = timedelta(hours=get_settings().source_max_backoff_hours)
    assert next_check(busy, NOW, failed=True, retry_after=10**8) - NOW == cap
