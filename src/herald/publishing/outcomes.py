"""What one delivery attempt came to, as types.

Control flow (the delivery is not over: try again later, or hold it until the channel
is reconnected) is kept apart from the endings, as Dramatiq keeps ``Retry`` apart from
errors::

    Outcome
     ├── Published            the post is on the platform (receipt)
     ├── Later                not over: the delivery waits and goes out again
     │    ├── RetryLater      a retryable error; back-off, or Retry-After
     │    ├── HoldForReconnect  credentials refused; waits for the channel's fix
     │    └── WaitForBudget   not sent: the channel's rate budget refills at ``until``
     ├── GiveUp               over without posting
     │    ├── Failed          permanent, or nothing left to try
     │    └── Unconfirmed     it may have been posted: a person decides
     └── Cancelled            a cancel asked for while it ran

``kind`` is the value stored in an attempt's ``outcome`` column and returned by the
``deliver`` task: the strings are the ones the database and the API always carried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from herald.adapters.base import Receipt
from herald.core.exceptions import HeraldFault


class OutcomeKind(StrEnum):
    PUBLISHED = "published"
    RETRY = "retry"
    AUTH = "auth"
    FAILED = "failed"
    UNCONFIRMED = "unconfirmed"
    CANCELLED = "cancelled"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class Outcome:
    kind: ClassVar[OutcomeKind]
    error: str | None = None


@dataclass(frozen=True)
class Published(Outcome):
    kind: ClassVar[OutcomeKind] = OutcomeKind.PUBLISHED
    receipt: Receipt | None = None


@dataclass(frozen=True)
class Later(Outcome):
    """Not over: the delivery waits in ``retry_wait`` and goes out again."""


@dataclass(frozen=True)
class RetryLater(Later):
    kind: ClassVar[OutcomeKind] = OutcomeKind.RETRY
    retry_after: float | None = None  # the platform's Retry-After, in seconds


@dataclass(frozen=True)
class HoldForReconnect(Later):
    kind: ClassVar[OutcomeKind] = OutcomeKind.AUTH


@dataclass(frozen=True)
class WaitForBudget(Later):
    """Nothing was sent: the channel's rate budget (herald.channels.budgets) allows it
    at ``until``. Not an attempt: it uses none up."""

    kind: ClassVar[OutcomeKind] = OutcomeKind.RATE_LIMITED
    until: datetime | None = None


@dataclass(frozen=True)
class GiveUp(Outcome):
    """Over without posting (as far as Herald can tell)."""


@dataclass(frozen=True)
class Failed(GiveUp):
    kind: ClassVar[OutcomeKind] = OutcomeKind.FAILED


@dataclass(frozen=True)
class Unconfirmed(GiveUp):
    kind: ClassVar[OutcomeKind] = OutcomeKind.UNCONFIRMED


@dataclass(frozen=True)
class Cancelled(Outcome):
    kind: ClassVar[OutcomeKind] = OutcomeKind.CANCELLED


# Base class to be re-based on the project's error tree (core/errors.py is being reshaped).
class NotPrepared(HeraldFault):
    """The claimed delivery cannot be attempted as stored (credentials, settings)."""
