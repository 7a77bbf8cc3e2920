"""The Bluesky adapter: the contract suite against a local fake PDS, plus what is particular
to Bluesky (one login shared by every delivery, token refresh, grapheme limits, link
facets in UTF-8 bytes, record keys chosen up front, and the Lexicon validator)."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import ValidationError

from herald.adapters.base import (
    AdapterError,
    AmbiguousError,
    AuthError,
    MediaItem,
    MemoryStore,
    PermanentError,
    RetryableError,
)
from herald.adapters.bluesky import (
    MAX_IMAGE_BYTES,
    BlueskyAdapter,
    BlueskyCredentials,
    link_facets,
    next_tid,
)
from herald.adapters.text import graphemes
from tests.adapters.contract import (
    HTTP,
    MEDIA,
    PNG_1PX,
    THREAD,
    THREAD_BODY,
    THREAD_LINKS,
    AdapterContract,
    Fault,
    exception_texts,
    new_key,
    sample_image,
    sample_post,
)
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.lexicon import lexicon
from tests.fakes.specs import needs_specs

CREATE_SESSION = "com.atproto.server.createSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"
CREATE_RECORD = "com.atproto.repo.createRecord"
GET_RECORD = "com.atproto.repo.getRecord"


class TestBlueskyContract(AdapterContract):
    platform = "bluesky"
    capabilities = frozenset({HTTP, THREAD, MEDIA})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeBluesky]:
        fake = FakeBluesky()
        with fake:
            yield fake

    def credentials(self, fake: FakeBluesky) -> dict[str, Any]:
        return fake.credentials()

    def bad_credentials(self, fake: FakeBluesky) -> dict[str, dict[str, Any]]:
        good = fake.credentials()
        return {
            "wrong app password": good | {"app_password": "wxyz-2345-wxyz-2345"},
            "unknown handle": good | {"identifier": "nobody-here.bsky.social"},
        }

    def secret_values(self, credentials: Any) -> list[str]:
        # The handle is public (verify shows it); the app password is the secret.
        return [credentials["app_password"]]

    def posts_on_platform(self, fake: FakeBluesky) -> list[Any]:
        return fake.posts()

    def thread_on_platform(self, fake: FakeBluesky) -> list[str]:
        return [entry["value"]["text"] for entry in fake.thread()]

    def media_on_platform(self, fake: FakeBluesky) -> list[dict[str, Any]]:
        held = []
        for post in fake.posts():
            for image in post.get("embed", {}).get("images", []):
                blob = fake.blobs[image["image"]["ref"]["$link"]]
                held.append({"alt": image["alt"], "size": blob["size"]})
        return held

    def inject(self, fake: FakeBluesky, fault: Fault) -> None:
        fake.inject(fault)

    def requests_received(self, fake: FakeBluesky) -> int:
        # The login (createSession) is not part of delivering a post: it happens once per
        # channel, not once per post, and takes no scripted faults (it has its own rate
        # limit). What the contract counts is the requests that carry the post.
        return len(fake.repo_requests())

    def unreachable_credentials(self, fake: FakeBluesky, base_url: str) -> dict[str, Any]:
        return fake.credentials() | {"service": base_url}

    def rate_limit_headers(self, seconds: int, now: float) -> dict[str, dict[str, str]]:
        # What Bluesky sends with a 429: no Retry-After, a reset in epoch seconds.
        return {
            "RateLimit-Reset epoch": {
                "RateLimit-Limit": "5000",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(int(now) + seconds),
                "RateLimit-Policy": "5000;w=3600",
            }
        }


# -- what is particular to Bluesky ------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeBluesky]:
    fake = FakeBluesky()
    with fake:
        yield fake
        assert fake.violations == [], "requests broke Bluesky's lexicons"


def make(fake: FakeBluesky, store: MemoryStore | None = None, **settings: Any) -> BlueskyAdapter:
    return BlueskyAdapter(
        BlueskyCredentials.model_validate(fake.credentials()),
        BlueskyAdapter.settings_model.model_validate(settings),
        store,
    )


def paths(requests: list[Any]) -> list[str]:
    return [r.path.removeprefix("/xrpc/") for r in requests]


def test_fifty_deliveries_log_in_once(fake: FakeBluesky) -> None:
    # The engine builds one adapter per delivery, all sharing the channel's store.
    store = MemoryStore(fake.credentials())
    for number in range(50):
        adapter = make(fake, store)
        adapter.publish(adapter.render(sample_post(title=f"Post {number}")), new_key())
    assert fake.logins == 1
    assert len(fake.calls(CREATE_SESSION)) == 1
    assert len(fake.posts()) == 50


class EveryoneReadsNoSession(MemoryStore):
    """A channel's store as a burst of first deliveries sees it: each reads "no login
    yet" (the plain read) before any of them has logged in."""

    def __init__(self, credentials: dict[str, Any], deliveries: int) -> None:
        super().__init__(credentials)
        self.all_read = threading.Barrier(deliveries, timeout=10)

    def session(self, *, fresh: bool = False) -> dict[str, Any] | None:
        found = super().session(fresh=fresh)
        if not fresh and found is None:
            self.all_read.wait()
        return found


