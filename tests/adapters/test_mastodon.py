"""The Mastodon adapter: the contract suite against a local fake instance, plus what is
particular to Mastodon (the instance's own length limit and its way of counting, threads
of replies, Idempotency-Key per part, media processing, X-RateLimit-* headers)."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from herald.adapters.base import (
    AuthError,
    MemoryStore,
    PermanentError,
    Rendition,
    RetryableError,
)
from herald.adapters.mastodon import (
    MastodonAdapter,
    MastodonCredentials,
    MastodonSettings,
    status_length,
)
from tests.adapters.contract import (
    HTTP,
    MEDIA,
    THREAD,
    THREAD_BODY,
    THREAD_LINKS,
    AdapterContract,
    Fault,
    new_key,
    sample_image,
    sample_post,
)
from tests.fakes.mastodon import TOKEN, FakeMastodon, mastodon_length
from tests.fakes.specs import require_specs


def iso_in(seconds: float, now: float) -> str:
    """An ``X-RateLimit-Reset`` value as Mastodon writes it."""
    return datetime.fromtimestamp(now + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TestMastodonContract(AdapterContract):
    platform = "mastodon"
    capabilities = frozenset({HTTP, THREAD, MEDIA})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeMastodon]:
        with FakeMastodon() as fake:
            yield fake

    def credentials(self, fake: FakeMastodon) -> dict[str, Any]:
        return {"instance_url": fake.base_url, "access_token": TOKEN}

    def bad_credentials(self, fake: FakeMastodon) -> dict[str, dict[str, Any]]:
        return {
            "revoked token": {
                "instance_url": fake.base_url,
                "access_token": "revoked-token-0123456789abcdef",
            },
            "token without the scopes": {
                "instance_url": fake.base_url,
                "access_token": "mastodon-fake-readonly-9a8b7c",
            },
        }

    def secret_values(self, credentials: Any) -> list[str]:
        # The instance's address is public (it is in every status URL); the token is not.
        return [credentials["access_token"]]

    def posts_on_platform(self, fake: FakeMastodon) -> list[Any]:
        return list(fake.statuses.values())

    def thread_on_platform(self, fake: FakeMastodon) -> list[str]:
        return [status.text for status in fake.thread()]

    def media_on_platform(self, fake: FakeMastodon) -> list[dict[str, Any]]:
        return [{"alt": m.description or "", "size": m.size} for m in fake.attached_media()]

    def inject(self, fake: FakeMastodon, fault: Fault) -> None:
        fake.inject(fault)

    def requests_received(self, fake: FakeMastodon) -> int:
        return len(fake.requests)

    def unreachable_credentials(self, fake: FakeMastodon, base_url: str) -> dict[str, Any]:
        return {"instance_url": base_url, "access_token": TOKEN}

    def rate_limit_headers(self, seconds: int, now: float) -> dict[str, dict[str, str]]:
        return {
            # What Mastodon itself sends (rack-attack): no Retry-After, an ISO 8601 reset.
            "X-RateLimit-Reset ISO 8601": {
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": iso_in(seconds, now),
            },
            # A proxy in front of the instance may answer the 429 itself.
            "Retry-After seconds": {"Retry-After": str(seconds)},
        }


# -- what is particular to Mastodon -------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with FakeMastodon() as fake:
        yield fake
    assert not fake.violations, fake.violations


def make_adapter(
    fake: FakeMastodon, store: MemoryStore | None = None, **settings: Any
) -> MastodonAdapter:
    return MastodonAdapter(
        MastodonCredentials.model_validate({"instance_url": fake.base_url, "access_token": TOKEN}),
        MastodonSettings.model_validate(settings),
        store,
    )


@pytest.fixture
def adapter(fake: FakeMastodon) -> MastodonAdapter:
    return make_adapter(fake)


def status_requests(fake: FakeMastodon) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path == "/api/v1/statuses"]


def thread_post() -> Any:
    return sample_post(title="", body=THREAD_BODY)


def test_mastodon_counting() -> None:
    long_link = "https://example.org/" + "a" * 80
    assert status_length(f"see {long_link}") == 4 + 23
    assert status_length("see https://t.co/x") == 4 + 23  # a short link counts 23 too
    assert status_length(f"see {long_link}", url_length=30) == 4 + 30
    # Not a link to Mastodon: no domain name.
    assert status_length("see http://localhost:3000/x") == len("see http://localhost:3000/x")
    # A remote mention counts as its username only; an email address is no mention.
    assert status_length("hi @herald@social.example.org") == len("hi @herald")
    assert status_length("me@example.org") == len("me@example.org")
    # Grapheme clusters: a family emoji or a flag is one character.
    assert status_length("👩‍💻🇵🇱") == 2
    # Mastodon's link pattern stops at a non-ASCII character in the query: the rest counts.
    assert status_length(THREAD_LINKS[0]) == 23 + 1
    # The fake counts the same way, by its own code.
    for text in (THREAD_BODY, f"a {long_link}. b", "hi @herald@social.example.org"):
        assert status_length(text) == mastodon_length(text), text


def test_long_post_is_a_thread_that_fits_by_mastodons_counting(
    adapter: MastodonAdapter, fake: FakeMastodon
) -> None:
    adapter.verify()
    rendition = adapter.render(thread_post())
    assert len(rendition.parts) > 1
    for part in rendition.parts:
        assert mastodon_length(part) <= fake.max_characters
    # Links count 23, so a part holding one is longer in plain characters than it counts.
    with_link = [p for p in rendition.parts if THREAD_LINKS[1] in p]
    assert with_link
    assert len(with_link[0]) > mastodon_length(with_link[0])
    receipt = adapter.publish(rendition, new_key())
    thread = fake.thread()
    assert [s.text for s in thread] == list(rendition.parts)
    assert thread[0].in_reply_to_id is None
    for previous, status in itertools.pairwise(thread):
        assert status.in_reply_to_id == previous.id
    posted = "\n".join(s.text for s in thread)
    for link in THREAD_LINKS:
        assert link in posted
    assert "Zażółć gęślą jaźń" in posted
    assert "👩‍💻" in posted
    assert receipt.external_id == thread[0].id
    assert receipt.data["status_ids"] == [s.id for s in thread]
    assert receipt.url == fake.status_url(thread[0])


def test_smaller_instance_limit_read_by_verify_changes_the_split() -> None:
    with FakeMastodon(max_characters=300) as fake:
        store = MemoryStore()
        adapter = make_adapter(fake, store)
        assert adapter.limits.max_length == 500  # Mastodon's default before verify
        before = adapter.render(thread_post())
        identity = adapter.verify()
        assert identity.detail["max_characters"] == 300
        assert adapter.limits.max_length == 300
        requests = len(fake.requests)
        after = adapter.render(thread_post())
        assert len(fake.requests) == requests, "render must stay local"
        assert len(after.parts) > len(before.parts)
        assert all(mastodon_length(part) <= 300 for part in after.parts)
        assert any(mastodon_length(part) > 300 for part in before.parts)
        # The configuration is cached in the channel's session: a new adapter uses it.
        again = make_adapter(fake, store)
        assert again.limits.max_length == 300
        assert again.render(thread_post()).parts == after.parts
        # The instance refuses the parts split for 500, in its own words.
        with pytest.raises(PermanentError) as info:
            adapter.publish(before, new_key())
        assert "Text character limit of 300 exceeded" in info.value.message
        adapter.publish(after, new_key())
        assert [s.text for s in fake.thread()] == list(after.parts)
        assert not fake.violations


def test_cached_configuration_of_another_instance_is_ignored(fake: FakeMastodon) -> None:
    store = MemoryStore()
    store.save_session(
        {
            "instance": "https://elsewhere.example",
            "configuration": {"statuses": {"max_characters": 5000}},
        }
    )
    assert make_adapter(fake, store).limits.max_length == 500


def test_each_part_carries_its_own_idempotency_key(
    adapter: MastodonAdapter, fake: FakeMastodon
) -> None:
    rendition = adapter.render(thread_post())
    key = new_key()
    adapter.publish(rendition, key)
    keys = [r.headers["idempotency-key"] for r in status_requests(fake)]
    assert keys == [key] + [f"{key}-{i}" for i in range(1, len(rendition.parts))]
    # A resend that lost its progress (another worker, say) makes no new status: the
    # instance answers each part's earlier status.
    count = len(fake.statuses)
    other = make_adapter(fake, MemoryStore())
    receipt = other.publish(rendition, key)
    assert len(fake.statuses) == count
    assert receipt.data["status_ids"] == [s.id for s in fake.thread()]


def test_429_with_iso_reset_gives_retry_after(adapter: MastodonAdapter, fake: FakeMastodon) -> None:
    now = time.time()
    fake.inject(
        Fault(
            429,
            "Too many requests",
            {
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": iso_in(120, now),
            },
        )
    )
    with pytest.raises(RetryableError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert info.value.retry_after is not None
    assert 117 <= info.value.retry_after <= 121
    assert "Too many requests" in info.value.message
    assert fake.statuses == {}


def test_thread_stops_when_the_rate_limit_is_used_up_and_carries_on(
    adapter: MastodonAdapter, fake: FakeMastodon
) -> None:
    rendition = adapter.render(thread_post())
    key = new_key()
    fake.rate_limit_remaining = 2  # room for two requests in this window
    with pytest.raises(RetryableError) as info:
        adapter.publish(rendition, key)
    assert len(fake.statuses) == 2
    assert len(status_requests(fake)) == 2, "it stops before the instance says 429"
    assert info.value.retry_after is not None
    assert 200 < info.value.retry_after <= 300  # the fake's window resets in 5 minutes
    fake.rate_limit_remaining = None  # the window reset
    adapter.publish(rendition, key)
    assert [s.text for s in fake.thread()] == list(rendition.parts)
    assert len(fake.statuses) == len(rendition.parts)


def test_invalid_token_is_an_auth_error_in_mastodons_words(fake: FakeMastodon) -> None:
    adapter = MastodonAdapter(
        MastodonCredentials.model_validate(
            {"instance_url": fake.base_url, "access_token": "not-a-token-1234567"}
        ),
        MastodonSettings(),
    )
    with pytest.raises(AuthError) as info:
        adapter.verify()
    assert "The access token is invalid" in info.value.message


def test_verify_names_the_account_and_caches_the_configuration(fake: FakeMastodon) -> None:
    store = MemoryStore()
    identity = make_adapter(fake, store).verify()
    assert identity.name == "@herald@127.0.0.1"
    session = store.session()
    assert session is not None
    assert session["configuration"]["statuses"]["max_characters"] == 500
    assert session["configuration"]["statuses"]["characters_reserved_per_url"] == 23
    assert fake.statuses == {}


def test_settings_go_with_every_status_and_the_warning_counts(fake: FakeMastodon) -> None:
    warning = "Long thread about software delivery, " * 4
    adapter = make_adapter(fake, visibility="unlisted", spoiler_text=warning, language="pl")
    rendition = adapter.render(thread_post())
    for part in rendition.parts:
        assert mastodon_length(part, warning) <= fake.max_characters
    adapter.publish(rendition, new_key())
    thread = fake.thread()
    assert len(thread) == len(rendition.parts)
    assert {(s.visibility, s.spoiler_text, s.language) for s in thread} == {
        ("unlisted", warning, "pl")
    }


def test_text_has_title_body_link_and_hashtags(adapter: MastodonAdapter) -> None:
    (text,) = adapter.render(sample_post()).parts
    blocks = text.split("\n\n")
    assert blocks[0] == "Café au lait — ünïcödé 日本語"
    assert blocks[1] == "Heading"
    assert "Some Markdown with a link (https://example.org/a?b=c&d=e)." in text
    assert "*" not in text
    assert blocks[-2] == "https://blog.example.org/2024/cafe-au-lait"
    assert blocks[-1] == "#python #ReleaseNotes #日本"
    plain = make_adapter_like(adapter, include_title=False, include_link=False, hashtags=False)
    (bare,) = plain.render(sample_post()).parts
    assert bare.startswith("Heading")
    assert "#python" not in bare
    assert "cafe-au-lait" not in bare


def make_adapter_like(adapter: MastodonAdapter, **settings: Any) -> MastodonAdapter:
    return MastodonAdapter(adapter.credentials, MastodonSettings.model_validate(settings))


def test_image_still_processing_is_polled_until_ready(
    fake: FakeMastodon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.processing_polls = 2
    adapter = make_adapter(fake)
    waits: list[float] = []
    monkeypatch.setattr(adapter, "_pause", waits.append)  # no real waiting
    image = sample_image(tmp_path)
    adapter.publish(adapter.render(sample_post(media=(image,))), new_key())
    polls = [r for r in fake.requests if r.method == "GET" and r.path.startswith("/api/v1/media/")]
    assert len(polls) == 3  # 206, 206, then 200 with a URL
    assert waits == [0.1, 0.2, 0.4]
    (status,) = fake.statuses.values()
    (media,) = fake.attached_media()
    assert status.media_ids == [media.id]
    assert media.description == image.alt_text
    upload = next(r for r in fake.requests if r.path == "/api/v2/media")
    assert upload.headers["content-type"].startswith("multipart/form-data")


def test_image_that_never_finishes_processing_gives_up(
    fake: FakeMastodon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.processing_polls = 10**6
    adapter = make_adapter(fake, media_timeout=5)
    waits: list[float] = []
    monkeypatch.setattr(adapter, "_pause", waits.append)  # no real waiting
    with pytest.raises(RetryableError, match="still processing"):
        adapter.publish(adapter.render(sample_post(media=(sample_image(tmp_path),))), new_key())
    assert 5 <= sum(waits) < 5 + adapter.poll_interval_cap
    assert fake.statuses == {}


def test_at_most_four_images_go_with_the_first_status(
    adapter: MastodonAdapter, fake: FakeMastodon, tmp_path: Path
) -> None:
    images = tuple(sample_image(tmp_path, alt_text=f"image {i}") for i in range(6))
    rendition = adapter.render(sample_post(body=THREAD_BODY, media=images))
    assert rendition.media == images[:4]
    adapter.publish(rendition, new_key())
    thread = fake.thread()
    assert len(thread) > 1
    assert len(thread[0].media_ids) == 4
    assert all(s.media_ids == [] for s in thread[1:])
    assert [m.description for m in fake.attached_media()] == [f"image {i}" for i in range(4)]


def test_instance_refuses_a_fifth_image(
    adapter: MastodonAdapter, fake: FakeMastodon, tmp_path: Path
) -> None:
    images = tuple(sample_image(tmp_path) for _ in range(5))
    rendition = replace(adapter.render(sample_post()), media=images)
    with pytest.raises(PermanentError) as info:
        adapter.publish(rendition, new_key())
    assert "Cannot attach more than 4 files" in info.value.message
    assert fake.statuses == {}


def test_unsupported_or_oversized_images_are_left_out(
    adapter: MastodonAdapter, tmp_path: Path
) -> None:
    image = sample_image(tmp_path)
    assert adapter.limits.max_media_bytes is not None
    huge = replace(image, id=uuid.uuid4(), size=adapter.limits.max_media_bytes + 1)
    tiff = replace(image, id=uuid.uuid4(), content_type="image/tiff")
    rendition = adapter.render(sample_post(media=(huge, tiff, image)))
    assert rendition.media == (image,)


def test_uploaded_images_are_not_uploaded_again_on_retry(
    adapter: MastodonAdapter, fake: FakeMastodon, tmp_path: Path
) -> None:
    rendition = adapter.render(sample_post(media=(sample_image(tmp_path),)))
    key = new_key()
    fake.inject(Fault())  # the upload goes through
    fake.inject(Fault(503, "Remote data could not be fetched"))  # the status does not
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    adapter.publish(rendition, key)
    assert len(fake.media) == 1
    (status,) = fake.statuses.values()
    assert status.media_ids == list(fake.media)


def test_find_existing_knows_only_whole_deliveries(
    adapter: MastodonAdapter, fake: FakeMastodon
) -> None:
    rendition = adapter.render(thread_post())
    key = new_key()
    fake.inject(Fault())
    fake.inject(Fault(503, "try later"))
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    assert adapter.find_existing(rendition, key) is None  # only the first part went out
    receipt = adapter.publish(rendition, key)
    found = adapter.find_existing(rendition, key)
    assert found == receipt


def test_empty_post_is_refused_before_sending(adapter: MastodonAdapter) -> None:
    with pytest.raises(PermanentError):
        adapter.render(sample_post(title="", body="", tags=(), canonical_url=None))


def test_image_only_post(adapter: MastodonAdapter, fake: FakeMastodon, tmp_path: Path) -> None:
    post = sample_post(title="", body="", tags=(), canonical_url=None)
    rendition = adapter.render(replace(post, media=(sample_image(tmp_path),)))
    assert rendition.parts == ("",)
    adapter.publish(rendition, new_key())
    (status,) = fake.statuses.values()
    assert status.text == ""
    assert len(status.media_ids) == 1


def test_status_body_fits_the_published_schema(
    adapter: MastodonAdapter, fake: FakeMastodon
) -> None:
    # The fake validates every body against mastodon/schema.json; make it say so.
    require_specs()
    bad = Rendition(format="text", parts=("hello",), extra={"status": {"visibility": "friends"}})
    with pytest.raises(PermanentError):
        adapter.publish(bad, new_key())
    assert any("visibility" in v for v in fake.violations)
    fake.violations.clear()
