"""/api/v1/webhooks: the secret shown once, validation, managers only, rotation, the
delivery log and the test ping."""

from __future__ import annotations

from fastapi.testclient import TestClient

from herald.users.models import Role
from herald.webhooks import signing
from herald.webhooks.events import EVENT_TYPES
from tests.conftest import Account, MakeAccount
from tests.fakes.event_receiver import EventReceiver
from tests.webhooks import movable_clock, run_due


def test_create_shows_a_generated_secret_once(client: TestClient, account: Account) -> None:
    made = client.post(
        "/api/v1/webhooks",
        json={
            "url": "https://hooks.example.com/herald",
            "events": ["delivery.failed", "job.finished"],
        },
        headers=account.headers,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
    assert body["events"] == ["delivery.failed", "job.finished"]
    assert body["state"] == "active"
    listed = client.get("/api/v1/webhooks", headers=account.headers).json()
    assert [w["id"] for w in listed] == [body["id"]]
    assert listed[0]["secret"] is None
    one = client.get(f"/api/v1/webhooks/{body['id']}", headers=account.headers).json()
    assert one["secret"] is None
    assert body["secret"] not in str(listed) + str(one)


def test_unknown_event_types_are_refused_with_the_known_ones(
    client: TestClient, account: Account
) -> None:
    answer = client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/h", "events": ["delivery.published", "post.eaten"]},
        headers=account.headers,
    )
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "'post.eaten'" in detail
    assert all(event.name in detail for event in EVENT_TYPES)


def test_urls_are_checked(client: TestClient, account: Account) -> None:
    for url, words in (
        ("ftp://hooks.example.com/h", "http:// or https://"),
        ("hooks.example.com/h", "http:// or https://"),
        ("http://[::1/h", "http:// or https://"),
        ("https://hooks example.com/h", "http:// or https://"),
        ("https://hooks.example.com:99999/h", "http:// or https://"),
        ("http://10.1.2.3/h", "HERALD_ALLOWED_PRIVATE_NETWORKS"),
        ("http://169.254.169.254/latest", "HERALD_ALLOWED_PRIVATE_NETWORKS"),
    ):
        answer = client.post(
            "/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=account.headers
        )
        assert answer.status_code == 422, url
        assert words in answer.json()["detail"], answer.json()


def test_only_managers_manage_webhooks(
    client: TestClient, account: Account, make_account: MakeAccount
) -> None:
    made = client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/h", "events": ["*"]},
        headers=account.headers,
    ).json()
    reviewer = make_account("rita@example.com", role=Role.REVIEWER)
    for method, path in (
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks"),
        ("GET", f"/api/v1/webhooks/{made['id']}"),
        ("DELETE", f"/api/v1/webhooks/{made['id']}"),
        ("GET", f"/api/v1/webhooks/{made['id']}/deliveries"),
        ("POST", f"/api/v1/webhooks/{made['id']}/test"),
    ):
        json = {"url": "https://hooks.example.com/h", "events": ["*"]} if method == "POST" else None
        answer = client.request(method, path, json=json, headers=reviewer.headers)
        assert answer.status_code == 403, (method, path, answer.text)


def test_rotation_signs_with_both_secrets_for_a_day(
    client: TestClient, account: Account, event_receiver: EventReceiver
) -> None:
    made = client.post(
        "/api/v1/webhooks",
        json={"url": event_receiver.url, "events": ["*"], "secret": event_receiver.secret},
        headers=account.headers,
    ).json()
    with movable_clock() as clock:
        rotated = client.patch(
            f"/api/v1/webhooks/{made['id']}", json={"rotate_secret": True}, headers=account.headers
        ).json()
        new = rotated["secret"]
        assert new.startswith("whsec_") and new != event_receiver.secret
        client.post(f"/api/v1/webhooks/{made['id']}/test", headers=account.headers)
        run_due()
        headers, raw = event_receiver.requests[-1]["headers"], event_receiver.requests[-1]["body"]
        assert headers["herald-signature"].count("v1=") == 2
        for secret in (new, event_receiver.secret):
            assert signing.verify(
                secret, headers["herald-timestamp"], raw, headers["herald-signature"]
            )
        clock.advance(hours=24, seconds=1)
        client.post(f"/api/v1/webhooks/{made['id']}/test", headers=account.headers)
        run_due()
        headers, raw = event_receiver.requests[-1]["headers"], event_receiver.requests[-1]["body"]
        assert headers["herald-signature"].count("v1=") == 1
        assert signing.verify(new, headers["herald-timestamp"], raw, headers["herald-signature"])
        assert event_receiver.bad_signatures == 1  # the receiver still on the old secret


def test_the_delivery_log_pages_and_filters(
    client: TestClient, account: Account, event_receiver: EventReceiver
) -> None:
    made = client.post(
        "/api/v1/webhooks",
        json={"url": event_receiver.url, "events": ["*"], "secret": event_receiver.secret},
        headers=account.headers,
    ).json()
    with movable_clock() as clock:
        for _ in range(5):
            client.post(f"/api/v1/webhooks/{made['id']}/test", headers=account.headers)
            clock.advance(seconds=1)
        event_receiver.script.extend([500, 500])
        run_due()
    url = f"/api/v1/webhooks/{made['id']}/deliveries"
    seen, cursor = [], None
    while True:
        page = client.get(
            url,
            params={"limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=account.headers,
        ).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and len({d["id"] for d in seen}) == 5
    assert [d["created_at"] for d in seen] == sorted((d["created_at"] for d in seen), reverse=True)
    assert all(d["event_type"] == "webhook.test" for d in seen)
    pending = client.get(url, params={"state": "pending"}, headers=account.headers).json()["items"]
    assert len(pending) == 2
    assert all(d["last_status"] == 500 and d["attempts"] == 1 for d in pending)
    assert all("HTTP 500" in d["last_error"] for d in pending)
    delivered = client.get(url, params={"state": "delivered"}, headers=account.headers).json()
    assert len(delivered["items"]) == 3
    bad = client.get(url, params={"cursor": "nonsense"}, headers=account.headers)
    assert bad.status_code == 422


def test_a_disabled_endpoint_is_not_tested_and_a_deleted_one_is_gone(
    client: TestClient, account: Account
) -> None:
    made = client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/h", "events": ["*"]},
        headers=account.headers,
    ).json()
    off = client.patch(
        f"/api/v1/webhooks/{made['id']}", json={"state": "disabled"}, headers=account.headers
    ).json()
    assert (off["state"], off["disabled_reason"]) == ("disabled", "disabled by a person")
    answer = client.post(f"/api/v1/webhooks/{made['id']}/test", headers=account.headers)
    assert answer.status_code == 409 and "enable it first" in answer.json()["detail"]
    assert (
        client.delete(f"/api/v1/webhooks/{made['id']}", headers=account.headers).status_code == 204
    )
    assert client.get(f"/api/v1/webhooks/{made['id']}", headers=account.headers).status_code == 404
