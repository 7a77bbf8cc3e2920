"""The webhook adapter: the contract suite against a real local receiver, plus what is
particular to webhooks (signature, Idempotency-Key, payload)."""

from __future__ import annotations

import contextlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest

from herald.adapters.base import Adapter, AdapterError
from herald.adapters.webhook import WebhookAdapter, verify_signature
from tests.adapters.contract import HTTP, AdapterContract, Fault, needs, new_key, sample_post
from tests.fakes.webhook import FakeWebhook


class TestWebhookContract(AdapterContract):
    platform = "webhook"
    capabilities = frozenset({HTTP})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeWebhook]:
        with FakeWebhook() as fake:
            yield fake

    def credentials(self, fake: FakeWebhook) -> dict[str, Any]:
        return fake.credentials()

    def bad_credentials(self, fake: FakeWebhook) -> dict[str, dict[str, Any]]:
        return {"wrong secret": {"url": fake.url, "secret": "not-the-receivers-secret-0042"}}

    def posts_on_platform(self, fake: FakeWebhook) -> list[Any]:
        return list(fake.posts.values())

    def secret_values(self, credentials: Any) -> list[str]:
        # The URL's path is a secret too: many receivers put their token there.
        return [credentials["secret"], urlsplit(credentials["url"]).path.rsplit("/", 1)[-1]]

    def inject(self, fake: FakeWebhook, fault: Fault) -> None:
        if fault.hang:
            fake.hang_next()
        elif fault.drop:
            fake.drop_next()
        else:
            assert fault.status is not None
            fake.fail_next(fault.status, fault.message, fault.headers)

    def requests_received(self, fake: FakeWebhook) -> int:
        return len(fake.requests)

    def unreachable_credentials(self, fake: FakeWebhook, base_url: str) -> dict[str, Any]:
        return {"url": f"{base_url}/hooks/{fake.token}", "secret": fake.secret}

    @needs(HTTP)
    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    def test_redirect_is_not_taken_for_success(
        self, adapter: Adapter[Any, Any], fake: Any, status: int
    ) -> None:
        super().test_redirect_is_not_taken_for_success(adapter, fake, status)


# -- what is particular to webhooks -----------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeWebhook]:
    with FakeWebhook() as fake:
        yield fake


@pytest.fixture
def adapter(fake: FakeWebhook) -> WebhookAdapter:
    return WebhookAdapter.build(fake.credentials())


def test_delivery_is_signed_over_timestamp_and_raw_body(
    adapter: WebhookAdapter, fake: FakeWebhook
) -> None:
    adapter.publish(adapter.render(sample_post()), new_key())
    (request,) = fake.deliveries()
    timestamp = request.headers["x-herald-timestamp"]
    signature = request.headers["x-herald-signature"]
    assert verify_signature(fake.secret, timestamp, request.body, signature)
    # Spelled out independently, as a receiver in another language would check it.
    expected = hmac.new(fake.secret.encode(), f"{timestamp}.".encode() + request.body, "sha256")
    assert signature == f"sha256={expected.hexdigest()}"
    assert abs(int(timestamp) - time.time()) < 60
    # A different body or timestamp does not verify.
    assert not verify_signature(fake.secret, timestamp, request.body + b" ", signature)
    assert not verify_signature(fake.secret, str(int(timestamp) - 1), request.body, signature)


def test_idempotency_key_header_is_the_key_given(
    adapter: WebhookAdapter, fake: FakeWebhook
) -> None:
    key = new_key()
    adapter.publish(adapter.render(sample_post()), key)
    (request,) = fake.deliveries()
    assert request.headers["idempotency-key"] == key
    assert request.json()["idempotency_key"] == key


def test_body_carries_the_post(adapter: WebhookAdapter, fake: FakeWebhook) -> None:
    post = sample_post()
    adapter.publish(adapter.render(post), new_key())
    (request,) = fake.deliveries()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-herald-event"] == "post.published"
    assert request.headers["user-agent"].startswith("Herald/")
    body = request.json()
    assert body["event"] == "post.published"
    assert body["post"] == {
        "id": str(post.id),
        "title": post.title,
        "body_markdown": post.body,
        "excerpt": post.excerpt,
        "tags": list(post.tags),
        "canonical_url": post.canonical_url,
    }


def test_receipt_is_the_receivers_id_and_url(adapter: WebhookAdapter, fake: FakeWebhook) -> None:
    key = new_key()
    receipt = adapter.publish(adapter.render(sample_post()), key)
    assert receipt.external_id == fake.posts[key]["id"]
    assert receipt.url == fake.posts[key]["url"]


def test_secret_never_goes_over_the_wire(adapter: WebhookAdapter, fake: FakeWebhook) -> None:
    adapter.verify()
    adapter.publish(adapter.render(sample_post()), new_key())
    assert len(fake.requests) == 2
    for request in fake.requests:
        assert fake.secret not in repr(request.headers)
        assert fake.secret.encode() not in request.body


def test_verify_pings_without_posting_and_names_only_the_host(
    adapter: WebhookAdapter, fake: FakeWebhook
) -> None:
    identity = adapter.verify()
    (request,) = fake.requests
    assert json.loads(request.body)["event"] == "ping"
    assert request.headers["x-herald-event"] == "ping"
    assert fake.posts == {}
    assert identity.name == "127.0.0.1"
    assert fake.token not in repr(identity)


def test_redirect_is_not_followed(adapter: WebhookAdapter, fake: FakeWebhook) -> None:
    # A user-supplied URL must not bounce a signed POST somewhere else (SSRF).
    with FakeWebhook(secret=fake.secret) as elsewhere:
        fake.fail_next(307, "moved", {"Location": elsewhere.url})
        # Whether it raises, and what, is the contract suite's business.
        with contextlib.suppress(AdapterError):
            adapter.publish(adapter.render(sample_post()), new_key())
        assert elsewhere.requests == []
