"""The HTTP error mapping every HTTP adapter shares (``herald.adapters.http``), on
answers made by ``httpx.MockTransport``; and what an adapter makes of the guarded
client's refusals (the client itself: tests/core/test_http.py)."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from herald.adapters import http as adapter_http
from herald.adapters.base import AmbiguousError, AuthError, PermanentError, RetryableError
from herald.adapters.http import (
    MAX_MESSAGE,
    HttpAdapter,
    HttpSettings,
    error_message,
    is_retryable_status,
    raise_for_status,
    retry_after_seconds,
    send,
)
from herald.adapters.registry import platforms
from herald.adapters.webhook import WebhookAdapter
from herald.core.http import AddressNotAllowed, ResponseTooLarge
from tests.adapters.contract import new_key, private_networks_refused, sample_post
from tests.fakes.webhook_receiver import Receiver

NOW = 1_714_564_800.0  # 2024-05-01T12:00:00Z
URL = "https://platform.example/api/v1/statuses"

Headers = dict[str, str] | list[tuple[bytes, bytes]]


def answer(
    status: int = 200,
    *,
    headers: Headers | None = None,
    json: Any = None,
    content: bytes | str | None = None,
) -> httpx.Response:
    """The response a client receives when the platform answers so."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, json=json, content=content)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return client.post(URL)


def http_date(at: float) -> str:
    return email.utils.formatdate(at, usegmt=True)


# -- retry_after_seconds ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "120"}, 120.0, id="delta seconds"),
        pytest.param({"Retry-After": " 7 "}, 7.0, id="delta with spaces"),
        pytest.param({"Retry-After": "0"}, 0.0, id="zero"),
        pytest.param({"Retry-After": http_date(NOW + 90)}, 90.0, id="HTTP date"),
        pytest.param({"Retry-After": http_date(NOW - 90)}, 0.0, id="HTTP date past"),
        pytest.param({"X-RateLimit-Reset": str(int(NOW) + 45)}, 45.0, id="reset epoch"),
        pytest.param({"X-Rate-Limit-Reset": str(int(NOW) + 45)}, 45.0, id="X reset epoch"),
        pytest.param({"X-RateLimit-Reset": str(int(NOW) - 10)}, 0.0, id="reset epoch past"),
        pytest.param({"X-RateLimit-Reset": "30"}, 30.0, id="reset delta"),
        pytest.param({"RateLimit-Reset": "30"}, 30.0, id="IETF reset delta"),
        pytest.param({"X-RateLimit-Reset": http_date(NOW + 60)}, 60.0, id="reset HTTP date"),
        pytest.param(
            {"Retry-After": "12", "X-RateLimit-Reset": str(int(NOW) + 999)},
            12.0,
            id="Retry-After wins",
        ),
        pytest.param(
            {"Retry-After": "soon", "X-RateLimit-Reset": "30"}, 30.0, id="bad Retry-After"
        ),
        pytest.param(
            # Mastodon's 429 carries no Retry-After, only this (Time#iso8601(6)).
            {"X-RateLimit-Reset": "2024-05-01T12:05:00.000000Z"},
            300.0,
            id="reset ISO 8601 (Mastodon)",
        ),
        pytest.param({}, None, id="no header"),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(answer(429, headers=headers), now=NOW) == expected


def test_retry_after_seconds_defaults_to_the_wall_clock() -> None:
    seconds = retry_after_seconds(answer(429, headers={"X-RateLimit-Reset": str(time.time() + 60)}))
    assert seconds is not None
    assert 58 <= seconds <= 60


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "soon"},
        {"Retry-After": ""},
        {"Retry-After": "Wed, 99 Foo 2024 99:99:99 GMT"},
        {"Retry-After": "-5"},
        {"X-RateLimit-Reset": "soon"},
        {"X-RateLimit-Reset": "tomorrow at noon"},
    ],
    ids=repr,
)
def test_retry_after_seconds_ignores_garbage(headers: dict[str, str]) -> None:
    assert retry_after_seconds(answer(429, headers=headers), now=NOW) is None


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-RateLimit-Reset": "nan"}, id="reset nan"),
        pytest.param({"X-RateLimit-Reset": "inf"}, id="reset inf"),
        pytest.param({"X-RateLimit-Reset": "-5"}, id="reset negative delta"),
        # Undecodable header bytes come back as Latin-1, and "²".isdigit() is True.
        pytest.param([(b"Retry-After", b"\xb2")], id="Retry-After latin-1 digit"),
        pytest.param({"Retry-After": "1e400"}, id="Retry-After overflow"),
        pytest.param({"X-RateLimit-Reset": "1e3"}, id="reset exponent"),
    ],
)
def test_retry_after_seconds_is_none_or_a_usable_delay(headers: Headers) -> None:
    # The engine adds this to now as a timedelta: it must be finite and not negative.
    seconds = retry_after_seconds(answer(429, headers=headers), now=NOW)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


