"""Many machines, proven (issue 20 §6): two worker hosts in their own network namespaces,
beat, api, PostgreSQL and Redis on this machine (``tests/deploy/machines.py``); a burst
of 500 deliveries to a local receiver; one worker host's link cut mid-burst and restored
after over three leases. Every delivery is published, each exactly once, none is stuck, and
the database and the receiver agree.

A request in flight on the cut host at the cut may have reached the receiver with its
answer lost on the way back: that delivery's lease runs out, the other host sends it
again under the same Idempotency-Key, and the receiver takes it as the repeat it is
(``duplicate: true``). Such same-key repeats are counted and bounded by the requests the
cut host can have in flight (its concurrency); a post accepted twice, or one missing, is
a failure.

Needs root and ``ip`` (skipped otherwise locally; CI runs as root and fails without
them) and PostgreSQL: many machines share one PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench._harness import postgres_database

from herald.core.migrate import upgrade
from herald.publishing.models import SETTLED
from tests.deploy.machines import Cluster, Published, namespaces_unavailable, states
from tests.services import PG_ADMIN_URL, postgres_available, service_missing
from tests.workers import wait_for

pytestmark = [
    pytest.mark.integration,
    # It kills nothing but cuts a link and times the recovery, as the fault cases do: not
    # beside them on two cores.
    pytest.mark.xdist_group("faults"),
]

CHANNELS = 5
POSTS = 100  # x CHANNELS = 500 deliveries
HOLD = 0.05  # the receiver answers after this
CONCURRENCY = 2  # per worker host
CUT_AFTER = 100  # deliveries received before the cut
CUT_SECONDS = 10.0  # over three leases (tests/deploy/machines.py FAST_RECOVERY)


@pytest.fixture
def database_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own, migrated; dropped afterwards."""
    if reason := namespaces_unavailable():
        service_missing("Network namespaces", reason)
    if reason := postgres_available():
        service_missing("PostgreSQL", reason)
    with postgres_database(PG_ADMIN_URL, prefix="herald_test_machines") as url:
        upgrade(url)
        yield url


@pytest.mark.timeout(240)
def test_a_host_cut_off_mid_burst_loses_and_doubles_nothing(
    database_url: str, tmp_path: Path
) -> None:
    with Cluster(database_url, tmp_path, hosts=2, concurrency=CONCURRENCY) as cluster:
        cut, other = cluster.machines.links
        receiver = cluster.receiver(HOLD).start()
        try:
            cluster.start()
            token = cluster.account()
            channels = cluster.channels(token, receiver, CHANNELS)
            bursts: list[Published] = []
            publisher = threading.Thread(
                target=lambda: bursts.append(cluster.publish_burst(token, channels, POSTS))
            )
            publisher.start()
            wait_for(lambda: len(receiver.posts()) >= CUT_AFTER, 120, what="the burst going")
            cut_at = time.time()
            cluster.machines.cut(0)
            time.sleep(CUT_SECONDS)
            restored_at = time.time()
            cluster.machines.restore(0)
            publisher.join(timeout=120)
            assert bursts, f"the burst did not finish\n{cluster.logs()}"
            ids = bursts[0].ids

            def settled() -> bool:
                return all(state in SETTLED for state, *_ in states(database_url, ids).values())

            try:
                wait_for(settled, 90, 0.5, what="every delivery settled")
            except TimeoutError:
                left = Counter(state for state, *_ in states(database_url, ids).values())
                pytest.fail(f"not settled: {left}\n{cluster.logs()}")
        finally:
            receiver.stop()

        final = states(database_url, ids)
        posts = receiver.posts()
        per_key = Counter(item.headers.get("idempotency-key", "") for item in posts)
        repeats = {key: n - 1 for key, n in per_key.items() if n > 1}
        by_host = Counter(item.peer for item in posts)
        during_cut = [
            item
            for item in posts
            if item.peer == cut.ns_address and cut_at + 0.5 < item.at < restored_at
        ]
        # Each repeated key's requests: from which host, how long after the cut.
        repeated = {
            key: [
                (item.peer, round(item.at - cut_at, 2))
                for item in posts
                if item.headers.get("idempotency-key") == key
            ]
            for key in repeats
        }
        print(
            f"\nmany machines: {len(ids)} deliveries; by host {dict(by_host)}; cut "
            f"{cut.ns_address} for {restored_at - cut_at:.1f} s; same-key repeats {repeated}; "
            f"attempts {Counter(a for _, a, *_ in final.values())}"
        )

    assert len(ids) == POSTS * CHANNELS
    assert Counter(state for state, *_ in final.values()) == {"published": len(ids)}
    keys = {key for _, _, key, _ in final.values()}
    # Every delivery reached the receiver, and nothing else did.
    assert set(per_key) == keys
    assert set(receiver.delivered) == keys
    # The database's receipt is the receiver's answer to that key.
    assert all(external == f"ext-{key[-8:]}" for _, _, key, external in final.values())
    # Both hosts delivered; the cut one sent nothing while it was cut off.
    assert by_host[cut.ns_address] > 0 and by_host[other.ns_address] > 0, by_host
    assert during_cut == []
    # A repeat is a request whose answer the cut lost: at most one per pool process.
    assert len(repeats) <= CONCURRENCY and all(n == 1 for n in repeats.values()), repeats
    assert receiver.bad_signatures == 0