def test_a_burst_of_first_deliveries_logs_in_once(fake: FakeBluesky) -> None:
    store = EveryoneReadsNoSession(fake.credentials(), deliveries=8)

    def deliver(number: int) -> None:
        adapter = make(fake, store)
        adapter.publish(adapter.render(sample_post(title=f"Post {number}")), new_key())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(deliver, range(8)))
    assert len(fake.posts()) == 8
    # One login; the others waited for it and took the session it stored.
    assert fake.logins == 1


def test_expired_access_token_is_refreshed_not_a_new_login(fake: FakeBluesky) -> None:
    store = MemoryStore(fake.credentials())
    first = make(fake, store)
    first.publish(first.render(sample_post()), new_key())
    fake.advance(3 * 3600)  # the access token (2 hours) has expired on the PDS
    seen = len(fake.requests)
    second = make(fake, store)
    second.publish(second.render(sample_post()), new_key())
    assert paths(fake.requests[seen:]) == [CREATE_RECORD, REFRESH_SESSION, CREATE_RECORD]
    assert (fake.logins, fake.refreshes) == (1, 1)
    assert len(fake.posts()) == 2
    # The renewed session is what the next delivery uses.
    seen = len(fake.requests)
    third = make(fake, store)
    third.publish(third.render(sample_post()), new_key())
    assert paths(fake.requests[seen:]) == [CREATE_RECORD]


def test_token_past_its_exp_is_refreshed_before_sending(fake: FakeBluesky) -> None:
    store = MemoryStore(fake.credentials())
    adapter = make(fake, store)
    adapter.verify()
    session = store.session()
    assert session is not None
    store.save_session(session | {"accessJwt": fake.issue_access(ttl=-30)})
    seen = len(fake.requests)
    later = make(fake, store)
    later.publish(later.render(sample_post()), new_key())
    assert paths(fake.requests[seen:]) == [REFRESH_SESSION, CREATE_RECORD]
    assert (fake.logins, fake.refreshes) == (1, 1)


def test_refused_refresh_falls_back_to_one_login(fake: FakeBluesky) -> None:
    store = MemoryStore(fake.credentials())
    adapter = make(fake, store)
    adapter.publish(adapter.render(sample_post()), new_key())
    fake.advance(91 * 86_400)  # the refresh token (90 days) has expired as well
    seen = len(fake.requests)
    later = make(fake, store)
    later.publish(later.render(sample_post()), new_key())
    assert paths(fake.requests[seen:]) == [
        CREATE_RECORD,
        REFRESH_SESSION,
        CREATE_SESSION,
        CREATE_RECORD,
    ]
    assert fake.logins == 2
    assert len(fake.posts()) == 2