# -- error_message ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"error": "Validation failed: Text character limit of 500 exceeded"},
            "Validation failed: Text character limit of 500 exceeded",
            id="Mastodon",
        ),
        pytest.param(
            {"error": "invalid_token", "error_description": "The access token was revoked"},
            "The access token was revoked",
            id="OAuth",
        ),
        pytest.param(
            {
                "code": "rest_cannot_create",
                "message": "Sorry, you are not allowed to create posts as this user.",
                "data": {"status": 401},
            },
            "Sorry, you are not allowed to create posts as this user.",
            id="WordPress",
        ),
        pytest.param(
            {"error": "InvalidRequest", "message": "Record/text must not be longer than 300"},
            "Record/text must not be longer than 300",
            id="Bluesky",
        ),
        pytest.param(
            {
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            },
            "One or more parameters to your request was invalid.",
            id="RFC 7807 / X v2",
        ),
        pytest.param(
            {"error": "Title can't be blank", "status": 422}, "Title can't be blank", id="dev.to"
        ),
        pytest.param({"detail": "Not authenticated"}, "Not authenticated", id="FastAPI"),
        pytest.param({"title": "Bad Request"}, "Bad Request", id="title only"),
        pytest.param({"error": "", "message": "the real one"}, "the real one", id="empty skipped"),
        pytest.param(
            {"error": "Le titre est trop long — « title » 日本語"},
            "Le titre est trop long — « title » 日本語",
            id="non-ASCII verbatim",
        ),
        pytest.param("just a string", "just a string", id="JSON string"),
    ],
)
def test_error_message_picks_the_platforms_words(body: Any, expected: str) -> None:
    assert error_message(answer(422, json=body)) == expected


@pytest.mark.parametrize(
    ("body", "inner"),
    [
        pytest.param(
            {
                "errors": [
                    {
                        "message": "Validation error, cannot save post.",
                        "context": "Value in [posts.title] exceeds maximum length of 255.",
                        "type": "ValidationError",
                    }
                ]
            },
            "Validation error, cannot save post.",
            id="Ghost",
        ),
        pytest.param(
            {"data": None, "errors": [{"message": "Tag not found", "path": ["publishPost"]}]},
            "Tag not found",
            id="GraphQL / Hashnode",
        ),
        pytest.param(
            {"errors": [{"code": 187, "message": "Status is a duplicate."}]},
            "Status is a duplicate.",
            id="X v1.1",
        ),
        pytest.param(
            {"error": {"code": 400, "message": "Invalid value", "status": "INVALID_ARGUMENT"}},
            "Invalid value",
            id="Google style",
        ),
    ],
)
def test_error_message_digs_into_nested_errors(body: Any, inner: str) -> None:
    message = error_message(answer(400, json=body))
    assert inner in message
    assert "{'" not in message
    assert "[{" not in message


def test_error_message_falls_back_to_text() -> None:
    assert error_message(answer(400, content="Bad Request: missing title\n")) == (
        "Bad Request: missing title"
    )


def test_error_message_falls_back_to_the_reason_phrase() -> None:
    assert error_message(answer(422, content=b"")) == "Unprocessable Entity"
    assert error_message(answer(503, content=b"  \n")) == "Service Unavailable"


def test_error_message_is_kept_short() -> None:
    assert len(error_message(answer(400, content="x" * 5000))) == MAX_MESSAGE
    assert len(error_message(answer(400, json={"message": "y" * 5000}))) == MAX_MESSAGE


# -- raise_for_status ---------------------------------------------------------------------


MAPPING: list[Any] = [
    *[pytest.param(s, None, id=str(s)) for s in (200, 201, 202, 204)],
    *[pytest.param(s, PermanentError, id=str(s)) for s in (301, 302, 303, 307, 308)],
    *[pytest.param(s, PermanentError, id=str(s)) for s in (400, 404, 405, 409, 410, 413, 422)],
    *[pytest.param(s, AuthError, id=str(s)) for s in (401, 403)],
    *[pytest.param(s, RetryableError, id=str(s)) for s in (408, 425, 429, 500, 502, 503, 504)],
    # Cloudflare's origin errors and friends, in front of many self-hosted blogs.
    *[pytest.param(s, RetryableError, id=str(s)) for s in (507, 520, 521, 522, 523, 529)],
    # The endpoint or protocol will never work: retrying is pointless.
    *[pytest.param(s, PermanentError, id=str(s)) for s in (501, 505)],
]


