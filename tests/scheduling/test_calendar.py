"""The calendar: deliveries grouped by day in the reader's zone, workspace-scoped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from herald.core.db import session_scope
from herald.publishing.actions import publish
from herald.publishing.models import Publication, PublicationState
from tests.conftest import Account
from tests.scheduling import frozen, include_slot_routers, make_channel, make_post, principal_of

S = PublicationState
# Deliveries are created while the clock says it is long before them (so: scheduled).
EARLIER = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def api(client: TestClient) -> TestClient:
    return include_slot_routers(client)


def delivery(
    api: TestClient,
    account: Account,
    channel_id: str,
    title: str,
    due_at: datetime,
    *,
    state: PublicationState = S.SCHEDULED,
    published_at: datetime | None = None,
) -> str:
    post_id = make_post(api, account, title)
    with frozen(EARLIER), session_scope() as session:
        (publication,) = publish(
            session,
            principal_of(account),
            uuid.UUID(post_id),
            [uuid.UUID(channel_id)],
            due_at=due_at,
        )
        if state != S.SCHEDULED:
            session.execute(
                update(Publication)
                .where(Publication.id == publication.id)
                .values(state=state, published_at=published_at)
            )
        return str(publication.id)


def calendar(api: TestClient, account: Account, **params: str) -> Any:
    return api.get("/api/v1/calendar", params=params, headers=account.headers)


def flat(answer: Any) -> list[tuple[str, str, str]]:
    return [
        (day["date"], item["post_title"], item["at"])
        for day in answer["days"]
        for item in day["items"]
    ]


def test_days_are_grouped_in_the_readers_zone(api: TestClient, account: Account) -> None:
    site = make_channel(api, account, "site")
    late = delivery(api, account, site, "Late", datetime(2026, 10, 24, 23, 30, tzinfo=UTC))
    delivery(api, account, site, "Failed", datetime(2026, 10, 25, 10, tzinfo=UTC), state=S.FAILED)
    # Published: placed when it went out, not when it was due.
    delivery(
        api,
        account,
        site,
        "Out",
        datetime(2026, 10, 23, 21, tzinfo=UTC),
        state=S.PUBLISHED,
        published_at=datetime(2026, 10, 24, 8, 5, tzinfo=UTC),
    )
    delivery(
        api, account, site, "Dropped", datetime(2026, 10, 24, 12, tzinfo=UTC), state=S.CANCELLED
    )
    delivery(api, account, site, "Later", datetime(2026, 11, 2, 12, tzinfo=UTC))

    warsaw = calendar(
        api, account, **{"from": "2026-10-24", "to": "2026-10-25", "tz": "Europe/Warsaw"}
    )
    assert warsaw.status_code == 200, warsaw.text
    body = warsaw.json()
    assert (body["timezone"], body["from"], body["to"]) == (
        "Europe/Warsaw",
        "2026-10-24T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    )
    # 23:30 UTC on the 24th is 01:30 on the 25th in Warsaw.
    assert flat(body) == [
        ("2026-10-24", "Out", "2026-10-24T10:05:00+02:00"),
        ("2026-10-25", "Late", "2026-10-25T01:30:00+02:00"),
        ("2026-10-25", "Failed", "2026-10-25T11:00:00+01:00"),
    ]
    item = body["days"][1]["items"][0]
    assert item["publication_id"] == late
    assert item["channel_id"] == site
    assert (item["channel_name"], item["platform"], item["state"]) == (
        "site",
        "folder",
        "scheduled",
    )

    utc = calendar(api, account, **{"from": "2026-10-24", "to": "2026-10-25"}).json()
    assert flat(utc) == [
        ("2026-10-24", "Out", "2026-10-24T08:05:00Z"),
        ("2026-10-24", "Late", "2026-10-24T23:30:00Z"),
        ("2026-10-25", "Failed", "2026-10-25T10:00:00Z"),
    ]


def test_channel_filter_and_workspace_scope(
    api: TestClient, account: Account, make_account: Any
) -> None:
    site = make_channel(api, account, "site")
    blog = make_channel(api, account, "blog")
    delivery(api, account, site, "On site", datetime(2026, 10, 24, 9, tzinfo=UTC))
    delivery(api, account, blog, "On blog", datetime(2026, 10, 24, 10, tzinfo=UTC))
    stranger = make_account("stranger@example.com", workspace="other")
    theirs = make_channel(api, stranger, "theirs")
    delivery(api, stranger, theirs, "Not yours", datetime(2026, 10, 24, 11, tzinfo=UTC))
    window = {"from": "2026-10-24T00:00:00Z", "to": "2026-10-25T00:00:00Z"}

    everything = calendar(api, account, **window).json()
    assert [title for _, title, _ in flat(everything)] == ["On site", "On blog"]
    only_blog = calendar(api, account, channel_id=blog, **window).json()
    assert [title for _, title, _ in flat(only_blog)] == ["On blog"]

    refused = calendar(api, account, channel_id=theirs, **window)
    assert refused.status_code == 404
    assert refused.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"tz": "Europe/Atlantis"}, "unknown time zone"),
        ({"from": "2026-01-01", "to": "2026-12-31"}, "longer than 92 days"),
        ({"from": "2026-10-24T09:00"}, "offset"),
    ],
)
def test_bad_queries_are_422(
    api: TestClient, account: Account, params: dict[str, str], words: str
) -> None:
    response = calendar(api, account, **params)
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]
    assert response.json()["errors"][0]["loc"][0] == "query"
