"""Dates and times that clients send: aware, in UTC, and within the years Herald handles.

Python's ``datetime`` stops at 0001-01-01 and 9999-12-31, so an instant near either end
overflows as soon as it is moved to another zone or a day is added to it (a calendar from
9999-12-31, or 0001-01-01 read in UTC+14, was a 500). Every instant or date taken from a
request goes through :func:`to_utc` or :func:`check_day` (or is typed :data:`UtcDateTime`),
which refuse what lies outside ``EARLIEST``..``LATEST``: a year of margin on each side, so
whatever Herald computes from an accepted value (a range of up to a year, a zone's offset)
stays representable.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from herald.core.types import refuse_numbers

EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
RANGE_TEXT = f"{EARLIEST.date().isoformat()} to {LATEST.date().isoformat()}"


def to_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; ValueError when it has no offset or lies outside the range."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{moment.isoformat()} has no offset; add one (2026-10-25T09:00:00+02:00 or ...Z)"
        )
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError(f"{moment.isoformat()} is outside the dates Herald handles ({RANGE_TEXT})")
    return utc


def check_day(day: date) -> date:
    """``day`` itself; ValueError when it lies outside the range."""
    if not EARLIEST.date() <= day <= LATEST.date():
        raise ValueError(f"{day.isoformat()} is outside the dates Herald handles ({RANGE_TEXT})")
    return day


# A datetime field or query parameter: ISO 8601 (never a Unix timestamp) with an offset;
# the value arrives in UTC.
UtcDateTime = Annotated[AwareDatetime, BeforeValidator(refuse_numbers), AfterValidator(to_utc)]
