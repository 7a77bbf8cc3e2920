"""Agents' schedules: standard 5-field cron expressions, read in the agent's time zone.

An expression is matched against local wall-clock time (``0 9 * * MON`` is 09:00 on
Mondays where the agent is, summer and winter alike); croniter does the matching on naive
local times and this module turns each local time into one UTC instant:

- a local time that does not exist (the spring gap, e.g. 02:30 on 2026-03-29 in
  Europe/Warsaw) runs once at the first valid time after it: the instant the clocks
  jump (03:00 CEST); several times in one gap are that one run;
- a local time that happens twice (the autumn hour, e.g. 02:30 on 2026-10-25) runs
  once, at its first occurrence (02:30 CEST, 00:30 UTC). An hourly cron therefore skips
  the repeated hour rather than running in it twice.

So an occurrence is never lost to a gap and never doubled by a fold. Errors are
ValueError with a message meant for a person (the API turns them into a 422).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from herald.scheduling.slots import load_zone

# What croniter reads as 5-field expressions; @reboot has no time and is refused.
ALIASES = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
FIELDS = "minute hour day-of-month month day-of-week"
_HELP = (
    f"a cron expression has 5 fields ({FIELDS}), e.g. '0 9 * * MON'; "
    "names (MON, JAN), ranges (1-5), lists (1,15) and steps (*/15) are allowed"
)
# croniter's extensions whose times are not in the expression: H (hashed from an id) and
# R (random). Names (MAR, THU, FRI) are letters around them, so they do not match.
_UNSTABLE = re.compile(r"(?<![a-z])[hr](?![a-z])", re.IGNORECASE)
# Far enough to find Feb 29 from any year (the rarest date a valid expression names).
_LOOKAHEAD_YEARS = 9


def parse(expr: str) -> str:
    """The expression, whitespace normalised; ValueError saying what is wrong with it."""
    text = " ".join(str(expr).split())
    if not text:
        raise ValueError(f"the schedule is empty; {_HELP}")
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise ValueError(f"{text!r} is not a schedule Herald runs; use one of {_aliases()}")
        return text.lower()
    fields = text.split(" ")
    if len(fields) in (6, 7):
        raise ValueError(
            f"{text!r} has {len(fields)} fields; Herald takes the standard 5 ({FIELDS}), "
            "without seconds or years"
        )
    if len(fields) != 5:
        raise ValueError(f"{text!r} has {len(fields)} fields; {_HELP}")
    if _UNSTABLE.search(text):
        raise ValueError(f"{text!r}: H and R (hashed or random times) are not allowed; {_HELP}")
    try:
        iterator = croniter(text, datetime(2026, 1, 1))
    except (CroniterBadCronError, CroniterError, ValueError) as exc:
        raise ValueError(f"{text!r} is not a valid cron expression ({exc}); {_HELP}") from None
    try:
        first = iterator.get_next(datetime)
    except CroniterBadDateError:
        first = None
    if first is None or first.year > 2026 + _LOOKAHEAD_YEARS:
        raise ValueError(f"{text!r} never runs (no date matches it, such as 30 February)")
    return text


def _aliases() -> str:
    return ", ".join(sorted(ALIASES))


def next_runs(expr: str, zone_name: str, after: datetime, n: int) -> list[datetime]:
    """The next ``n`` occurrences strictly after ``after`` (aware), as aware UTC instants,
    in order and distinct. ValueError for a bad expression or zone."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    zone = load_zone(zone_name)
    text = parse(expr)
    after_utc = after.astimezone(UTC)
    # Local times map to instants in order (a gap to its end, a repeated time to its
    # first instant), so the occurrences after ``after`` are among the local times after
    # its own; a minute's margin, and the filter below keeps only the later instants.
    start = after_utc.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    iterator = croniter(text, start - timedelta(minutes=1))
    found: list[datetime] = []
    while len(found) < n:
        try:
            local = iterator.get_next(datetime)
        except CroniterBadDateError:
            break  # no further date matches (cannot happen for a parsed expression)
        instant = to_instant(local, zone)
        if instant > after_utc and (not found or instant > found[-1]):
            found.append(instant)
    return found


def next_run(expr: str, zone_name: str, after: datetime) -> datetime:
    """The next occurrence strictly after ``after``, as an aware UTC instant."""
    runs = next_runs(expr, zone_name, after, 1)
    if not runs:
        raise ValueError(f"{expr!r} never runs again")
    return runs[0]


def to_instant(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive local wall-clock time in ``zone``: the first of a
    repeated time; for one in a gap, the instant the gap ends."""
    first = local.replace(tzinfo=zone, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == local:
        return utc  # exists (fold=0 is the first of a repeated time)
    # In a gap: fold=1 reads it with the offset after the change, fold=0 with the one
    # before; the change lies between the two instants. Find it to the second.
    low = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = utc
    low, high = min(low, high), max(low, high)
    after_offset = high.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)