def test_revoked_app_password_is_an_auth_error_and_drops_the_session(
    fake: FakeBluesky,
) -> None:
    store = MemoryStore(fake.credentials())
    adapter = make(fake, store)
    adapter.publish(adapter.render(sample_post()), new_key())
    fake.change_app_password("mnop-2345-qrst-6789")
    with pytest.raises(AuthError):
        adapter.publish(adapter.render(sample_post()), new_key())
    assert store.session() is None
    # Reconnected with the new app password: one new login, and posting works again.
    renewed = make(fake, store)
    renewed.publish(renewed.render(sample_post()), new_key())
    assert fake.logins == 2
    assert len(fake.posts()) == 2


def test_verify_uses_the_cached_session_and_logs_in_again_only_when_revoked(
    fake: FakeBluesky,
) -> None:
    store = MemoryStore(fake.credentials())
    identity = make(fake, store).verify()
    assert identity.name == f"@{fake.handle}"
    assert identity.detail["did"] == fake.did
    make(fake, store).verify()
    assert fake.logins == 1
    fake.revoke_sessions()  # the cached session no longer works; the credentials still do
    make(fake, store).verify()
    assert fake.logins == 2
    assert fake.posts() == []


def test_session_rate_limit_is_a_429_like_bluesky(fake: FakeBluesky) -> None:
    # Each adapter with its own empty store logs in: 30 logins are allowed per 5 minutes.
    for _ in range(30):
        make(fake).verify()
    before = time.time()
    with pytest.raises(RetryableError) as info:
        make(fake).verify()
    assert "RateLimitExceeded" in info.value.message
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 300 + (time.time() - before) + 1
    # The fake answers as Bluesky does: the XRPC error shape and the RateLimit-* headers.
    answer = httpx.post(
        f"{fake.base_url}/xrpc/{CREATE_SESSION}",
        json={"identifier": fake.handle, "password": fake.app_password},
    )
    assert answer.status_code == 429
    assert answer.json() == {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}
    assert answer.headers["ratelimit-limit"] == "30"
    assert answer.headers["ratelimit-remaining"] == "0"
    assert answer.headers["ratelimit-policy"] == "30;w=300"
    assert int(answer.headers["ratelimit-reset"]) > time.time()
    fake.advance(301)
    make(fake).verify()
    assert fake.logins == 31


def test_long_post_is_a_thread_with_byte_exact_link_facets(fake: FakeBluesky) -> None:
    adapter = make(fake)
    rendition = adapter.render(sample_post(title="", body=THREAD_BODY, canonical_url=None))
    assert len(THREAD_BODY) > 1000
    assert len(rendition.parts) > 1
    for part in rendition.parts:
        assert graphemes(part) <= 300
        assert len(part.encode()) <= 3000
    adapter.publish(rendition, new_key())
    thread = fake.thread()
    assert [entry["value"]["text"] for entry in thread] == list(rendition.parts)
    linked: list[str] = []
    for entry in thread:
        text = entry["value"]["text"].encode()
        for facet in entry["value"].get("facets", []):
            (feature,) = facet["features"]
            assert feature["$type"] == "app.bsky.richtext.facet#link"
            start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
            assert text[start:end].decode() == feature["uri"]
            linked.append(feature["uri"])
    assert sorted(set(linked)) == sorted(THREAD_LINKS)
    for previous, entry in itertools.pairwise(thread):
        reply = entry["value"]["reply"]
        assert reply["root"] == {"uri": thread[0]["uri"], "cid": thread[0]["cid"]}
        assert reply["parent"] == {"uri": previous["uri"], "cid": previous["cid"]}


def test_link_facets_count_utf8_bytes() -> None:
    text = "Zażółć 👩‍💻 https://example.org/ü?q=1. Then http://x.example/a"
    facets = link_facets(text)
    assert [f["features"][0]["uri"] for f in facets] == [
        "https://example.org/ü?q=1",
        "http://x.example/a",
    ]
    first = facets[0]["index"]
    # "Zażółć " is 7 characters but 11 bytes; the emoji is 11 more and a space.
    assert first["byteStart"] == len("Zażółć 👩‍💻 ".encode()) == 23
    assert first["byteEnd"] - first["byteStart"] == len("https://example.org/ü?q=1".encode())


