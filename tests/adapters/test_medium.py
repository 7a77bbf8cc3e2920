"""The Medium adapter: the contract suite against a local Medium written from its API
docs, plus the author id cache, publish status, tags, and the lookup in the RSS feed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from herald.adapters.base import AmbiguousError, AuthError, MemoryStore, RetryableError
from herald.adapters.medium import MediumAdapter, medium_tags
from tests.adapters.contract import HTTP, AdapterContract, Fault, new_key, sample_post
from tests.fakes.medium import FakeMedium


class TestMediumContract(AdapterContract):
    platform = "medium"
    capabilities = frozenset({HTTP})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeMedium]:
        with FakeMedium() as fake:
            yield fake

    def credentials(self, fake: FakeMedium) -> dict[str, Any]:
        return fake.credentials()

    def bad_credentials(self, fake: FakeMedium) -> dict[str, dict[str, Any]]:
        return {"revoked token": {"token": "2" + "0" * 64, "api_url": fake.base_url}}

    def settings(self, fake: FakeMedium) -> dict[str, Any]:
        return fake.settings()

    def posts_on_platform(self, fake: FakeMedium) -> list[Any]:
        return list(fake.posts)

    def secret_values(self, credentials: Any) -> list[str]:
        return [credentials["token"]]  # the API URL is no secret

    def inject(self, fake: FakeMedium, fault: Fault) -> None:
        fake.inject(fault)

    def requests_received(self, fake: FakeMedium) -> int:
        # A fresh adapter first reads its author id (GET /v1/me, cached afterwards); that
        # read takes no faults and is not counted, so "one request" means one create.
        return fake.posts_requests()

    def unreachable_credentials(self, fake: FakeMedium, base_url: str) -> dict[str, Any]:
        return {"token": fake.token, "api_url": base_url}


# -- what is particular to Medium -------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeMedium]:
    with FakeMedium() as fake:
        yield fake
        assert fake.violations == [], "a request broke Medium's documented API"


def make(fake: FakeMedium, store: MemoryStore | None = None, **settings: Any) -> MediumAdapter:
    adapter = MediumAdapter.build(fake.credentials(), fake.settings() | settings, store)
    assert isinstance(adapter, MediumAdapter)
    return adapter


def created(fake: FakeMedium) -> list[dict[str, Any]]:
    return [r.json() for r in fake.requests if r.method == "POST"]


def test_author_id_is_read_once_and_cached_in_the_session(fake: FakeMedium) -> None:
    store = MemoryStore()
    adapter = make(fake, store)
    adapter.publish(adapter.render(sample_post(canonical_url=None)), new_key())
    adapter.publish(adapter.render(sample_post(canonical_url=None)), new_key())
    # Another adapter for the same channel (another worker) uses the cached id too.
    again = make(fake, store)
    again.publish(again.render(sample_post()), new_key())
    paths = [(r.method, r.path) for r in fake.requests]
    author = fake.user["id"]
    assert paths == [("GET", "/v1/me")] + [("POST", f"/v1/users/{author}/posts")] * 3
    session = store.session()
    assert session is not None
    assert session["user_id"] == author
    assert session["username"] == "ada"
    assert fake.token not in str(session)


def test_a_new_token_reads_its_own_author_id(fake: FakeMedium) -> None:
    store = MemoryStore()
    store.save_session({"token": "another-token", "user_id": "someone-else", "username": "x"})
    adapter = make(fake, store)
    adapter.publish(adapter.render(sample_post()), new_key())
    assert fake.requests[0].path == "/v1/me"
    assert fake.posts[0]["authorId"] == fake.user["id"]


@pytest.mark.parametrize("status", ["public", "draft", "unlisted"])
def test_publish_status_is_sent(fake: FakeMedium, status: str) -> None:
    adapter = make(fake, publish_status=status)
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    (body,) = created(fake)
    assert body["publishStatus"] == status
    assert fake.posts[0]["publishStatus"] == status
    assert receipt.data["publish_status"] == status


def test_body_carries_title_content_tags_and_canonical_url(fake: FakeMedium) -> None:
    adapter = make(fake, notify_followers=False, license="cc-40-by")
    post = sample_post(tags=("python", "release notes", "x" * 26, "PYTHON", "web", "fifth"))
    receipt = adapter.publish(adapter.render(post), new_key())
    (body,) = created(fake)
    assert body["title"] == post.title
    assert body["contentFormat"] == "html"
    assert body["content"].startswith("<h1>Café au lait — ünïcödé 日本語</h1>")
    assert '<a href="https://example.org/a?b=c&amp;d=e"' in body["content"]
    assert body["tags"] == ["python", "release notes", "web"]
    assert body["canonicalUrl"] == post.canonical_url
    assert body["notifyFollowers"] is False
    assert body["license"] == "cc-40-by"
    (request,) = [r for r in fake.requests if r.method == "POST"]
    assert request.headers["authorization"] == f"Bearer {fake.token}"
    assert receipt.external_id == fake.posts[0]["id"]
    assert receipt.url == fake.posts[0]["url"]


def test_markdown_content_format(fake: FakeMedium) -> None:
    adapter = make(fake, content_format="markdown")
    post = sample_post()
    adapter.publish(adapter.render(post), new_key())
    (body,) = created(fake)
    assert body["contentFormat"] == "markdown"
    assert body["content"] == f"# {post.title}\n\n{post.body.strip()}\n"


def test_tags_keep_three_of_at_most_25_characters() -> None:
    assert medium_tags(("a", "b", "c", "d")) == ["a", "b", "c"]
    assert medium_tags(("x" * 25, "y" * 26, "  spaced   out ", "A", "a")) == [
        "x" * 25,
        "spaced out",
        "A",
    ]


def test_long_title_is_shortened_for_medium() -> None:
    adapter = MediumAdapter.build({"token": "t"})
    rendition = adapter.render(sample_post(title="word " * 40))
    assert rendition.title is not None
    assert len(rendition.title) <= 100
    assert rendition.title.endswith("…")
    assert rendition.parts[0].startswith("<h1>" + ("word " * 40).strip() + "</h1>")


def test_lost_answer_is_found_in_the_public_feed(fake: FakeMedium) -> None:
    adapter = make(fake)
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.drop_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    found = adapter.find_existing(rendition, key)
    assert found is not None
    (post,) = fake.posts
    assert found.external_id == post["id"]
    assert found.url == post["url"]
    feed = fake.requests[-1]
    assert (feed.method, feed.path) == ("GET", "/feed/@ada")
    assert "authorization" not in feed.headers  # the feed is public: no token sent there


def test_feed_does_not_match_an_older_post_with_the_same_title(fake: FakeMedium) -> None:
    adapter = make(fake)
    rendition = adapter.render(sample_post())
    adapter.publish(rendition, new_key())
    fake.posts[0]["publishedAt"] -= 3600 * 1000  # published an hour before this delivery
    key = new_key()
    fake.fail_next(503, "try later")
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    assert adapter.find_existing(rendition, key) is None


def test_drafts_are_not_looked_up(fake: FakeMedium) -> None:
    adapter = make(fake, publish_status="draft")
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.drop_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    before = len(fake.requests)
    # A draft is in no feed: better unconfirmed than posted twice.
    assert adapter.find_existing(rendition, key) is None
    assert len(fake.requests) == before


def test_feed_lookup_that_times_out_is_retryable_not_ambiguous(fake: FakeMedium) -> None:
    adapter = make(fake, read_timeout=0.3)
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.drop_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    fake.hang_next()  # the feed request this time
    with pytest.raises(RetryableError):
        adapter.find_existing(rendition, key)


def test_revoked_token_on_verify_is_an_auth_error_with_mediums_words(fake: FakeMedium) -> None:
    adapter = MediumAdapter.build({**fake.credentials(), "token": "bad"})
    with pytest.raises(AuthError, match="Token was invalid"):
        adapter.verify()
