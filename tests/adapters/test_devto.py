"""The dev.to / Forem adapter: the contract suite against a local Forem, plus what is
particular to Forem (tags, canonical URL, the v1 headers, the lookup by marker)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from herald.adapters.base import AmbiguousError, AuthError, PermanentError, RetryableError
from herald.adapters.devto import DevtoAdapter, delivery_marker, normalise_tags
from tests.adapters.contract import HTTP, AdapterContract, Fault, new_key, sample_post
from tests.fakes.devto import ACCEPT, FakeForem
from tests.fakes.specs import needs_specs


class TestDevtoContract(AdapterContract):
    platform = "devto"
    capabilities = frozenset({HTTP})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeForem]:
        with FakeForem() as fake:
            yield fake

    def credentials(self, fake: FakeForem) -> dict[str, Any]:
        return fake.credentials()

    def bad_credentials(self, fake: FakeForem) -> dict[str, dict[str, Any]]:
        return {"unknown key": {"api_key": "devto-not-a-key-0000", "base_url": fake.base_url}}

    def posts_on_platform(self, fake: FakeForem) -> list[Any]:
        return list(fake.articles)

    def secret_values(self, credentials: Any) -> list[str]:
        return [credentials["api_key"]]  # the base URL is no secret

    def inject(self, fake: FakeForem, fault: Fault) -> None:
        fake.inject(fault)

    def requests_received(self, fake: FakeForem) -> int:
        return len(fake.requests)

    def unreachable_credentials(self, fake: FakeForem, base_url: str) -> dict[str, Any]:
        return {"api_key": fake.api_key, "base_url": base_url}

    def rate_limit_headers(self, seconds: int, now: float) -> dict[str, dict[str, str]]:
        # Forem's RateLimitChecker and rack-attack both answer with Retry-After seconds.
        return {"Retry-After seconds": {"Retry-After": str(seconds)}}

    @pytest.mark.xfail(
        strict=True,
        raises=PermanentError,
        reason="Forem keeps canonical_url unique: the same post twice is refused "
        "(see test_same_post_twice_is_refused_for_its_canonical_url)",
    )
    def test_different_keys_post_twice(self, adapter: Any, fake: Any) -> None:
        super().test_different_keys_post_twice(adapter, fake)


# -- what is particular to Forem --------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeForem]:
    with FakeForem() as fake:
        yield fake
        assert fake.violations == [], "a request broke Forem's published schema"


def make(fake: FakeForem, **settings: Any) -> DevtoAdapter:
    adapter = DevtoAdapter.build(fake.credentials(), settings)
    assert isinstance(adapter, DevtoAdapter)
    return adapter


def sent_articles(fake: FakeForem) -> list[dict[str, Any]]:
    return [r.json()["article"] for r in fake.requests if r.method == "POST"]


def test_tags_are_normalised_to_at_most_four() -> None:
    tags = ("Python", "release-notes", "日本", "C++", "web dev", "python", "extra", "more")
    assert normalise_tags(tags) == ["python", "releasenotes", "c", "webdev"]
    assert normalise_tags(("Ünïcödé-Tëst",)) == ["unicodetest"]
    assert normalise_tags(("x" * 40,)) == ["x" * 30]


def test_four_tags_go_as_one_comma_separated_string(fake: FakeForem) -> None:
    adapter = make(fake)
    post = sample_post(tags=("Python", "release-notes", "日本", "C#", "Web Dev", "sixth"))
    adapter.publish(adapter.render(post), new_key())
    (article,) = sent_articles(fake)
    assert article["tags"] == "python, releasenotes, c, webdev"
    assert fake.articles[0]["tag_list"] == ["python", "releasenotes", "c", "webdev"]


def test_fake_refuses_a_fifth_tag(fake: FakeForem) -> None:
    # The fake holds Forem's rule, so the adapter's normalisation is what makes it pass.
    adapter = make(fake)
    rendition = adapter.render(sample_post())
    rendition.extra["article"]["tags"] = "a, b, c, d, e"
    with pytest.raises(PermanentError, match="maximum of 4 tags"):
        adapter.publish(rendition, new_key())
    assert fake.articles == []


def test_canonical_url_description_and_title_are_sent(fake: FakeForem) -> None:
    adapter = make(fake, series="Release notes", published=False)
    post = sample_post()
    key = new_key()
    receipt = adapter.publish(adapter.render(post), key)
    (request,) = [r for r in fake.requests if r.method == "POST"]
    assert request.headers["api-key"] == fake.api_key
    assert request.headers["accept"] == ACCEPT
    article = request.json()["article"]
    assert article["canonical_url"] == post.canonical_url
    assert article["description"] == post.excerpt
    assert article["title"] == post.title
    assert article["published"] is False
    assert article["series"] == "Release notes"
    assert article["body_markdown"].startswith(post.body.rstrip("\n"))
    assert article["body_markdown"].rstrip().endswith(delivery_marker(key))
    assert receipt.external_id == str(fake.articles[0]["id"])
    assert receipt.url == fake.articles[0]["url"]


def test_long_title_is_cut_between_words() -> None:
    adapter = DevtoAdapter.build({"api_key": "k"})
    title = "A title that goes on " * 10
    rendered = adapter.render(sample_post(title=title)).title
    assert rendered is not None
    assert len(rendered) <= 128
    assert rendered.endswith("…")
    kept = rendered.removesuffix("…")
    assert title.startswith(kept)
    assert title[len(kept)] == " "  # cut between words


def test_same_post_twice_is_refused_for_its_canonical_url(fake: FakeForem) -> None:
    adapter = make(fake)
    adapter.publish(adapter.render(sample_post()), new_key())
    with pytest.raises(PermanentError, match="Canonical url has already been taken"):
        adapter.publish(adapter.render(sample_post()), new_key())
    # Without a canonical URL, two deliveries make two articles (the marker differs).
    plain = adapter.render(sample_post(canonical_url=None))
    first = adapter.publish(plain, new_key())
    second = adapter.publish(plain, new_key())
    assert first.external_id != second.external_id
    assert len(fake.articles) == 3


def test_find_existing_finds_the_marker_after_a_lost_answer(fake: FakeForem) -> None:
    adapter = make(fake)
    rendition = adapter.render(sample_post(canonical_url=None))
    other = adapter.publish(rendition, new_key())
    key = new_key()
    fake.drop_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    found = adapter.find_existing(rendition, key)
    assert found is not None
    assert found.external_id != other.external_id
    assert found.external_id == str(fake.articles[-1]["id"])
    lookup = fake.requests[-1]
    assert (lookup.method, lookup.path) == ("GET", "/api/articles/me/all")
    # A key never sent is not found, though an article with the same text exists.
    assert adapter.find_existing(rendition, new_key()) is None


def test_verify_names_the_account(fake: FakeForem) -> None:
    identity = make(fake).verify()
    assert identity.name == "@ada on 127.0.0.1"
    assert identity.detail["id"] == 4242
    (request,) = fake.requests
    assert (request.method, request.path) == ("GET", "/api/users/me")
    assert request.headers["accept"] == ACCEPT


def test_rate_limit_answer_from_forem_is_retryable(fake: FakeForem) -> None:
    adapter = make(fake)
    fake.fail_next(429, "Rate limit reached, try again in 30 seconds", {"Retry-After": "30"})
    with pytest.raises(RetryableError, match="Rate limit reached") as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert info.value.retry_after == 30
    assert fake.articles == []


def test_suspended_or_revoked_key_is_an_auth_error_on_publish(fake: FakeForem) -> None:
    adapter = make(fake)
    fake.api_key = "devto-rotated-key"
    with pytest.raises(AuthError, match="unauthorized"):
        adapter.publish(adapter.render(sample_post()), new_key())


@needs_specs
def test_fake_holds_requests_to_forems_schema(fake: FakeForem) -> None:
    # Forem's own code permits a tag array, but its published schema says a string.
    article = {"title": "t", "body_markdown": "b", "tags": ["python"], "published": "yes"}
    response = httpx.post(
        f"{fake.base_url}/api/articles",
        json={"article": article},
        headers={"api-key": fake.api_key, "Accept": ACCEPT},
    )
    assert response.status_code == 400
    assert response.json()["status"] == 400
    problems = " ".join(fake.violations)
    assert "article/tags" in problems
    assert "article/published" in problems
    assert fake.articles == []
    fake.violations.clear()


def test_fake_records_a_missing_v1_accept_header(fake: FakeForem) -> None:
    response = httpx.get(f"{fake.base_url}/api/users/me", headers={"api-key": fake.api_key})
    assert response.status_code == 400
    assert any("Accept" in v for v in fake.violations)
    fake.violations.clear()