@pytest.mark.parametrize(("status", "error"), MAPPING)
def test_raise_for_status_mapping(status: int, error: type[Exception] | None) -> None:
    response = answer(status, json={"error": "the platform's words"})
    if error is None:
        raise_for_status(response, platform="mastodon")
        return
    with pytest.raises(error) as info:
        raise_for_status(response, platform="mastodon")
    assert type(info.value) is error
    assert str(info.value).startswith(f"mastodon answered {status}")
    assert "the platform's words" in str(info.value)


@pytest.mark.parametrize("status", [429, 503])
def test_raise_for_status_carries_retry_after(status: int) -> None:
    with pytest.raises(RetryableError) as info:
        raise_for_status(answer(status, headers={"Retry-After": "17"}), platform="p")
    assert info.value.retry_after == 17.0


def test_raise_for_status_without_retry_after() -> None:
    with pytest.raises(RetryableError) as info:
        raise_for_status(answer(502), platform="p")
    assert info.value.retry_after is None


# -- send: failures before and after the request left -------------------------------------


def failing(exc_type: type[httpx.HTTPError], text: str) -> Callable[[httpx.Request], Any]:
    def handler(request: httpx.Request) -> httpx.Response:
        # Every httpx.RequestError subclass takes request=; the HTTPError base does not.
        raise exc_type(text, request=request)  # type: ignore[call-arg]

    return handler


def send_through(handler: Callable[[httpx.Request], Any]) -> httpx.Response:
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return send(client, client.build_request("POST", URL), platform="mastodon")


