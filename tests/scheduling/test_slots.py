"""Posting slots per channel, the queue, and slot times across daylight-saving changes,
on SQLite and PostgreSQL, with an injected clock."""

from __future__ import annotations

import threading
import time as wall
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from herald.core.db import READ_ONLY, get_engine, session_scope
from herald.publishing.models import Publication, PublicationState
from herald.scheduling import slots
from herald.scheduling.service import clean_old_records
from tests.conftest import Account
from tests.scheduling import (
    frozen,
    include_slot_routers,
    make_channel,
    make_post,
    principal_of,
    set_slots,
)

# Monday 2026-06-01, 08:00 in Warsaw (CEST, +02:00).
MONDAY = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


@pytest.fixture
def api(client: TestClient) -> TestClient:
    return include_slot_routers(client)


def queue(api: TestClient, account: Account, post_id: str, *channel_ids: str) -> Any:
    return api.post(
        f"/api/v1/posts/{post_id}/queue",
        json={"channel_ids": list(channel_ids)},
        headers=account.headers,
    )


def listing(api: TestClient, account: Account, channel_id: str, **params: str) -> Any:
    response = api.get(
        f"/api/v1/channels/{channel_id}/slots", params=params, headers=account.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def as_utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


# --- configuration -------------------------------------------------------------------------


def test_config_round_trip_dedupes_and_normalises(api: TestClient, account: Account) -> None:
    channel = make_channel(api, account)
    url = f"/api/v1/channels/{channel}/slots/config"
    assert api.get(url, headers=account.headers).json() == {
        "channel_id": channel,
        "timezone": "UTC",
        "slots": [],
    }
    written = set_slots(
        api,
        account,
        channel,
        "Europe/Warsaw",
        [
            {"weekdays": ["mon", "Wed", 0], "time": "09:00"},
            {"weekdays": [0, "monday"], "time": "09:00"},  # the same slot again
            {"weekdays": ["friday", "sun"], "time": "18:30"},
            {"weekdays": [2], "time": "13:00"},
        ],
    )
    expected = {
        "channel_id": channel,
        "timezone": "Europe/Warsaw",
        "slots": [
            {"weekdays": [0, 2], "time": "09:00"},
            {"weekdays": [2], "time": "13:00"},
            {"weekdays": [4, 6], "time": "18:30"},
        ],
    }
    assert written == expected
    assert api.get(url, headers=account.headers).json() == expected
    with session_scope() as session:
        rows = session.query(slots.ChannelSlot).filter_by(channel_id=uuid.UUID(channel)).count()
    assert rows == 5

    # PUT replaces everything.
    assert set_slots(api, account, channel, "UTC", [])["slots"] == []
    assert api.get(url, headers=account.headers).json()["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ({"timezone": "Mars/Olympus_Mons", "slots": []}, "timezone", "unknown time zone"),
        ({"timezone": "../etc/passwd", "slots": []}, "timezone", "unknown time zone"),
        ({"slots": [{"weekdays": ["funday"], "time": "09:00"}]}, "weekdays", "unknown weekday"),
        ({"slots": [{"weekdays": [7], "time": "09:00"}]}, "weekdays", "not 0 (Monday)"),
        ({"slots": [{"weekdays": [], "time": "09:00"}]}, "weekdays", "at least 1"),
        ({"slots": [{"weekdays": [1], "time": "24:00"}]}, "time", "pattern"),
        ({"slots": [{"weekdays": [1], "time": "9:00"}]}, "time", "pattern"),
        ({"slots": [{"weekdays": [1], "time": "09:00+02:00"}]}, "time", "pattern"),
    ],
)
def test_config_validation_is_a_clear_422(
    api: TestClient, account: Account, body: dict[str, Any], where: str, words: str
) -> None:
    channel = make_channel(api, account)
    response = api.put(
        f"/api/v1/channels/{channel}/slots/config", json=body, headers=account.headers
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert where in problem["errors"][0]["loc"]
    assert words in problem["detail"]


def test_another_workspace_channel_is_404(
    api: TestClient, account: Account, make_account: Any
) -> None:
    channel = make_channel(api, account)
    stranger = make_account("stranger@example.com", workspace="other")
    base = f"/api/v1/channels/{channel}/slots"
    assert api.get(base + "/config", headers=stranger.headers).status_code == 404
    put = api.put(base + "/config", json={"slots": []}, headers=stranger.headers)
    assert put.status_code == 404
    assert api.get(base, headers=stranger.headers).status_code == 404
    post = make_post(api, stranger)
    assert queue(api, stranger, post, channel).status_code == 404


# --- listing and the queue -----------------------------------------------------------------


def test_listing_marks_free_and_taken_slots(api: TestClient, account: Account) -> None:
    channel = make_channel(api, account)
    set_slots(api, account, channel, "Europe/Warsaw", [{"weekdays": WEEKDAYS, "time": "09:00"}])
    set_slots(
        api,
        account,
        channel,
        "Europe/Warsaw",
        [{"weekdays": WEEKDAYS, "time": "09:00"}, {"weekdays": WEEKDAYS, "time": "13:00"}],
    )
    with frozen(MONDAY):
        # Default range: now → +14 days, ten weekdays with two slots each.
        default = listing(api, account, channel)
        assert len(default["occurrences"]) == 20
        assert as_utc(default["from"]) == MONDAY
        assert as_utc(default["to"]) == MONDAY + timedelta(days=14)

        post = make_post(api, account)
        assert queue(api, account, post, channel).status_code == 202
        # Dates are read in the channel's zone; `to` is inclusive as a date.
        day = listing(api, account, channel, **{"from": "2026-06-01", "to": "2026-06-01"})

    assert (day["from"], day["to"]) == ("2026-06-01T00:00:00+02:00", "2026-06-02T00:00:00+02:00")
    first, second = day["occurrences"]
    assert first["at"] == "2026-06-01T07:00:00Z"
    assert first["local_at"] == "2026-06-01T09:00:00+02:00"
    assert first["state"] == "taken"
    assert first["post_id"] == post
    assert first["publication_id"]
    assert second["local_at"] == "2026-06-01T13:00:00+02:00"
    assert second["state"] == "free"
    assert second["publication_id"] is None


def test_listing_range_is_validated(api: TestClient, account: Account) -> None:
    channel = make_channel(api, account)
    url = f"/api/v1/channels/{channel}/slots"
    cases = [
        ({"from": "2026-01-01", "to": "2026-06-01"}, "longer than 92 days"),
        ({"from": "2026-06-02T00:00:00Z", "to": "2026-06-01T00:00:00Z"}, "after 'from'"),
        ({"from": "2026-06-01T09:00:00"}, "offset"),
        ({"from": "next tuesday"}, "offset"),
    ]
    for params, words in cases:
        response = api.get(url, params=params, headers=account.headers)
        assert response.status_code == 422, (params, response.text)
        assert words in response.json()["detail"]
    # 92 days exactly is allowed; an offset with an unencoded "+" is understood.
    ok = api.get(
        url + "?from=2026-06-01T00:00:00+02:00&to=2026-08-31T22:00:00Z", headers=account.headers
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["from"] == "2026-05-31T22:00:00Z"


def test_queue_takes_the_next_free_slot_then_the_one_after(
    api: TestClient, account: Account
) -> None:
    warsaw = make_channel(api, account, "warsaw")
    tokyo = make_channel(api, account, "tokyo")
    bare = make_channel(api, account, "bare")
    set_slots(
        api,
        account,
        warsaw,
        "Europe/Warsaw",
        [{"weekdays": WEEKDAYS, "time": "09:00"}, {"weekdays": WEEKDAYS, "time": "13:00"}],
    )
    set_slots(api, account, tokyo, "Asia/Tokyo", [{"weekdays": ["sat"], "time": "10:00"}])
    first, second, third = (make_post(api, account, f"Post {n}") for n in range(3))

    with frozen(MONDAY):
        answer = queue(api, account, first, warsaw, tokyo)
        assert answer.status_code == 202, answer.text
        by_channel = {q["channel_id"]: q for q in answer.json()["queued"]}
        assert by_channel[warsaw]["at"] == "2026-06-01T07:00:00Z"
        assert by_channel[warsaw]["local_at"] == "2026-06-01T09:00:00+02:00"
        assert by_channel[tokyo]["local_at"] == "2026-06-06T10:00:00+09:00"
        publication = by_channel[warsaw]["publication"]
        assert publication["state"] == "scheduled"
        assert as_utc(publication["due_at"]) == datetime(2026, 6, 1, 7, tzinfo=UTC)

        (next_one,) = queue(api, account, second, warsaw).json()["queued"]
        assert next_one["local_at"] == "2026-06-01T13:00:00+02:00"
        assert not next_one["existing"]

        # Queueing the same post again returns its delivery; no slot is used.
        (again,) = queue(api, account, first, warsaw).json()["queued"]
        assert again["existing"]
        assert again["publication"]["id"] == publication["id"]

        # A channel without slots is named in the 422, and nothing is created.
        refused = queue(api, account, third, warsaw, bare)
        assert refused.status_code == 422
        assert "'bare'" in refused.json()["detail"]
        post_state = api.get(f"/api/v1/posts/{third}", headers=account.headers).json()["state"]
        assert post_state == "draft"

    # Exactly at a slot's instant, that slot is not "after now": the next one is taken.
    with frozen(datetime(2026, 6, 2, 7, tzinfo=UTC)):
        (at_slot,) = queue(api, account, third, warsaw).json()["queued"]
    assert at_slot["local_at"] == "2026-06-02T13:00:00+02:00"


def test_daily_cleanup_prunes_reservations_of_past_slots(api: TestClient, account: Account) -> None:
    channel = make_channel(api, account, "warsaw")
    set_slots(api, account, channel, "Europe/Warsaw", [{"weekdays": WEEKDAYS, "time": "09:00"}])
    posts = [make_post(api, account, f"Post {n}") for n in range(2)]
    with frozen(MONDAY):
        for post in posts:
            assert queue(api, account, post, channel).status_code == 202

    def reservations() -> int:
        with session_scope() as s:
            return int(s.scalar(select(func.count()).select_from(slots.SlotReservation)) or 0)

    assert reservations() == 2
    # Monday 09:00 has passed, Tuesday 09:00 has not: only Monday's reservation goes.
    with frozen(datetime(2026, 6, 1, 12, tzinfo=UTC)), session_scope() as s:
        assert clean_old_records(s)["slot_reservations_deleted"] == 1
    assert reservations() == 1
    with frozen(datetime(2026, 6, 1, 12, tzinfo=UTC)):  # the queue still skips Tuesday
        (queued,) = queue(api, account, make_post(api, account, "Post 3"), channel).json()["queued"]
    assert queued["local_at"] == "2026-06-03T09:00:00+02:00"


def test_a_slot_whose_delivery_went_away_is_free_again(api: TestClient, account: Account) -> None:
    channel = make_channel(api, account)
    set_slots(api, account, channel, "UTC", [{"weekdays": WEEKDAYS, "time": "12:00"}])
    first, second = make_post(api, account, "One"), make_post(api, account, "Two")
    with frozen(MONDAY):
        (taken,) = queue(api, account, first, channel).json()["queued"]
        with session_scope() as session:
            session.execute(
                update(Publication)
                .where(Publication.id == uuid.UUID(taken["publication"]["id"]))
                .values(state=PublicationState.CANCELLED)
            )
        occurrence = listing(api, account, channel)["occurrences"][0]
        assert occurrence["state"] == "free"
        # Its reservation is stale: the next post gets the same slot.
        (reused,) = queue(api, account, second, channel).json()["queued"]
    assert reused["at"] == taken["at"] == "2026-06-01T12:00:00Z"


# --- concurrency ---------------------------------------------------------------------------


def _wait_for_lock_waiter(timeout: float = 10.0) -> None:
    """PostgreSQL: until some session waits on a lock (the racing reservation insert)."""
    deadline = wall.monotonic() + timeout
    # A read-only connection: this thread already has the write transaction under test.
    with get_engine().execution_options(**{READ_ONLY: True}).connect() as conn:
        while wall.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar()
            conn.rollback()
            if waiting:
                return
            wall.sleep(0.01)
    raise AssertionError("the second queue request never waited on the first")


def test_a_racing_queue_request_takes_the_next_slot(
    api: TestClient, account: Account, db_backend: str
) -> None:
    """The first transaction holds slot 1 uncommitted; the second must not take it too."""
    channel = uuid.UUID(make_channel(api, account))
    set_slots(api, account, str(channel), "UTC", [{"weekdays": WEEKDAYS, "time": "12:00"}])
    one, two = (uuid.UUID(make_post(api, account, t)) for t in ("One", "Two"))
    principal = principal_of(account)
    chosen: list[datetime] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with session_scope() as session:
                (queued,) = slots.queue_post(session, principal, two, [channel])
                chosen.append(queued.at)
        except BaseException as exc:
            errors.append(exc)

    with frozen(MONDAY):
        with session_scope() as session:
            (first,) = slots.queue_post(session, principal, one, [channel])
            racer = threading.Thread(target=second)
            racer.start()
            if db_backend == "postgresql":
                _wait_for_lock_waiter()  # blocked on our uncommitted reservation
        racer.join(30)
    assert not errors, errors
    assert first.at == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert chosen == [datetime(2026, 6, 2, 12, tzinfo=UTC)]


def test_concurrent_queue_requests_never_share_a_slot(api: TestClient, account: Account) -> None:
    channel = make_channel(api, account)
    set_slots(api, account, channel, "Europe/Warsaw", [{"weekdays": WEEKDAYS, "time": "09:00"}])
    posts = [make_post(api, account, f"Post {n}") for n in range(6)]
    barrier = threading.Barrier(len(posts))
    answers: list[Any] = []

    def run(post_id: str) -> None:
        barrier.wait()
        answers.append(queue(api, account, post_id, channel))

    with frozen(MONDAY):
        threads = [threading.Thread(target=run, args=(p,)) for p in posts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert [a.status_code for a in answers] == [202] * len(posts), [a.text for a in answers]
        instants = [a.json()["queued"][0]["at"] for a in answers]
        assert len(set(instants)) == len(posts)
        # The six earliest slots, none skipped.
        free = listing(api, account, channel)["occurrences"]
    assert sorted(instants) == [o["at"] for o in free[: len(posts)]]
    assert all(o["state"] == "taken" for o in free[: len(posts)])
    assert free[len(posts)]["state"] == "free"


# --- daylight saving -----------------------------------------------------------------------


def test_slots_stay_at_local_time_across_both_dst_changes(
    api: TestClient, account: Account
) -> None:
    channel = make_channel(api, account)
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    set_slots(api, account, channel, "Europe/Warsaw", [{"weekdays": every_day, "time": "09:00"}])

    def nine_oclocks(start: str, end: str) -> list[tuple[str, str]]:
        found = listing(api, account, channel, **{"from": start, "to": end})["occurrences"]
        return [(o["at"], o["local_at"]) for o in found]

    assert nine_oclocks("2026-10-24", "2026-10-26") == [
        ("2026-10-24T07:00:00Z", "2026-10-24T09:00:00+02:00"),  # summer time
        ("2026-10-25T08:00:00Z", "2026-10-25T09:00:00+01:00"),  # the change happened at 03:00
        ("2026-10-26T08:00:00Z", "2026-10-26T09:00:00+01:00"),
    ]
    assert nine_oclocks("2026-03-28", "2026-03-30") == [
        ("2026-03-28T08:00:00Z", "2026-03-28T09:00:00+01:00"),  # winter time
        ("2026-03-29T07:00:00Z", "2026-03-29T09:00:00+02:00"),
        ("2026-03-30T07:00:00Z", "2026-03-30T09:00:00+02:00"),
    ]

    # The queue, with the clock on each side of each change.
    cases = [
        (datetime(2026, 10, 24, 7, 30, tzinfo=UTC), "2026-10-25T08:00:00Z"),
        (datetime(2026, 10, 25, 8, 30, tzinfo=UTC), "2026-10-26T08:00:00Z"),
        (datetime(2026, 3, 28, 9, 0, tzinfo=UTC), "2026-03-29T07:00:00Z"),
        (datetime(2026, 3, 29, 7, 0, tzinfo=UTC), "2026-03-30T07:00:00Z"),
    ]
    for n, (now, expected) in enumerate(cases):
        post = make_post(api, account, f"Post {n}")
        with frozen(now):
            (queued,) = queue(api, account, post, channel).json()["queued"]
        assert queued["at"] == expected
        assert queued["local_at"].startswith(expected[:10] + "T09:00:00+0")


def test_gap_and_repeated_hour_follow_fold_zero(api: TestClient, account: Account) -> None:
    """02:30 does not exist on 29 March: it becomes 03:30 CEST (and merges with a 03:30
    slot); 02:30 happens twice on 25 October: the first one (CEST) is taken."""
    channel = make_channel(api, account)
    set_slots(
        api,
        account,
        channel,
        "Europe/Warsaw",
        [{"weekdays": ["sun"], "time": "02:30"}, {"weekdays": ["sun"], "time": "03:30"}],
    )
    spring = listing(api, account, channel, **{"from": "2026-03-29", "to": "2026-03-29"})
    assert [(o["at"], o["local_at"]) for o in spring["occurrences"]] == [
        ("2026-03-29T01:30:00Z", "2026-03-29T03:30:00+02:00")
    ]
    autumn = listing(api, account, channel, **{"from": "2026-10-25", "to": "2026-10-25"})
    assert [(o["at"], o["local_at"]) for o in autumn["occurrences"]] == [
        ("2026-10-25T00:30:00Z", "2026-10-25T02:30:00+02:00"),
        ("2026-10-25T02:30:00Z", "2026-10-25T03:30:00+01:00"),
    ]


def test_local_instant_directly() -> None:
    warsaw = slots.load_zone("Europe/Warsaw")
    summer = slots.local_instant(datetime(2026, 7, 1).date(), time(9), warsaw)
    winter = slots.local_instant(datetime(2026, 12, 1).date(), time(9), warsaw)
    assert (summer.hour, winter.hour) == (7, 8)
    with pytest.raises(ValueError, match="unknown time zone"):
        slots.load_zone("Europe/Nowhere")
