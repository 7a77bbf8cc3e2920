"""What a fault left behind, counted: deliveries lost, posted twice, stuck, and the
same-key resends that a receiver deduplicating by Idempotency-Key absorbed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from herald.publishing.models import SETTLED, Publication
from tests.fakes.webhook_receiver import Receiver


@dataclass(frozen=True)
class Tally:
    lost: int  # Herald says published; the receiver never got it
    posted_twice: int  # a post the receiver took under more than one key
    stuck: int  # not settled (published, failed, unconfirmed or cancelled) at the end
    resends: dict[str, int] = field(default_factory=dict)  # POSTs past the first, per key
    # Per key: (state, attempts made, attempts allowed).
    states: dict[str, tuple[str, int, int]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return self.lost == self.posted_twice == self.stuck == 0


def tally(db: Any, receiver: Receiver) -> Tally:
    """Count over every delivery in the database (the test's own: one channel)."""

    with db() as s:
        rows = s.execute(
            select(
                Publication.idempotency_key,
                Publication.state,
                Publication.attempt,
                Publication.max_attempts,
            )
        ).all()
    keys = Counter(r.headers.get("idempotency-key", "") for r in receiver.posts())
    per_post = Counter(r.body["post"]["id"] for r in receiver.delivered.values())
    return Tally(
        lost=sum(1 for row in rows if row.state == "published" and row.idempotency_key not in keys),
        posted_twice=sum(n - 1 for n in per_post.values()),
        stuck=sum(1 for row in rows if row.state not in SETTLED),
        resends={key: n - 1 for key, n in keys.items() if n > 1},
        states={
            row.idempotency_key: (str(row.state), row.attempt, row.max_attempts) for row in rows
        },
    )