@pytest.mark.parametrize(
    ("exc_type", "error"),
    [
        (httpx.ConnectError, RetryableError),
        (httpx.ConnectTimeout, RetryableError),
        (httpx.PoolTimeout, RetryableError),
        (httpx.ReadTimeout, AmbiguousError),
        (httpx.WriteTimeout, AmbiguousError),
        (httpx.RemoteProtocolError, AmbiguousError),
        (httpx.ReadError, AmbiguousError),
    ],
    ids=lambda v: v.__name__,
)
def test_send_classifies_transport_failures(
    exc_type: type[httpx.HTTPError], error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        send_through(failing(exc_type, "boom"))
    assert type(info.value) is error
    assert isinstance(info.value.__cause__, exc_type)
    assert "mastodon" in str(info.value)


def test_send_maps_error_answers_and_returns_good_ones() -> None:
    with pytest.raises(PermanentError, match="too long"):
        send_through(lambda request: httpx.Response(422, json={"error": "too long"}))
    response = send_through(lambda request: httpx.Response(200, json={"id": "1"}))
    assert response.json() == {"id": "1"}


@pytest.mark.parametrize(
    "refusal",
    [
        AddressNotAllowed(
            "10.0.0.1 is a private address: Herald does not send requests there unless "
            "HERALD_ALLOWED_PRIVATE_NETWORKS includes it"
        ),
        ResponseTooLarge(
            "the answer from platform.example is larger than 10485760 bytes "
            "(HERALD_HTTP_MAX_RESPONSE_BYTES); Herald stopped reading it"
        ),
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("may_post", [True, False])
def test_what_the_guarded_client_refuses_is_permanent(refusal: Exception, may_post: bool) -> None:
    """Sending again would be refused again (the address) or fetch the same flood (the
    size): permanent, with the words that say which setting decides."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise refusal

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(PermanentError) as info,
    ):
        send(client, client.build_request("POST", URL), platform="mastodon", may_post=may_post)
    assert type(info.value) is PermanentError
    assert str(info.value).startswith("mastodon: ")
    assert "HERALD_" in str(info.value)
    assert info.value.__cause__ is refusal


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "127.0.0.1.",
        "localhost",
        "LOCALHOST.",
        "[::ffff:127.0.0.1]",
    ],
)
def test_a_webhook_at_loopback_is_never_contacted(host: str) -> None:
    """The audit's finding: channels were accepted and contacted at loopback in any
    spelling. With loopback not allowed (production's default), the receiver listening
    there sees nothing and the delivery fails for good, saying why."""
    receiver = Receiver().start()
    try:
        assert receiver.server is not None
        port = receiver.server.server_address[1]
        adapter = WebhookAdapter.build(
            {"url": f"http://{host}:{port}/hook", "secret": receiver.secret}
        )
        with private_networks_refused(), pytest.raises(PermanentError) as info:
            adapter.publish(adapter.render(sample_post()), new_key())
        assert "loopback address" in info.value.message
        assert "HERALD_ALLOWED_PRIVATE_NETWORKS" in info.value.message
        assert receiver.received == []
    finally:
        receiver.stop()


# -- what every HTTP adapter shares ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(status, True) for status in (408, 425, 429, 500, 503, 599)],
        *[(status, False) for status in (400, 404, 409, 501, 505)],
    ],
)
def test_one_rule_says_which_statuses_are_worth_another_try(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


def test_http_settings_default_and_build_the_timeout() -> None:
    settings = HttpSettings()
    assert (settings.connect_timeout, settings.read_timeout) == (5.0, 30.0)
    timeout = HttpSettings(connect_timeout=2, read_timeout=7).timeout()
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (2, 7, 7, 7)


@pytest.mark.parametrize(
    "values",
    [
        {"connect_timeout": 0},
        {"connect_timeout": -1},
        {"connect_timeout": 61},
        {"read_timeout": 0},
        {"read_timeout": 301},
        {"read_timeout": "soon"},
    ],
)
def test_http_settings_refuse_unusable_timeouts(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HttpSettings.model_validate(values)


def test_every_http_adapter_shares_the_plumbing() -> None:
    """Every adapter but the folder's talks HTTP through HttpAdapter, with settings that
    extend HttpSettings (so a channel's timeouts are set, and bounded, in one place)."""
    http_adapters = {
        platform: cls for platform, cls in platforms().items() if issubclass(cls, HttpAdapter)
    }
    assert set(platforms()) - set(http_adapters) == {"folder"}
    for platform, cls in http_adapters.items():
        assert issubclass(cls.settings_model, HttpSettings), platform


def test_an_http_adapter_sends_with_the_channels_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"id": "1"})

    client = httpx.Client(transport=httpx.MockTransport(record))
    monkeypatch.setattr(adapter_http, "shared_client", lambda: client)
    adapter = WebhookAdapter.build(
        {"url": URL, "secret": "s" * 16}, {"connect_timeout": 1.5, "read_timeout": 4}
    )
    adapter.publish(adapter.render(sample_post()), new_key())
    assert seen == [{"connect": 1.5, "read": 4, "write": 4, "pool": 4}]


# --- what an answer says about the rate limit (the budgets' correction) -------------------

OBSERVED_AT = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        # Mastodon: the reset as an ISO 8601 time.
        (
            200,
            {"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "2027-01-15T08:05:00.000Z"},
            None,
            adapter_http.RateObservation(remaining=3, reset_in=300.0),
        ),
        # Bluesky's PDS: ratelimit-* with an epoch reset.
        (
            200,
            {"ratelimit-remaining": "4997", "ratelimit-reset": str(int(OBSERVED_AT) + 3600)},
            None,
            adapter_http.RateObservation(remaining=4997, reset_in=3600.0),
        ),
        # Discord: Reset-After in seconds, and the route's bucket.
        (
            200,
            {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": "1.5",
                "X-RateLimit-Bucket": "abc",
            },
            None,
            adapter_http.RateObservation(remaining=0, reset_in=1.5, bucket="abc", limit=5),
        ),
        # Telegram: a 429's wait is in its body only.
        (
            429,
            {},
            {"ok": False, "error_code": 429, "parameters": {"retry_after": 7}},
            adapter_http.RateObservation(retry_after=7.0),
        ),
        # Matrix: M_LIMIT_EXCEEDED's retry_after_ms.
        (
            429,
            {},
            {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2500},
            adapter_http.RateObservation(retry_after=2.5),
        ),
        # Retry-After wins on a 429.
        (
            429,
            {"Retry-After": "30", "x-rate-limit-remaining": "0"},
            None,
            adapter_http.RateObservation(remaining=0, retry_after=30.0),
        ),
    ],
)
def test_rate_observation_reads_each_platforms_headers(
    status: int,
    headers: dict[str, str],
    body: Any,
    expected: adapter_http.RateObservation,
) -> None:
    response = httpx.Response(status, headers=headers, json=body)
    assert adapter_http.rate_observation(response, OBSERVED_AT) == expected


def test_an_answer_without_rate_headers_says_nothing() -> None:
    assert adapter_http.rate_observation(httpx.Response(200, json={}), OBSERVED_AT) is None
