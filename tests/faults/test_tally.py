"""The fault suite's count itself: each column sees what it is meant to see (a suite whose
count could not find a lost or doubled delivery would prove nothing)."""

from __future__ import annotations

import uuid

from herald.publishing.models import PublicationState as S
from tests.fakes.webhook_receiver import Received
from tests.faults.stack import count


def _post(key: str, post_id: str) -> Received:
    body = {"event": "post.published", "idempotency_key": key, "post": {"id": post_id}}
    return Received({"idempotency-key": key}, body, 0.0)


def test_each_column_counts_its_own_fault() -> None:
    ids = [uuid.uuid4() for _ in range(7)]
    keys = {pid: f"herald-{pid.hex}" for pid in ids}
    k = list(keys.values())
    states = {
        ids[0]: (S.PUBLISHED, 1),  # received once: clean
        ids[1]: (S.PUBLISHED, 2),  # received twice with 200: resent, would double
        ids[2]: (S.PUBLISHED, 2),  # 503, then 200: resent, would not double
        ids[3]: (S.PUBLISHED, 1),  # never received, yet published: lost
        ids[4]: (S.UNCONFIRMED, 1),  # never received, and says so: not lost
        ids[5]: (S.PUBLISHING, 3),  # never received and not settled: stuck and lost
        ids[6]: (S.PUBLISHED, 1),  # the same post as ids[0], under its own key: twice
    }
    received = [
        (_post(k[0], "post-0"), 200),
        (_post(k[1], "post-1"), 200),
        (_post(k[2], "post-2"), 503),
        (_post(k[1], "post-1"), 200),
        (_post(k[2], "post-2"), 200),
        (_post(k[6], "post-0"), 200),
    ]
    tally = count("case", "sqlite", keys, states, received)
    assert (tally.n, tally.published, tally.unconfirmed, tally.failed) == (7, 5, 1, 0)
    assert (tally.lost, tally.twice, tally.stuck) == (2, 1, 1)
    assert (tally.resent, tally.would_dup, tally.max_attempt) == (2, 1, 3)


def test_a_clean_batch_counts_zero() -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    keys = {pid: f"herald-{pid.hex}" for pid in ids}
    states = dict.fromkeys(ids, (S.PUBLISHED, 1))
    received = [(_post(key, str(pid)), 200) for pid, key in keys.items()]
    tally = count("case", "sqlite", keys, states, received)
    tally.assert_clean(all_published=True)
    assert (tally.resent, tally.would_dup) == (0, 0)
