"""The Matrix adapter: the contract suite against a local homeserver fake, plus what is
particular to Matrix (transaction ids, m.image, retry_after_ms)."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

import herald.adapters.matrix  # noqa: F401  (registers the adapter)
from herald.adapters.base import AuthError, MemoryStore, PermanentError, RetryableError
from herald.adapters.matrix import MatrixAdapter, MatrixCredentials
from tests.adapters.contract import (
    HTTP,
    MEDIA,
    AdapterContract,
    Fault,
    new_key,
    sample_image,
    sample_post,
)
from tests.fakes.matrix import FakeMatrix, content_errors
from tests.fakes.specs import needs_specs


class TestMatrixContract(AdapterContract):
    platform = "matrix"
    capabilities = frozenset({HTTP, MEDIA})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeMatrix]:
        with FakeMatrix() as fake:
            yield fake

    def credentials(self, fake: FakeMatrix) -> dict[str, Any]:
        return {
            "homeserver": fake.base_url,
            "access_token": fake.access_token,
            "room": fake.room_id,
        }

    def bad_credentials(self, fake: FakeMatrix) -> dict[str, dict[str, Any]]:
        good = self.credentials(fake)
        return {
            "unknown token": good | {"access_token": "syt_bm9ib2R5_notAToken0000000000"},
            "room not joined": good | {"room": fake.other_room},
            "alias that resolves nowhere": good | {"room": "#gone:fake.example"},
        }

    def posts_on_platform(self, fake: FakeMatrix) -> list[Any]:
        return fake.messages("m.text")

    def media_on_platform(self, fake: FakeMatrix) -> list[dict[str, Any]]:
        return [
            {"alt": e.content["body"], "size": len(fake.media[e.content["url"]].data)}
            for e in fake.messages("m.image")
        ]

    def secret_values(self, credentials: Mapping[str, Any]) -> list[str]:
        return [credentials["access_token"]]

    def inject(self, fake: FakeMatrix, fault: Fault) -> None:
        fake.inject(fault)

    def requests_received(self, fake: FakeMatrix) -> int:
        return len(fake.requests)

    def unreachable_credentials(self, fake: FakeMatrix, base_url: str) -> dict[str, Any]:
        return self.credentials(fake) | {"homeserver": base_url}

    def rate_limit_headers(self, seconds: int, now: float) -> dict[str, dict[str, str]]:
        # The fake puts retry_after_ms in the body when Retry-After is in seconds.
        return {
            "Retry-After seconds (and retry_after_ms)": {"Retry-After": str(seconds)},
            "Retry-After HTTP date": {
                "Retry-After": email.utils.formatdate(now + seconds, usegmt=True)
            },
        }


# -- what is particular to Matrix ------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeMatrix]:
    with FakeMatrix() as fake:
        yield fake


def make(fake: FakeMatrix, **changes: Any) -> MatrixAdapter:
    credentials = {
        "homeserver": fake.base_url,
        "access_token": fake.access_token,
        "room": fake.room_id,
    } | changes
    return MatrixAdapter.build(credentials, {}, MemoryStore())


@pytest.fixture
def adapter(fake: FakeMatrix) -> MatrixAdapter:
    return make(fake)


def sends(fake: FakeMatrix) -> list[str]:
    """The txnId of each send request, in order."""
    return [r.path.rsplit("/", 1)[-1] for r in fake.requests if r.method == "PUT"]


def test_txn_id_is_the_key_and_the_homeserver_deduplicates(fake: FakeMatrix) -> None:
    # Two workers, no shared progress: the second send is the homeserver's to dedupe.
    key = new_key()
    first, second = make(fake), make(fake)
    rendition = first.render(sample_post())
    one = first.publish(rendition, key)
    two = second.publish(rendition, key)
    assert sends(fake) == [key, key]
    assert len(fake.events) == 1
    assert one.external_id == two.external_id == fake.events[0].event_id
    assert one.url == f"https://matrix.to/#/{fake.room_id}/{one.external_id}"


def test_text_event_has_plain_body_and_sanitised_html(
    adapter: MatrixAdapter, fake: FakeMatrix
) -> None:
    post = sample_post(
        title="Fish & *chips*",
        body="Some **bold** and a [link](https://example.org/a?b=c&d=e).\n\n<script>x()</script>",
    )
    adapter.publish(adapter.render(post), new_key())
    (event,) = fake.events
    assert event.content == {
        "msgtype": "m.text",
        "body": "Fish & *chips*\n\nSome bold and a link (https://example.org/a?b=c&d=e).\n\n"
        "https://blog.example.org/2024/cafe-au-lait",
        "format": "org.matrix.custom.html",
        "formatted_body": "<p><strong>Fish &amp; *chips*</strong></p>\n"
        '<p>Some <strong>bold</strong> and a <a href="https://example.org/a?b=c&amp;d=e" '
        'rel="noopener noreferrer">link</a>.</p>\n\n'
        '<p><a href="https://blog.example.org/2024/cafe-au-lait" rel="noopener noreferrer">'
        "https://blog.example.org/2024/cafe-au-lait</a></p>",
    }


def test_image_event_carries_alt_text_and_info(
    adapter: MatrixAdapter, fake: FakeMatrix, tmp_path: Path
) -> None:
    image = sample_image(tmp_path, "A red door in the snow")
    key = new_key()
    receipt = adapter.publish(adapter.render(sample_post(media=(image,))), key)
    text, picture = fake.events
    assert receipt.external_id == text.event_id
    assert receipt.data["events"] == [text.event_id, picture.event_id]
    assert [text.txn_id, picture.txn_id] == [f"{key}-0", f"{key}-1"]
    (media,) = fake.media.values()
    assert picture.content == {
        "msgtype": "m.image",
        "body": "A red door in the snow",
        "filename": "pixel.png",
        "url": media.uri,
        "info": {"mimetype": "image/png", "size": image.size, "w": 1, "h": 1},
    }
    assert (media.content_type, media.filename, media.data) == (
        "image/png",
        "pixel.png",
        image.read(),
    )


def test_retry_after_image_failure_neither_reuploads_nor_resends(
    adapter: MatrixAdapter, fake: FakeMatrix, tmp_path: Path
) -> None:
    rendition = adapter.render(sample_post(media=(sample_image(tmp_path),)))
    key = new_key()
    fake.inject(Fault())  # the text goes out
    fake.inject(Fault())  # the upload too
    fake.fail_next(502, "bad gateway")  # the image event does not
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    adapter.publish(rendition, key)
    assert [e.content["msgtype"] for e in fake.events] == ["m.text", "m.image"]
    assert len(fake.media) == 1
    assert sends(fake) == [f"{key}-0", f"{key}-1", f"{key}-1"]


def test_rate_limit_reads_retry_after_ms(adapter: MatrixAdapter, fake: FakeMatrix) -> None:
    fake.rate_limit_ms = 2500
    fake.fail_next(429, "Too Many Requests")
    with pytest.raises(RetryableError, match="M_LIMIT_EXCEEDED") as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert info.value.retry_after == 2.5


def test_errors_by_errcode(adapter: MatrixAdapter, fake: FakeMatrix) -> None:
    fake.fail_next(413, "event too large")
    with pytest.raises(PermanentError, match="M_TOO_LARGE: event too large"):
        adapter.publish(adapter.render(sample_post()), new_key())
    fake.fail_next(403, "You are not allowed to send messages here")
    with pytest.raises(AuthError, match="M_FORBIDDEN"):
        adapter.publish(adapter.render(sample_post()), new_key())
    stale = make(fake, access_token="syt_expired")
    with pytest.raises(AuthError, match="M_UNKNOWN_TOKEN"):
        stale.verify()
    assert fake.events == []


def test_soft_logout_is_explained(adapter: MatrixAdapter, fake: FakeMatrix) -> None:
    fake.access_token = "syt_rotated"
    with pytest.raises(AuthError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert "M_UNKNOWN_TOKEN" in info.value.message
    assert "soft logout" not in info.value.message  # soft_logout was false


def test_alias_is_resolved_once_and_membership_checked(fake: FakeMatrix) -> None:
    adapter = make(fake, room=fake.alias)
    identity = adapter.verify()
    assert identity.name == fake.user_id
    assert identity.detail["room_id"] == fake.room_id
    adapter.publish(adapter.render(sample_post()), new_key())
    adapter.publish(adapter.render(sample_post()), new_key())
    lookups = [r for r in fake.requests if "/directory/room/" in r.path]
    assert len(lookups) == 1
    assert {e.room_id for e in fake.events} == {fake.room_id}
    with pytest.raises(AuthError, match="has not joined"):
        make(fake, room=fake.other_room).verify()


def test_long_post_is_split_by_bytes_with_one_txn_per_part(
    adapter: MatrixAdapter, fake: FakeMatrix
) -> None:
    paragraph = "日本語のテキストと [リンク](https://example.org/a?b=c) を含む段落です。" * 30
    post = sample_post(body="\n\n".join([paragraph] * 40))
    rendition = adapter.render(post)
    assert len(rendition.parts) > 2
    assert all(adapter.measure(part) <= 24_000 for part in rendition.parts)
    key = new_key()
    adapter.publish(rendition, key)
    assert [e.txn_id for e in fake.events] == [f"{key}-{i}" for i in range(len(rendition.parts))]
    for event in fake.events:
        assert len(json.dumps(event.content, ensure_ascii=False).encode()) < 65_536
    assert [e.content["body"] for e in fake.events] == list(rendition.parts)


def test_notice_setting_sends_m_notice(fake: FakeMatrix) -> None:
    adapter = MatrixAdapter.build(
        {"homeserver": fake.base_url, "access_token": fake.access_token, "room": fake.room_id},
        {"notice": True},
    )
    adapter.publish(adapter.render(sample_post()), new_key())
    assert fake.events[0].content["msgtype"] == "m.notice"


@needs_specs
def test_fake_validates_against_the_event_schemas() -> None:
    assert content_errors({"msgtype": "m.text", "body": "hi"}) == []
    assert "(content): 'body' is a required property" in content_errors({"msgtype": "m.text"})
    assert content_errors(
        {"msgtype": "m.image", "body": "alt", "url": "https://x/y.png", "info": {"w": "1"}}
    ) == [
        "info/w: '1' is not of type 'integer'",
        "url: 'https://x/y.png' does not match '^mxc:\\\\/\\\\/'",
    ]
    assert content_errors({"msgtype": "m.text", "body": "x", "format": "org.matrix.custom.html"})


# Room IDs as the spec's identifier grammar allows them (Appendices → Room IDs, and room
# version 12: the create event's hash, no server part, as Synapse 1.163 creates them).
ACCEPTED_ROOMS = [
    "!AczZ8M2NqGdbm8_HJvJZbkLmQhb5u52S9UdTO6uClFg",  # room version 12
    "!abcdefghijklmnopqr:example.org",  # versions 1 to 11
    "!abc:example.org:8448",  # a port
    "!abc:1.2.3.4",  # an IPv4 literal
    "!abc:[1234:5678::abcd]:5678",  # an IPv6 literal with a port
    "!Opaque-._~=+/ ID:example.org",  # any character but ':' and NUL
    "#news:example.org",
    "#nouvelles-été:example.org",  # an alias's localpart: any character but ':'
    "  !abc:example.org  ",  # pasted with spaces around
]
REFUSED_ROOMS = {
    "!abc": "has no server part",  # neither form
    "!AczZ8M2NqGdbm8_HJvJZbkLmQhb5u52S9UdTO6uClF": "has no server part",  # 42 characters
    "!AczZ8M2NqGdbm8+HJvJZbkLmQhb5u52S9UdTO6uClFg": "has no server part",  # not URL-safe
    "!:example.org": "must be a room ID",
    "abc:example.org": "must be a room ID",
    "#news": "must be a room ID",
    "!abc:": "must be a room ID",
    "!abc:exa mple.org": "is not a server name",
    "!abc\x00:example.org": "NUL",
    "!" + "a" * 250 + ":example.org": "255 bytes",
}


@pytest.mark.parametrize("room", ACCEPTED_ROOMS)
def test_every_room_id_form_the_spec_allows_is_accepted(room: str) -> None:
    credentials = MatrixCredentials.model_validate(
        {"homeserver": "https://matrix.example.org", "access_token": "syt_x", "room": room}
    )
    assert credentials.room == room.strip()


@pytest.mark.parametrize(("room", "reason"), REFUSED_ROOMS.items())
def test_what_is_no_room_id_is_refused_with_the_reason(room: str, reason: str) -> None:

    with pytest.raises(ValidationError, match=reason):
        MatrixCredentials.model_validate(
            {"homeserver": "https://matrix.example.org", "access_token": "syt_x", "room": room}
        )


@pytest.mark.parametrize("by", ["room ID", "alias"])
def test_posts_to_a_room_version_12_room(by: str) -> None:
    with FakeMatrix(room_version=12) as fake:
        assert ":" not in fake.room_id
        adapter = make(fake, room=fake.room_id if by == "room ID" else fake.alias)
        assert adapter.verify().detail["room_id"] == fake.room_id
        receipt = adapter.publish(adapter.render(sample_post()), new_key())
        assert [e.room_id for e in fake.events] == [fake.room_id]
        assert receipt.url == f"https://matrix.to/#/{fake.room_id}/{receipt.external_id}"
        assert fake.violations == []
