"""The X adapter: the contract suite against a local X API v2, plus what is particular to
X (OAuth 2.0 refresh with single-use refresh tokens, weighted length, threads, the two
meanings of 403, lookups after a timeout)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from herald.adapters.base import (
    Adapter,
    AmbiguousError,
    AuthError,
    MediaItem,
    MemoryStore,
    PermanentError,
    RetryableError,
)
from herald.adapters.x import XAdapter, XCredentials, XSettings, weighted_length
from tests.adapters.contract import (
    HTTP,
    MEDIA,
    PNG_1PX,
    THREAD,
    THREAD_BODY,
    THREAD_LINKS,
    AdapterContract,
    Fault,
    new_key,
    sample_image,
    sample_post,
)
from tests.fakes import x as fake_x
from tests.fakes.x import DUPLICATE, FakeX

# The contract posts one thread twice (the first to count its requests); X would refuse
# the second copy as duplicate content, which test_same_text_twice_is_refused covers.
_POSTS_THE_SAME_TEXT_TWICE = {"test_thread_retry_carries_on_where_it_stopped"}


class TestXContract(AdapterContract):
    platform = "x"
    capabilities = frozenset({HTTP, THREAD, MEDIA})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self, request: pytest.FixtureRequest) -> Iterator[FakeX]:
        fake = FakeX()
        fake.reject_duplicates = request.node.originalname not in _POSTS_THE_SAME_TEXT_TWICE
        with fake:
            yield fake

    def credentials(self, fake: FakeX) -> dict[str, Any]:
        return fake.credentials()

    def bad_credentials(self, fake: FakeX) -> dict[str, dict[str, Any]]:
        good = fake.credentials()
        return {
            "revoked grant": good
            | {"access_token": "revoked-access-token-0001", "refresh_token": "revoked-rt-0001"},
            "another app's client id": good
            | {"access_token": "expired-access-token-0002", "client_id": "someone-elses-app"},
        }

    def posts_on_platform(self, fake: FakeX) -> list[Any]:
        return list(fake.posts.values())

    def thread_on_platform(self, fake: FakeX) -> list[str]:
        return fake.thread()

    def media_on_platform(self, fake: FakeX) -> list[dict[str, Any]]:
        return [{"alt": m["alt"], "size": m["size"]} for m in fake.attached_media()]

    def inject(self, fake: FakeX, fault: Fault) -> None:
        if fault.status == 401:
            # A lone 401 is healed by a refresh (test_a_lone_401_is_healed_by_a_refresh);
            # one that sticks means the user removed the app, refresh token and all.
            fake.revoke()
        else:
            fake.inject(fault)

    def requests_received(self, fake: FakeX) -> int:
        return len(fake.requests)

    def unreachable_credentials(self, fake: FakeX, base_url: str) -> dict[str, Any]:
        return fake.credentials() | {"api_base": base_url}

    def rate_limit_headers(self, seconds: int, now: float) -> dict[str, dict[str, str]]:
        return {
            "15-minute window spent": {
                "x-rate-limit-limit": "100",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(int(now) + seconds),
            },
            "24-hour user cap spent, window not": {
                "x-rate-limit-limit": "100",
                "x-rate-limit-remaining": "57",
                "x-rate-limit-reset": str(int(now) + 5),
                "x-user-limit-24hour-limit": "17",
                "x-user-limit-24hour-remaining": "0",
                "x-user-limit-24hour-reset": str(int(now) + seconds),
            },
        }

    def test_different_keys_post_twice(self, adapter: Adapter[Any, Any], fake: FakeX) -> None:
        # X refuses the same text twice (test_same_text_twice_is_refused), so the two
        # publications carry different texts; the keys must still not be conflated.
        first = adapter.publish(adapter.render(sample_post(body="First note.")), new_key())
        second = adapter.publish(adapter.render(sample_post(body="Second note.")), new_key())
        assert first.external_id != second.external_id
        assert len(self.posts_on_platform(fake)) == 2


# -- what is particular to X ------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeX]:
    fake = FakeX()
    with fake:
        yield fake


def make(
    credentials: dict[str, Any], store: MemoryStore | None = None, **settings: Any
) -> XAdapter:
    model = XCredentials.model_validate(credentials)
    if store is None:
        store = MemoryStore(model.model_dump(mode="json"))
    return XAdapter(model, XSettings.model_validate(settings), store)


def expired(fake: FakeX) -> dict[str, Any]:
    """The fake's credentials, with the access token past its time on both sides."""
    fake.expire_access_tokens()
    return fake.credentials() | {"expires_at": "2020-01-01T00:00:00Z"}


