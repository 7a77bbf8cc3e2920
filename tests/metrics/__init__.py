"""What the metrics tests share: a scrape read into samples, and a burst of posts
published to one channel through the API."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Account

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(client: TestClient, headers: dict[str, str] | None = None) -> Samples:
    """/metrics as {sample name: {sorted labels: value}}."""
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def publish_burst(
    client: TestClient, account: Account, channel_id: str, count: int, prefix: str
) -> list[dict[str, Any]]:
    """``count`` posts, each published now to the channel; their deliveries."""
    publications: list[dict[str, Any]] = []
    for n in range(count):
        post = client.post(
            "/api/v1/posts", json={"title": f"{prefix}{n}", "body": "Hi"}, headers=account.headers
        ).json()
        response = client.post(
            f"/api/v1/posts/{post['id']}/publish",
            json={"channel_ids": [channel_id]},
            headers=account.headers,
        )
        assert response.status_code == 202, response.text
        publications += response.json()["publications"]
    return publications