def test_text_heavy_in_bytes_keeps_under_3000_bytes(fake: FakeBluesky) -> None:
    adapter = make(fake)
    family = "👨‍👩‍👧‍👦"  # one grapheme, 25 bytes
    rendition = adapter.render(sample_post(title="", body=" ".join([family] * 400)))
    assert len(rendition.parts) > 1
    for part in rendition.parts:
        assert graphemes(part) <= 300
        assert len(part.encode()) <= 3000
        # max_length is optional in Limits; Bluesky sets it (300 graphemes).
        assert adapter.measure(part) <= adapter.limits.max_length  # type: ignore[operator]
    adapter.publish(rendition, new_key())
    assert len(fake.posts()) == len(rendition.parts)


def test_record_keys_are_tids_chosen_before_sending(fake: FakeBluesky) -> None:
    store = MemoryStore(fake.credentials())
    adapter = make(fake, store)
    key = new_key()
    rendition = adapter.render(sample_post(title="", body=THREAD_BODY))
    adapter.publish(rendition, key)
    progress = store.progress(key)
    assert progress is not None
    sent = [r.json()["rkey"] for r in fake.calls(CREATE_RECORD)]
    assert sent == progress["rkeys"] == sorted(sent)
    assert len(set(sent)) == len(rendition.parts)
    tids = [next_tid() for _ in range(100)]
    assert tids == sorted(tids)
    assert len(set(tids)) == 100
    assert all(re.fullmatch(r"[234567a-j][234567a-z]{12}", t) for t in tids)


def test_resend_after_a_lost_answer_finds_the_part_and_carries_on(fake: FakeBluesky) -> None:
    store = MemoryStore(fake.credentials())
    impatient = make(fake, store, read_timeout=0.3)
    rendition = impatient.render(sample_post(title="", body=THREAD_BODY))
    key = new_key()
    fake.inject(Fault())
    fake.inject(Fault(hang=True))  # the second part is stored, its answer never comes
    with pytest.raises(AmbiguousError):
        impatient.publish(rendition, key)
    seen = len(fake.requests)
    receipt = make(fake, store).publish(rendition, key)
    assert paths(fake.requests[seen:])[:2] == [GET_RECORD, CREATE_RECORD]
    thread = fake.thread()
    assert [entry["value"]["text"] for entry in thread] == list(rendition.parts)
    assert len(fake.posts()) == len(rendition.parts)
    assert receipt.external_id == thread[0]["uri"]
    assert receipt.data["parts"] == [entry["uri"] for entry in thread]


def test_the_pds_refuses_a_second_record_under_the_same_key(fake: FakeBluesky) -> None:
    # If the lookup misses a record that did arrive, the resend reuses its key, and the
    # PDS cannot hold two records under one key: still exactly one post.
    store = MemoryStore(fake.credentials())
    adapter = make(fake, store)
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.inject(Fault(drop=True))
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    fake.inject(Fault(400, "Could not locate record: (a lagging replica)"))
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    receipt = adapter.publish(rendition, key)
    assert len(fake.posts()) == 1
    assert [r.json()["rkey"] for r in fake.calls(CREATE_RECORD)] == [
        receipt.external_id.rsplit("/", 1)[-1]
    ] * 2


def test_find_existing_after_a_lost_answer(fake: FakeBluesky) -> None:
    store = MemoryStore(fake.credentials())
    adapter = make(fake, store)
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.inject(Fault(drop=True))
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    found = make(fake, store).find_existing(rendition, key)
    assert found is not None
    (post,) = fake.posts()
    assert found.external_id.startswith(f"at://{fake.did}/app.bsky.feed.post/")
    assert found.url == f"https://bsky.app/profile/{fake.did}/post/{found.external_id[-13:]}"
    assert post["text"] == rendition.parts[0]
    # Recorded: a later publish with the key sends nothing.
    seen = len(fake.requests)
    assert adapter.publish(rendition, key) == found
    assert len(fake.requests) == seen