def refresh_at_fake(fake: FakeX, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return httpx.post(f"{fake.base_url}/2/oauth2/token", data=form | {"client_id": fake.client_id})


def creates(fake: FakeX) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path == "/2/tweets"]


def test_the_fakes_post_limit_is_the_users_not_the_tokens(fake: FakeX) -> None:
    # X counts POST /2/tweets per user (100 per 15 min): a refreshed token is the same
    # user, so it gets no fresh 100, as a fake keyed by token would give.
    fake.clock = lambda: 1_000_000.0  # frozen: nothing refills meanwhile
    old = fake.access_token

    def post(token: str, n: int) -> int:
        answer = httpx.post(
            f"{fake.base_url}/2/tweets",
            json={"text": f"post {n}"},
            headers={"Authorization": f"Bearer {token}"},
        )
        return answer.status_code

    assert [post(old, n) for n in range(100)] == [201] * 100
    assert refresh_at_fake(fake, fake.refresh_token).status_code == 200
    assert post(fake.access_token, 100) == 429
    assert post(old, 101) == 429  # the old token lives out its time, on the same budget
    assert fake.rate_limited_by == {"posts": 2}


# OAuth 2.0 refresh ------------------------------------------------------------------------


@pytest.mark.parametrize("known", [True, False], ids=["expires_at says so", "X answers 401"])
def test_expired_token_is_refreshed_once_and_the_new_pair_stored(fake: FakeX, known: bool) -> None:
    credentials = expired(fake) if known else fake.credentials() | {"expires_at": None}
    if not known:
        fake.expire_access_tokens()
    old_refresh = credentials["refresh_token"]
    store = MemoryStore(XCredentials.model_validate(credentials).model_dump(mode="json"))
    adapter = make(credentials, store)

    receipt = adapter.publish(adapter.render(sample_post()), new_key())

    assert fake.refreshes == 1
    assert [p["id"] for p in fake.posts.values()] == [receipt.external_id]
    # The new pair is what the store now holds, and it is X's current one.
    assert store.credentials["refresh_token"] == fake.refresh_token != old_refresh
    assert store.credentials["access_token"] == fake.access_token
    assert datetime.fromisoformat(store.credentials["expires_at"]) > datetime.now(UTC)
    # Known expired: refreshed before the call, so X saw one create and no 401.
    assert len(creates(fake)) == (1 if known else 2)
    # Refresh tokens are single-use: the old one no longer works at X.
    spent = refresh_at_fake(fake, old_refresh)
    assert spent.status_code == 400
    assert spent.json()["error"] == "invalid_request"


def test_refresh_x_refuses_is_an_auth_error_and_changes_nothing(fake: FakeX) -> None:
    credentials = expired(fake)
    fake.revoke()
    store = MemoryStore(XCredentials.model_validate(credentials).model_dump(mode="json"))
    before = dict(store.credentials)
    adapter = make(credentials, store)
    with pytest.raises(AuthError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert "Value passed for the token was invalid." in info.value.message
    assert "reconnect" in info.value.message
    assert credentials["refresh_token"] not in str(info.value)
    assert store.credentials == before
    assert fake.posts == {}
    assert creates(fake) == []


@pytest.mark.parametrize("known", [True, False], ids=["expires_at says so", "X answers 401"])
def test_two_workers_sharing_a_store_refresh_once(fake: FakeX, known: bool) -> None:
    credentials = expired(fake) if known else fake.credentials() | {"expires_at": None}
    if not known:
        fake.expire_access_tokens()
    store = MemoryStore(XCredentials.model_validate(credentials).model_dump(mode="json"))
    workers = [make(credentials, store) for _ in range(2)]
    start = threading.Barrier(2)

    def publish(index: int) -> str:
        adapter = workers[index]
        rendition = adapter.render(sample_post(body=f"Note number {index}."))
        start.wait()
        return adapter.publish(rendition, new_key()).external_id

    with ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(publish, range(2)))

    assert fake.refreshes == 1, "only one refresh may reach X: the second worker uses it"
    assert sorted(ids) == sorted(fake.posts)
    assert store.credentials["refresh_token"] == fake.refresh_token
    for worker in workers:
        assert worker.credentials.access_token == fake.access_token


