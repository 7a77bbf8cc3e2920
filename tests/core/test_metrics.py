"""The API's own HTTP middlewares (plain ASGI): the request id, and the per-route request
count and latency."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tests.conftest import Account


def _count(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "herald_http_requests_total", {"method": "GET", "route": route, "status": status}
    )
    return value or 0.0


def test_each_answer_carries_a_request_id(client: TestClient, account: Account) -> None:
    mine = client.get("/api/v1/posts", headers={**account.headers, "X-Request-ID": "abc-123"})
    assert mine.status_code == 200 and mine.headers["X-Request-ID"] == "abc-123"
    first = client.get("/api/v1/posts", headers=account.headers).headers["X-Request-ID"]
    second = client.get("/api/v1/posts/nope", headers=account.headers)
    assert second.status_code == 422  # a problem answer gets one too
    assert len(first) == 32 and first != second.headers["X-Request-ID"]


def test_requests_are_counted_by_route_template_and_status(
    client: TestClient, account: Account
) -> None:
    route = "/posts/{post_id}"  # the route's own template, as FastAPI records it
    before_ok, before_missing = _count(route, "200"), _count(route, "404")
    post = client.post("/api/v1/posts", json={"title": "T", "body": "B"}, headers=account.headers)
    assert client.get(f"/api/v1/posts/{post.json()['id']}", headers=account.headers).is_success
    missing = client.get(
        f"/api/v1/posts/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=account.headers
    )
    assert missing.status_code == 404
    assert _count(route, "200") == before_ok + 1
    assert _count(route, "404") == before_missing + 1
    unmatched = _count("unmatched", "404")
    assert client.get(f"/api/v1/no/such/{'x' * 8}").status_code == 404
    assert _count("unmatched", "404") == unmatched + 1  # a raw path is no label of its own