def test_find_existing_leaves_an_unfinished_thread_to_publish(fake: FakeBluesky) -> None:
    store = MemoryStore(fake.credentials())
    adapter = make(fake, store)
    rendition = adapter.render(sample_post(title="", body=THREAD_BODY))
    key = new_key()
    fake.inject(Fault())
    fake.inject(Fault(503, "try later"))
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    assert adapter.find_existing(rendition, key) is None
    adapter.publish(rendition, key)
    assert [entry["value"]["text"] for entry in fake.thread()] == list(rendition.parts)


def test_images_are_uploaded_with_alt_text_and_aspect_ratio(
    fake: FakeBluesky, tmp_path: Path
) -> None:
    adapter = make(fake)
    images = [sample_image(tmp_path, alt_text=f"Pixel {n}") for n in range(5)]
    big = tmp_path / "big.png"
    big.write_bytes(PNG_1PX + b"\0" * MAX_IMAGE_BYTES)
    too_big = MediaItem(
        id=images[0].id, path=big, content_type="image/png", size=big.stat().st_size,
        filename="big.png", alt_text="too big",
    )  # fmt: skip
    rendition = adapter.render(sample_post(media=(too_big, *images)))
    assert rendition.media == tuple(images[:4])
    assert rendition.extra["media_left_out"] == ["big.png", images[4].filename]
    adapter.publish(rendition, new_key())
    (post,) = fake.posts()
    embed = post["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    assert [i["alt"] for i in embed["images"]] == ["Pixel 0", "Pixel 1", "Pixel 2", "Pixel 3"]
    assert all(i["aspectRatio"] == {"width": 1, "height": 1} for i in embed["images"])
    assert all(i["image"]["mimeType"] == "image/png" for i in embed["images"])
    uploads = fake.calls("com.atproto.repo.uploadBlob")
    assert [u.body for u in uploads] == [PNG_1PX] * 4
    assert all(u.headers["content-type"] == "image/png" for u in uploads)


def test_record_shape_and_settings(fake: FakeBluesky) -> None:
    adapter = make(fake, langs=["en", "pl"])
    post = sample_post()
    rendition = adapter.render(post)
    assert rendition.parts[0].startswith(post.title)
    assert post.canonical_url is not None
    assert rendition.parts[0].endswith(post.canonical_url)
    adapter.publish(rendition, new_key())
    (request,) = fake.calls(CREATE_RECORD)
    body = request.json()
    assert body["repo"] == fake.did
    assert body["collection"] == "app.bsky.feed.post"
    record = body["record"]
    assert record["$type"] == "app.bsky.feed.post"
    assert record["langs"] == ["en", "pl"]
    assert record["createdAt"].endswith("Z")
    assert request.headers["authorization"].startswith("Bearer ")
    unnumbered = make(fake, thread_numbering=False, link_to_original=False)
    parts = unnumbered.render(sample_post(title="", body=THREAD_BODY)).parts
    assert not any(part.endswith(f"1/{len(parts)}") for part in parts)
    assert "blog.example.org" not in "".join(parts)


def test_only_app_passwords_are_accepted() -> None:
    good = {"identifier": "@alice.bsky.social", "app_password": "ABCD-2345-efgh-6789"}
    credentials = BlueskyCredentials.model_validate(good)
    assert credentials.identifier == "alice.bsky.social"
    assert credentials.app_password == "abcd-2345-efgh-6789"
    assert str(credentials.service) == "https://bsky.social/"
    account_password = "my real password 2024!"
    with pytest.raises(ValidationError) as info:
        BlueskyCredentials.model_validate(good | {"app_password": account_password})
    assert "App passwords" in str(info.value)


def test_tokens_never_appear_in_errors(fake: FakeBluesky) -> None:
    store = MemoryStore(fake.credentials())
    adapter = make(fake, store)
    adapter.verify()
    session = store.session()
    assert session is not None
    for status in (400, 401, 429, 503):
        fake.inject(Fault(status, "no"))
        with pytest.raises(AdapterError) as info:
            adapter.publish(adapter.render(sample_post()), new_key())
        for text in exception_texts(info.value):
            assert session["accessJwt"] not in text
            assert session["refreshJwt"] not in text
            assert fake.app_password not in text


def test_validation_error_is_permanent_with_the_pds_message(fake: FakeBluesky) -> None:
    adapter = make(fake)
    fake.inject(Fault(400, "Invalid app.bsky.feed.post record: Record/text must not be longer"))
    with pytest.raises(PermanentError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert info.value.message == (
        "bluesky com.atproto.repo.createRecord answered 400 InvalidRequest: "
        "Invalid app.bsky.feed.post record: Record/text must not be longer"
    )


# -- the fake's own checks ----------------------------------------------------------------


def test_fake_refuses_facets_that_miss_the_url(fake: FakeBluesky) -> None:
    session = httpx.post(
        f"{fake.base_url}/xrpc/{CREATE_SESSION}",
        json={"identifier": fake.handle, "password": fake.app_password},
    ).json()
    text = "Café https://example.org/x"
    record = {
        "$type": "app.bsky.feed.post",
        "text": text,
        "createdAt": "2026-11-22T10:00:00.000Z",
        # Character offsets, not byte offsets: off by one because of "é".
        "facets": [
            {
                "index": {"byteStart": 5, "byteEnd": len(text)},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": text[5:]}],
            }
        ],
    }
    answer = httpx.post(
        f"{fake.base_url}/xrpc/{CREATE_RECORD}",
        json={"repo": fake.did, "collection": "app.bsky.feed.post", "record": record},
        headers={"Authorization": f"Bearer {session['accessJwt']}"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "InvalidRequest"
    assert fake.posts() == []
    assert fake.violations
    fake.violations.clear()


# -- the Lexicon validator ----------------------------------------------------------------


def good_post(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "$type": "app.bsky.feed.post",
        "text": "Hello https://example.org",
        "createdAt": "2026-11-22T10:00:00.000Z",
        "facets": [
            {
                "index": {"byteStart": 6, "byteEnd": 25},
                "features": [
                    {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.org"}
                ],
            }
        ],
        "langs": ["en"],
    }
    return record | changes


BLOB = {
    "$type": "blob",
    "ref": {"$link": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"},
    "mimeType": "image/png",
    "size": 68,
}
REF = {
    "uri": "at://did:plc:abc234/app.bsky.feed.post/3lbq2vqq5b22a",
    "cid": "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
}


@needs_specs
def test_lexicon_accepts_a_good_post() -> None:
    images = {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": BLOB}]}
    record = good_post(reply={"root": REF, "parent": REF}, embed=images)
    assert lexicon.record_errors("app.bsky.feed.post", record, rkey="3lbq2vqq5b22a") == []


@needs_specs
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"text": "é" * 301}, "301 graphemes, more than 300"),
        ({"text": "👨‍👩‍👧‍👦" * 121}, "3025 UTF-8 bytes, more than 3000"),
        ({"$type": "app.bsky.feed.like"}, "$type: must be 'app.bsky.feed.post'"),
        ({"createdAt": "2026-11-22 10:00"}, "createdAt: '2026-11-22 10:00' is not a valid"),
        ({"langs": ["en", "pl", "de", "fr"]}, "4 items, more than 3"),
        ({"reply": {"root": REF}}, "record.reply.parent: required"),
        ({"reply": {"root": REF, "parent": {"uri": "https://x.org", "cid": REF["cid"]}}}, "at-uri"),
        ({"embed": {"images": []}}, "record.embed.$type: required in a union"),
        ({"embed": {"$type": "app.bsky.embed.images#main", "images": []}}, "without '#main'"),
        ({"embed": {"$type": "app.bsky.embed.images", "images": [{"image": BLOB}] * 5}}, "alt"),
        (
            {
                "embed": {
                    "$type": "app.bsky.embed.images",
                    "images": [{"alt": "", "image": BLOB}] * 5,
                }
            },
            "5 items, more than 4",
        ),
        (
            {
                "embed": {
                    "$type": "app.bsky.embed.images",
                    "images": [{"alt": "", "image": BLOB | {"size": 2_000_001}}],
                }
            },
            "2000001 bytes, more than 2000000",
        ),
        (
            {
                "embed": {
                    "$type": "app.bsky.embed.images",
                    "images": [{"alt": "", "image": BLOB | {"mimeType": "video/mp4"}}],
                }
            },
            "'video/mp4' is not one of ['image/*']",
        ),
        (
            {"facets": [{"index": {"byteStart": -1, "byteEnd": 3}, "features": []}]},
            "byteStart: -1 is less than 0",
        ),
        (
            {
                "facets": [
                    {
                        "index": {"byteStart": 0, "byteEnd": 3},
                        "features": [{"$type": "app.bsky.richtext.facet#link"}],
                    }
                ]
            },
            "features.0.uri: required",
        ),
        ({"text": None}, "text: may not be null"),
        ({"tags": ["x" * 65]}, "65 graphemes, more than 64"),
    ],
)
def test_lexicon_catches_a_bad_post(change: dict[str, Any], expected: str) -> None:
    errors = lexicon.record_errors("app.bsky.feed.post", good_post(**change), rkey="3lbq2vqq5b22a")
    assert any(expected in error for error in errors), errors


@needs_specs
def test_lexicon_required_fields_record_keys_and_open_unions() -> None:
    record = good_post()
    del record["createdAt"]
    errors = lexicon.record_errors("app.bsky.feed.post", record, rkey="not a tid")
    assert "record.createdAt: required" in errors
    assert any(error.startswith("rkey:") for error in errors)
    # Facet features are an open union: an unknown feature type passes unchecked.
    odd = {"$type": "com.example.facet#sparkle", "anything": 1}
    unknown = good_post(facets=[{"index": {"byteStart": 0, "byteEnd": 1}, "features": [odd]}])
    assert lexicon.record_errors("app.bsky.feed.post", unknown) == []


@needs_specs
def test_lexicon_checks_call_inputs_and_parameters() -> None:
    body = {"repo": "did:plc:abc234", "collection": "app.bsky.feed.post", "record": {}}
    assert lexicon.input_errors("com.atproto.repo.createRecord", body) == []
    assert lexicon.input_errors("com.atproto.repo.createRecord", body | {"record": "text"}) == [
        "input.record: must be an object"
    ]
    assert "input.collection: 'posts' is not a valid nsid" in lexicon.input_errors(
        "com.atproto.repo.createRecord", body | {"collection": "posts"}
    )
    assert lexicon.input_errors("com.atproto.repo.createRecord", body | {"validate": "yes"}) == [
        "input.validate: must be a boolean"
    ]
    assert lexicon.input_errors("com.atproto.server.createSession", {"identifier": "a"}) == [
        "input.password: required"
    ]
    params = {"repo": "did:plc:abc234", "collection": "app.bsky.feed.post", "rkey": "3lbq2vqq5b22a"}
    assert lexicon.params_errors("com.atproto.repo.getRecord", params) == []
    assert lexicon.params_errors("com.atproto.repo.getRecord", {"repo": "did:plc:abc234"}) == [
        "params.collection: required",
        "params.rkey: required",
    ]
    # A string's maxLength counts UTF-8 bytes, not characters; knownValues stay open.
    assert lexicon.errors("com.atproto.label.defs#selfLabel", {"val": "ż" * 64}) == []
    assert lexicon.errors("com.atproto.label.defs#selfLabel", {"val": "ż" * 65}) == [
        "value.val: 130 UTF-8 bytes, more than 128"
    ]
    assert lexicon.errors("com.atproto.label.defs#labelValue", "made-up-label") == []
