"""Agents' cron schedules: 5-field expressions read in the agent's zone, across the 2026
DST changes (Europe/Warsaw 29 March and 25 October, America/New_York 8 March and
1 November), with an injected ``after``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from herald.agents import cron

WARSAW = ZoneInfo("Europe/Warsaw")
NEW_YORK = ZoneInfo("America/New_York")


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _local(runs: list[datetime], zone: ZoneInfo) -> list[str]:
    return [r.astimezone(zone).isoformat() for r in runs]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("0 9 * * MON", "0 9 * * MON"),
        ("  0   9 * *   mon-fri ", "0 9 * * mon-fri"),
        ("*/15 8-17 1,15 JAN-MAR *", "*/15 8-17 1,15 JAN-MAR *"),
        ("0 9 * * THU,FRI", "0 9 * * THU,FRI"),
        ("@daily", "@daily"),
        ("@Weekly", "@weekly"),
        ("0 0 29 2 *", "0 0 29 2 *"),  # every leap year
    ],
)
def test_valid_expressions_are_normalised(expr: str, expected: str) -> None:
    assert cron.parse(expr) == expected


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("", "empty"),
        ("0 9 * *", "has 4 fields"),
        ("0 0 9 * * MON", "has 6 fields; Herald takes the standard 5"),
        ("0 0 9 * * MON 2026", "without seconds or years"),
        ("61 9 * * *", "not a valid cron expression"),
        ("0 9 * * FUNDAY", "not a valid cron expression"),
        ("0 0 30 2 *", "never runs"),
        ("@reboot", "not a schedule Herald runs"),
        ("H 9 * * *", "H and R"),
        ("R 9 * * *", "H and R"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expr: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        cron.parse(expr)


def test_an_unknown_zone_or_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        cron.next_runs("0 9 * * *", "Mars/Olympus", _utc(2026, 1, 1), 1)
    with pytest.raises(ValueError, match="aware"):
        cron.next_runs("0 9 * * *", "UTC", datetime(2026, 1, 1), 1)


def test_monday_nine_stays_nine_local_across_both_warsaw_changes() -> None:
    spring = cron.next_runs("0 9 * * MON", "Europe/Warsaw", _utc(2026, 3, 20), 3)
    assert _local(spring, WARSAW) == [
        "2026-03-23T09:00:00+01:00",
        "2026-03-30T09:00:00+02:00",
        "2026-04-06T09:00:00+02:00",
    ]
    assert spring[0] == _utc(2026, 3, 23, 8) and spring[1] == _utc(2026, 3, 30, 7)
    autumn = cron.next_runs("0 9 * * MON", "Europe/Warsaw", _utc(2026, 10, 18), 2)
    assert _local(autumn, WARSAW) == ["2026-10-19T09:00:00+02:00", "2026-10-26T09:00:00+01:00"]
    assert all(r.tzinfo is UTC for r in spring + autumn)


def test_next_run_is_strictly_after() -> None:
    at = _utc(2026, 3, 23, 8)  # Monday 09:00 in Warsaw exactly
    assert cron.next_run("0 9 * * MON", "Europe/Warsaw", at) == _utc(2026, 3, 30, 7)
    assert cron.next_run("0 9 * * MON", "Europe/Warsaw", at - timedelta(seconds=1)) == at


def test_a_time_in_the_spring_gap_runs_once_when_the_clocks_jump() -> None:
    # 02:30 does not exist in Warsaw on 29 March 2026: 02:00 CET became 03:00 CEST.
    runs = cron.next_runs("30 2 * * *", "Europe/Warsaw", _utc(2026, 3, 27, 12), 3)
    assert _local(runs, WARSAW) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    # Every quarter of the missing hour is one run, at the jump.
    quarters = cron.next_runs("*/15 2 * * *", "Europe/Warsaw", _utc(2026, 3, 28, 12), 2)
    assert _local(quarters, WARSAW) == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]


def test_a_repeated_autumn_time_runs_once_the_first_time() -> None:
    runs = cron.next_runs("30 2 * * *", "Europe/Warsaw", _utc(2026, 10, 24, 12), 2)
    assert runs == [_utc(2026, 10, 25, 0, 30), _utc(2026, 10, 26, 1, 30)]
    assert _local(runs, WARSAW)[0] == "2026-10-25T02:30:00+02:00"
    # Asked from inside the second 02:xx hour (after its first occurrence), it is not
    # run again: the next is the next day's.
    inside = _utc(2026, 10, 25, 1, 15)  # 02:15 CET, the repeated hour
    assert cron.next_run("30 2 * * *", "Europe/Warsaw", inside) == _utc(2026, 10, 26, 1, 30)


def test_an_hourly_cron_across_the_warsaw_gap_and_fold() -> None:
    spring = cron.next_runs("0 * * * *", "Europe/Warsaw", _utc(2026, 3, 28, 23, 30), 4)
    assert _local(spring, WARSAW) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00 does not exist: once, at the jump
        "2026-03-29T04:00:00+02:00",
        "2026-03-29T05:00:00+02:00",
    ]
    autumn = cron.next_runs("0 * * * *", "Europe/Warsaw", _utc(2026, 10, 24, 22, 30), 4)
    assert _local(autumn, WARSAW) == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",  # 02:00 happens twice: the first only
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T04:00:00+01:00",
    ]
    everything = spring + autumn
    assert len(set(everything)) == len(everything)


def test_new_york_changes_in_march_and_november() -> None:
    weekly = cron.next_runs("0 9 * * MON", "America/New_York", _utc(2026, 3, 1), 2)
    assert _local(weekly, NEW_YORK) == ["2026-03-02T09:00:00-05:00", "2026-03-09T09:00:00-04:00"]
    assert weekly[1] - weekly[0] == timedelta(days=7, hours=-1)
    hourly = cron.next_runs("30 * * * *", "America/New_York", _utc(2026, 3, 8, 5), 3)
    assert _local(hourly, NEW_YORK) == [
        "2026-03-08T00:30:00-05:00",
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T03:00:00-04:00",  # 02:30 skipped by the change: at the jump
    ]
    fall = cron.next_runs("30 * * * *", "America/New_York", _utc(2026, 11, 1, 4), 3)
    assert _local(fall, NEW_YORK) == [
        "2026-11-01T00:30:00-04:00",
        "2026-11-01T01:30:00-04:00",  # 01:30 happens twice: the first only
        "2026-11-01T02:30:00-05:00",
    ]


def test_a_zone_with_a_half_hour_change_finds_the_jump() -> None:
    # Lord Howe Island moves by 30 minutes: 02:00 -> 02:30 on 4 October 2026.
    zone = ZoneInfo("Australia/Lord_Howe")
    runs = cron.next_runs("15 2 * * *", "Australia/Lord_Howe", _utc(2026, 10, 3, 0), 2)
    assert _local(runs, zone) == ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]


def test_names_ranges_and_aliases() -> None:
    after = _utc(2026, 1, 1)
    weekdays = cron.next_runs("0 9 * FEB MON-FRI", "UTC", after, 2)
    assert weekdays == [_utc(2026, 2, 2, 9), _utc(2026, 2, 3, 9)]
    assert cron.next_run("@monthly", "Europe/Warsaw", after) == _utc(2026, 1, 31, 23)