def test_a_lone_401_is_healed_by_a_refresh(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    fake.fail_next(401, "Unauthorized")
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    assert fake.refreshes == 1
    assert list(fake.posts) == [receipt.external_id]


def test_a_401_after_refreshing_is_an_auth_error(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    fake.fail_next(401, "Unauthorized")  # the create
    fake.inject(Fault())  # the refresh goes through
    fake.fail_next(401, "Unauthorized")  # the create, once more
    with pytest.raises(AuthError):
        adapter.publish(adapter.render(sample_post()), new_key())
    assert fake.refreshes == 1
    assert fake.posts == {}


@pytest.mark.parametrize("confidential", [False, True], ids=["public client", "confidential"])
def test_refresh_authenticates_the_client_as_x_expects(confidential: bool) -> None:
    fake = FakeX(confidential=confidential)
    with fake:
        adapter = make(expired(fake))
        adapter.verify()
        (token_request,) = [r for r in fake.requests if r.path == "/2/oauth2/token"]
        assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert "client_id=" in token_request.body.decode()
        assert token_request.headers.get("authorization", "").startswith("Basic ") is confidential
        assert fake.refreshes == 1


def test_refresh_that_goes_unanswered_is_retryable(fake: FakeX) -> None:
    adapter = make(expired(fake), read_timeout=0.3)
    fake.hang_next()
    with pytest.raises(RetryableError):
        adapter.publish(adapter.render(sample_post()), new_key())
    assert fake.posts == {}


# weighted length ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("hello", 5),
        ("Zażółć gęślą jaźń", 17),  # Latin Extended: weight 1
        ("Привет", 6),  # Cyrillic is below U+10FF
        ("日本語", 6),  # CJK: weight 2
        ("한국어", 6),  # Hangul syllables: weight 2
        ("“quoted” — dash", 15),  # general punctuation U+2010 to U+201F: weight 1
        ("…", 2),  # U+2026 is outside the light ranges
        ("👍", 2),
        ("👍🏽", 2),  # skin tone modifier: still one emoji
        ("👩‍💻", 2),  # ZWJ sequence
        ("🇵🇱", 2),  # flag: two regional indicators
        ("1️⃣", 2),  # keycap sequence
        ("e\u0301", 1),  # NFC: e + combining acute is é
        ("https://example.org/" + "a" * 200, 23),
        ("see https://x.com/a and https://example.org/very/long/path?q=1", 4 + 23 + 5 + 23),
        ("(https://example.org/a).", 1 + 23 + 2),  # closing punctuation is not the URL
    ],
)
def test_weighted_length(text: str, length: int) -> None:
    assert weighted_length(text) == length
    assert fake_x.weighted_length(text) == length  # the fake counts on its own


def test_weighted_length_limits_at_280() -> None:
    assert weighted_length("a" * 280) == 280
    assert weighted_length("日" * 140) == 280
    assert weighted_length("日" * 141) == 282
    assert weighted_length("🙂" * 140) == 280


def test_url_with_non_ascii_counts_what_x_may_leave_outside_it() -> None:
    # X's URL stops at "ü": "ü" then counts as text. The adapter counts the same.
    url = "https://example.org/q?y=ü"
    assert fake_x.weighted_length(url) == 24
    assert weighted_length(url) == 24


def test_domain_without_scheme_counts_at_least_as_a_link() -> None:
    assert weighted_length("visit x.com today") == len("visit  today") + 23
    long = "docs.example.com/" + "p" * 40
    assert weighted_length(long) == len(long)


