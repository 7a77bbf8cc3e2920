"""Channel health: when a channel's credentials are checked next, and what the last check
found.

A check is the channel test (``service.read_check`` → ``call_platform`` →
``record_check``), whoever starts it: a person (``POST /channels/{id}/test``) or the
health pass (``herald.scheduling.channel_checks``, every minute in ``herald beat``). So a
refused credential is marked ``needs_reconnect`` in one place, in the platform's words.

- **When.** Every active channel is checked at most once per period
  (``HERALD_CHANNEL_CHECK_HOURS``; 0 turns the pass off). A channel's first check is at
  its own place in the period, ``k * period + phase`` with the phase drawn from its id,
  so a thousand channels are spread over the day instead of checked in the same minute.
  Each check, a person's included, puts the next one a whole period after it.
- **Tokens.** The check refreshes OAuth access tokens that would expire before the next
  check (plus :data:`REFRESH_SLACK`), through the store's ``refresh_credentials``: a
  scheduled post never meets an expired token, and a refresh token the platform no
  longer honours is found a day early, not at the post.
- **Result.** ``checked_at``, ``last_check_ok`` and ``last_check_error`` (the platform's
  words) on the channel; the job of the check holds the rest.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Final

from herald.channels.models import Channel
from herald.core.settings import get_settings

# How much longer than the period a token must live for the check to leave it alone: the
# pass may run a little late, and a delivery needs the token for its whole attempt.
REFRESH_SLACK: Final = timedelta(hours=1)


def check_period() -> timedelta | None:
    """The period between two checks of a channel; None when the checks are off."""
    hours = get_settings().channel_check_hours
    return timedelta(hours=hours) if hours > 0 else None


def first_check_at(channel_id: uuid.UUID, now: datetime, period: timedelta) -> datetime:
    """The channel's first check: the next moment ``k * period + phase`` (``phase`` drawn
    from its id) at or after ``now``."""
    seconds = period.total_seconds()
    phase = channel_id.int % max(int(seconds), 1)
    due = math.ceil((now.timestamp() - phase) / seconds) * seconds + phase
    return datetime.fromtimestamp(due, tz=now.tzinfo)


def place(channel: Channel, now: datetime) -> None:
    """Give a new channel its first check (none while the checks are off: the pass places
    it once they are on)."""
    period = check_period()
    channel.next_check_at = first_check_at(channel.id, now, period) if period else None


def refresh_margin() -> timedelta:
    """Refresh a token that expires sooner than this: before the next check, with slack."""
    return (check_period() or timedelta(0)) + REFRESH_SLACK


def record_result(channel: Channel, now: datetime, *, problem: str | None) -> None:
    """The outcome of a check (``problem`` None: the credentials work); the next check
    a period later, whoever started this one."""
    period = check_period()
    channel.checked_at = now
    channel.last_check_ok = problem is None
    channel.last_check_error = problem
    channel.next_check_at = now + period if period else None


def check_soon(channel: Channel, now: datetime) -> None:
    """New credentials: check them at the health pass's next run, not a period later."""
    if check_period() is not None:
        channel.next_check_at = now