def test_measure_is_the_weighted_length(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    assert adapter.measure("日本語 👩‍💻") == 9
    assert adapter.limits.max_length == 280


# threads --------------------------------------------------------------------------------


def test_long_post_goes_out_as_a_thread_within_xs_count(fake: FakeX) -> None:
    adapter = make(fake.credentials(), link_canonical=False)
    rendition = adapter.render(sample_post(title="", body=THREAD_BODY))
    assert len(THREAD_BODY) >= 1_200
    assert len(rendition.parts) > 1
    for part in rendition.parts:
        assert fake_x.weighted_length(part) <= 280
        assert adapter.measure(part) <= 280
    assert rendition.parts[0].endswith(f"\n1/{len(rendition.parts)}")
    for link in THREAD_LINKS:
        assert sum(link in part for part in rendition.parts) == THREAD_BODY.count(link)
    receipt = adapter.publish(rendition, new_key())
    posts = list(fake.posts.values())
    assert [p["text"] for p in posts] == list(rendition.parts)
    assert posts[0]["reply_to"] is None
    for previous, post in itertools.pairwise(posts):
        assert post["reply_to"] == previous["id"]
    assert receipt.external_id == posts[0]["id"]
    assert receipt.data["ids"] == [p["id"] for p in posts]
    assert receipt.url == f"https://x.com/i/web/status/{posts[0]['id']}"


def test_thread_without_numbering(fake: FakeX) -> None:
    adapter = make(fake.credentials(), numbering=False)
    rendition = adapter.render(sample_post(title="", body=THREAD_BODY))
    assert len(rendition.parts) > 1
    assert not any(part.endswith(f"/{len(rendition.parts)}") for part in rendition.parts)


def test_reply_target_deleted_mid_thread_is_permanent(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    rendition = adapter.render(sample_post(title="", body=THREAD_BODY))
    key = new_key()
    fake.inject(Fault())
    fake.fail_next(503, "Service Unavailable")
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    (first,) = fake.posts
    fake.delete(first)
    with pytest.raises(PermanentError) as info:
        adapter.publish(rendition, key)
    assert fake_x.REPLY_GONE in info.value.message
    assert fake.posts == {}


# 403: refused content or refused credentials ------------------------------------------------


def test_same_text_twice_is_refused_for_good_in_xs_words(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    rendition = adapter.render(sample_post())
    adapter.publish(rendition, new_key())
    with pytest.raises(PermanentError) as info:
        adapter.publish(rendition, new_key())
    assert not isinstance(info.value, AuthError)
    assert DUPLICATE in info.value.message
    assert len(fake.posts) == 1


def test_text_too_long_for_x_is_permanent(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    rendition = adapter.render(sample_post(body="x"))
    too_long = type(rendition)(format="text", parts=("日" * 141,))
    with pytest.raises(PermanentError) as info:
        adapter.publish(too_long, new_key())
    assert "too long" in info.value.message


@pytest.mark.parametrize(
    "message",
    [
        "You are not permitted to perform this action.",
        "Your client app is not configured with the appropriate oauth1 app permissions.",
    ],
)
def test_other_403s_are_auth_errors(fake: FakeX, message: str) -> None:
    adapter = make(fake.credentials())
    fake.fail_next(403, message)
    with pytest.raises(AuthError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert message in info.value.message
    assert fake.refreshes == 0, "403 is not an expired token: no refresh"


def test_400_carries_xs_error_message_not_the_generic_detail(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    fake.fail_next(400, "Your media IDs are invalid.")
    with pytest.raises(PermanentError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert "Your media IDs are invalid." in info.value.message


# lookups after a timeout ----------------------------------------------------------------


def test_lookup_matches_the_text_x_shows_back(fake: FakeX) -> None:
    adapter = make(fake.credentials(), read_timeout=0.3)
    rendition = adapter.render(sample_post())
    assert "&" in rendition.parts[0]
    assert "https://" in rendition.parts[0]
    key = new_key()
    fake.hang_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    (post,) = fake.posts.values()
    assert fake_x.shown(post["text"]) != post["text"]  # t.co links and &amp;
    receipt = adapter.find_existing(rendition, key)
    assert receipt is not None
    assert receipt.external_id == post["id"]
    # Now recorded: a second look needs no request.
    seen = len(fake.requests)
    assert adapter.find_existing(rendition, key) == receipt
    assert len(fake.requests) == seen


@pytest.mark.parametrize(("minutes", "found"), [(10, False), (-1, True)])
def test_lookup_takes_only_posts_made_since_the_send(
    fake: FakeX, minutes: int, found: bool
) -> None:
    adapter = make(fake.credentials())
    rendition = adapter.render(sample_post())
    older = adapter.publish(rendition, new_key())
    # A worker marked a send of the same text, then died before any answer came.
    key = new_key()
    marked = datetime.now(UTC) + timedelta(minutes=minutes)
    adapter.store.save_progress(key, {"ids": [], "pending": {"index": 0, "at": marked.isoformat()}})
    receipt = adapter.find_existing(rendition, key)
    assert (receipt is not None) is found
    if receipt is not None:
        assert receipt.external_id == older.external_id


def test_a_post_the_timeline_lags_behind_on_is_found_on_the_next_attempt(fake: FakeX) -> None:
    adapter = make(fake.credentials(), read_timeout=0.3)
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.hang_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    (post_id,) = fake.posts
    fake.not_yet_in_timeline.add(post_id)
    assert adapter.find_existing(rendition, key) is None
    fake.not_yet_in_timeline.clear()
    receipt = adapter.publish(rendition, key)  # looks again before sending
    assert receipt.external_id == post_id
    assert len(creates(fake)) == 1


def test_a_refused_send_leaves_nothing_to_look_up(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.fail_next(503, "Service Unavailable")
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    seen = len(fake.requests)
    assert adapter.find_existing(rendition, key) is None
    assert len(fake.requests) == seen, "X said no: nothing was posted, nothing to look up"


def test_timeout_in_the_middle_of_a_thread_never_posts_a_part_twice(fake: FakeX) -> None:
    adapter = make(fake.credentials(), read_timeout=0.3)
    rendition = adapter.render(sample_post(title="", body=THREAD_BODY))
    assert len(rendition.parts) >= 3
    key = new_key()
    fake.inject(Fault())
    fake.hang_next()  # the second part is posted, its answer lost
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    assert len(fake.posts) == 2
    # Not all of it went out: nothing to report yet, but the second part is now known.
    assert adapter.find_existing(rendition, key) is None
    receipt = adapter.publish(rendition, key)
    assert [p["text"] for p in fake.posts.values()] == list(rendition.parts)
    assert receipt.data["ids"] == list(fake.posts)


def test_timeout_on_the_last_part_is_found_whole(fake: FakeX) -> None:
    adapter = make(fake.credentials(), read_timeout=0.3)
    rendition = adapter.render(sample_post(title="", body=THREAD_BODY))
    key = new_key()
    for _ in rendition.parts[:-1]:
        fake.inject(Fault())
    fake.hang_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    receipt = adapter.find_existing(rendition, key)
    assert receipt is not None
    assert receipt.data["ids"] == list(fake.posts)
    assert len(fake.posts) == len(rendition.parts)


# media ------------------------------------------------------------------------------------


def image(tmp_path: Path, content_type: str = "image/png", size: int | None = None) -> MediaItem:
    path = tmp_path / f"{uuid.uuid4().hex}.img"
    path.write_bytes(PNG_1PX)
    return MediaItem(
        id=uuid.uuid4(),
        path=path,
        content_type=content_type,
        size=size if size is not None else len(PNG_1PX),
        filename="pixel",
        alt_text="A pixel",
    )


def test_render_keeps_only_images_x_takes(fake: FakeX, tmp_path: Path) -> None:
    adapter = make(fake.credentials())
    gif = image(tmp_path, "image/gif")
    huge = image(tmp_path, size=5 * 1024 * 1024 + 1)
    fine = [image(tmp_path, t) for t in ("image/png", "image/jpeg", "image/webp")] * 2
    rendition = adapter.render(sample_post(media=(gif, huge, *fine)))
    assert rendition.media == tuple(fine[:4])


def test_images_go_with_the_first_part_with_their_alt_text(fake: FakeX, tmp_path: Path) -> None:
    adapter = make(fake.credentials())
    images = (sample_image(tmp_path, "First, ünïcödé"), sample_image(tmp_path, "Second"))
    no_alt = sample_image(tmp_path, "")
    rendition = adapter.render(sample_post(title="", body=THREAD_BODY, media=(*images, no_alt)))
    adapter.publish(rendition, new_key())
    posts = list(fake.posts.values())
    assert len(posts[0]["media_ids"]) == 3
    assert all(p["media_ids"] == [] for p in posts[1:])
    assert [fake.media[m]["alt"] for m in posts[0]["media_ids"]] == ["First, ünïcödé", "Second", ""]
    metadata_calls = [r for r in fake.requests if r.path == "/2/media/metadata"]
    assert len(metadata_calls) == 2, "no metadata call for an image without alt text"


def test_image_only_post(fake: FakeX, tmp_path: Path) -> None:
    adapter = make(fake.credentials(), include_title=False, link_canonical=False)
    rendition = adapter.render(sample_post(body="", media=(sample_image(tmp_path),)))
    assert rendition.parts == ("",)
    adapter.publish(rendition, new_key())
    (post,) = fake.posts.values()
    assert post["text"] == ""
    assert len(post["media_ids"]) == 1


def test_nothing_to_post_is_permanent(fake: FakeX) -> None:
    adapter = make(fake.credentials(), include_title=False, link_canonical=False)
    with pytest.raises(PermanentError):
        adapter.render(sample_post(body=""))


def test_an_unanswered_upload_is_retryable_not_ambiguous(fake: FakeX, tmp_path: Path) -> None:
    adapter = make(fake.credentials(), read_timeout=0.3)
    fake.hang_next()
    with pytest.raises(RetryableError):
        adapter.publish(adapter.render(sample_post(media=(sample_image(tmp_path),))), new_key())
    assert fake.posts == {}


# render and verify ----------------------------------------------------------------------


def test_render_title_body_and_canonical_link(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    (text,) = adapter.render(sample_post()).parts
    assert text == (
        "Café au lait — ünïcödé 日本語\n\nHeading\n\n"
        "Some Markdown with a link (https://example.org/a?b=c&d=e).\n\n"
        "https://blog.example.org/2024/cafe-au-lait"
    )
    bare = make(fake.credentials(), include_title=False, link_canonical=False)
    (text,) = bare.render(sample_post()).parts
    assert text == "Heading\n\nSome Markdown with a link (https://example.org/a?b=c&d=e)."


def test_verify_names_the_account_and_sends_the_bearer_token(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    identity = adapter.verify()
    assert identity.name == "@herald"
    assert identity.detail == {"id": fake.user["id"], "name": fake.user["name"]}
    (request,) = fake.requests
    assert (request.method, request.path) == ("GET", "/2/users/me")
    assert request.headers["authorization"] == f"Bearer {fake.access_token}"


def test_expires_at_without_a_zone_is_utc() -> None:
    credentials = XCredentials.model_validate(
        {
            "access_token": "a",
            "refresh_token": "r",
            "client_id": "c",
            "expires_at": "2030-01-01T00:00:00",
        }
    )
    assert credentials.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert credentials.api_base == "https://api.x.com"


def test_rate_limit_on_the_24_hour_cap_waits_for_that_reset(fake: FakeX) -> None:
    adapter = make(fake.credentials())
    now = time.time()
    fake.fail_next(
        429,
        "Too Many Requests",
        {
            "x-rate-limit-remaining": "99",
            "x-rate-limit-reset": str(int(now) + 60),
            "x-app-limit-24hour-remaining": "0",
            "x-app-limit-24hour-reset": str(int(now + timedelta(hours=3).total_seconds())),
        },
    )
    with pytest.raises(RetryableError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert info.value.retry_after is not None
    assert 3 * 3600 - 5 <= info.value.retry_after <= 3 * 3600 + 1


# the short variant --------------------------------------------------------------------


def test_the_posts_short_variant_replaces_title_and_body(fake: FakeX) -> None:
    adapter = make(fake.credentials(), include_title=True)
    short = "Café au lait, *shipped*: read [the notes](https://example.org/notes)."
    rendition = adapter.render(sample_post(body=THREAD_BODY, short_body=short))
    canonical = sample_post().canonical_url
    assert rendition.parts == (
        "Café au lait, shipped: read the notes (https://example.org/notes).\n\n" + str(canonical),
    )
    # Still measured and split as any text: a long one becomes a thread within 280.
    long_one = adapter.render(sample_post(short_body=THREAD_BODY, canonical_url=None))
    assert (
        long_one.parts
        == adapter.render(sample_post(title="", body=THREAD_BODY, canonical_url=None)).parts
    )
    assert len(long_one.parts) > 1
    assert all(adapter.measure(part) <= 280 for part in long_one.parts)
    # Blank: the text is built from the title and body as before.
    blank = adapter.render(sample_post(short_body="  \n"))
    assert blank.parts == adapter.render(sample_post()).parts
    assert blank.parts[0].startswith(sample_post().title)
