"""The LinkedIn adapter: the contract suite against the local fake, plus what is particular
to LinkedIn (little-format escaping, truncation that keeps the link, article and image
content, the version headers, OAuth refresh, the author lookup after a lost answer)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from herald.adapters.base import (
    AmbiguousError,
    AuthError,
    MemoryStore,
    PermanentError,
    RetryableError,
)
from herald.adapters.linkedin import (
    LinkedInAdapter,
    LinkedInCredentials,
    LinkedInSettings,
    _until_midnight,
    escape_little,
)
from tests.adapters.contract import (
    HTTP,
    MEDIA,
    AdapterContract,
    Fault,
    new_key,
    sample_image,
    sample_post,
)
from tests.fakes.linkedin import FakeLinkedIn, parse_little


class TestLinkedInContract(AdapterContract):
    platform = "linkedin"
    capabilities = frozenset({HTTP, MEDIA})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeLinkedIn]:
        with FakeLinkedIn() as fake:
            yield fake

    def credentials(self, fake: FakeLinkedIn) -> dict[str, Any]:
        return fake.credentials()

    def bad_credentials(self, fake: FakeLinkedIn) -> dict[str, dict[str, Any]]:
        expired = fake.issue_token()
        fake.expire(expired)
        return {
            "unknown token": fake.credentials(access_token="AQVnot-a-token-linkedin-issued"),
            "expired token and no refresh token": fake.credentials(access_token=expired),
        }

    def posts_on_platform(self, fake: FakeLinkedIn) -> list[Any]:
        return list(fake.posts)

    def media_on_platform(self, fake: FakeLinkedIn) -> list[dict[str, Any]]:
        held = []
        for post in fake.posts:
            content = post["content"] or {}
            images = [content["media"]] if "media" in content else []
            images += content.get("multiImage", {}).get("images", [])
            for image in images:
                data = fake.images[image["id"]]["bytes"]
                held.append({"alt": image.get("altText", ""), "size": len(data)})
        return held

    def secret_values(self, credentials: Mapping[str, Any]) -> list[str]:
        # The author URN and the API URLs are not secrets.
        keys = ("access_token", "refresh_token", "client_secret")
        return [credentials[k] for k in keys if credentials.get(k)]

    def inject(self, fake: FakeLinkedIn, fault: Fault) -> None:
        fake.inject(fault)

    def requests_received(self, fake: FakeLinkedIn) -> int:
        return len(fake.requests)

    def unreachable_credentials(self, fake: FakeLinkedIn, base_url: str) -> dict[str, Any]:
        return fake.credentials(api_url=base_url)

    def rate_limit_headers(self, seconds: int, now: float) -> dict[str, dict[str, str]]:
        # LinkedIn documents no reset header (its quotas are daily); a Retry-After from its
        # edge is honoured. The daily case is tested below.
        return {"Retry-After seconds": {"Retry-After": str(seconds)}}


# -- what is particular to LinkedIn -------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeLinkedIn]:
    with FakeLinkedIn() as fake:
        yield fake
        assert not fake.violations, fake.violations


def make(
    credentials: Mapping[str, Any],
    store: MemoryStore | None = None,
    **settings: Any,
) -> LinkedInAdapter:
    return LinkedInAdapter(
        LinkedInCredentials.model_validate(dict(credentials)),
        LinkedInSettings.model_validate(settings),
        store,
    )


@pytest.fixture
def adapter(fake: FakeLinkedIn) -> LinkedInAdapter:
    return make(fake.credentials())


RESERVED_TEXT = r"Use (parens), [brackets], {braces}, @you, a|b, *stars*, _under_, ~t~, <x>, \ #1"


def test_reserved_characters_are_escaped_and_arrive_whole(
    adapter: LinkedInAdapter, fake: FakeLinkedIn
) -> None:
    # Markdown would eat some marks; a code block keeps them all verbatim.
    post = sample_post(title="A (small) test", body=f"```\n{RESERVED_TEXT}\n```", tags=())
    rendition = adapter.render(post)
    commentary = rendition.parts[0]
    assert escape_little(RESERVED_TEXT) in commentary
    assert r"\(small\)" in commentary
    adapter.publish(rendition, new_key())
    (stored,) = fake.posts
    text, hashtags, problems = parse_little(stored["commentary"])
    assert problems == []
    assert RESERVED_TEXT in text  # nothing cut, nothing doubled
    assert hashtags == []


def test_escape_little_escapes_every_reserved_character() -> None:
    assert escape_little("\\|{}@[]()<>#*_~") == "".join("\\" + c for c in "\\|{}@[]()<>#*_~")
    assert escape_little("plain text, ünïcödé.") == "plain text, ünïcödé."


def test_tags_become_real_hashtags(adapter: LinkedInAdapter, fake: FakeLinkedIn) -> None:
    adapter.publish(adapter.render(sample_post(tags=("python", "release-notes"))), new_key())
    (stored,) = fake.posts
    assert stored["hashtags"] == ["python", "releasenotes"]
    assert stored["commentary"].endswith("#python #releasenotes")


def test_hashtags_can_be_switched_off(fake: FakeLinkedIn) -> None:
    adapter = make(fake.credentials(), hashtags=False)
    assert "#" not in adapter.render(sample_post(tags=("python",))).parts[0]


def test_long_post_is_cut_at_a_sentence_and_keeps_the_link(
    adapter: LinkedInAdapter, fake: FakeLinkedIn
) -> None:
    sentence = "Herald (the engine) delivers every post once, and only once. "
    post = sample_post(body=sentence * 80, canonical_url="https://blog.example.org/a_b?c=d")
    rendition = adapter.render(post)
    commentary = rendition.parts[0]
    assert adapter.measure(commentary) <= 3000
    assert commentary.endswith(
        r"https://blog.example.org/a\_b?c=d" + "\n\n#python #releasenotes #日本"
    )
    main = commentary.split("\n\n")[1]  # after the title
    assert main.endswith("once.")  # a whole sentence, no word cut in half
    adapter.publish(rendition, new_key())
    (stored,) = fake.posts
    assert "https://blog.example.org/a_b?c=d" in stored["text"]


def test_commentary_length_counts_utf16_units(adapter: LinkedInAdapter) -> None:
    assert adapter.measure("👩‍💻") == 5  # woman, ZWJ, laptop: 2 + 1 + 2 units
    assert adapter.measure(escape_little("(a)")) == 5


def test_canonical_url_becomes_an_article(adapter: LinkedInAdapter, fake: FakeLinkedIn) -> None:
    post = sample_post()
    adapter.publish(adapter.render(post), new_key())
    (stored,) = fake.posts
    assert stored["content"] == {
        "article": {
            "source": post.canonical_url,
            "title": post.title,
            "description": post.excerpt,
        }
    }


def test_several_images_make_a_multi_image_post(
    adapter: LinkedInAdapter, fake: FakeLinkedIn, tmp_path: Path
) -> None:
    images = (sample_image(tmp_path, "first"), sample_image(tmp_path, "second"))
    rendition = adapter.render(sample_post(media=images))
    assert rendition.media == images
    assert "article" not in rendition.extra  # one content type per post: images win
    adapter.publish(rendition, new_key())
    (stored,) = fake.posts
    held = stored["content"]["multiImage"]["images"]
    assert [image["altText"] for image in held] == ["first", "second"]
    assert all(fake.images[image["id"]]["bytes"] for image in held)


def test_unsupported_images_are_left_out(adapter: LinkedInAdapter, tmp_path: Path) -> None:
    image = sample_image(tmp_path)
    webp = type(image)(**(vars(image) | {"content_type": "image/webp"}))
    huge = type(image)(**(vars(image) | {"size": 6 * 1024 * 1024}))
    assert adapter.render(sample_post(media=(webp, huge, image))).media == (image,)


def test_every_rest_call_carries_the_version_headers(fake: FakeLinkedIn, tmp_path: Path) -> None:
    adapter = make(fake.credentials(), linkedin_version="202601")
    adapter.publish(adapter.render(sample_post(media=(sample_image(tmp_path),))), new_key())
    rest = [r for r in fake.requests if r.path.startswith("/rest/")]
    assert [r.path for r in rest] == ["/rest/images", "/rest/posts"]
    for request in rest:
        assert request.headers["linkedin-version"] == "202601"
        assert request.headers["x-restli-protocol-version"] == "2.0.0"
        assert request.headers["authorization"] == f"Bearer {fake.token}"
    body = rest[-1].json()
    assert body["author"] == fake.person
    assert body["lifecycleState"] == "PUBLISHED"
    assert body["distribution"] == {
        "feedDistribution": "MAIN_FEED",
        "targetEntities": [],
        "thirdPartyDistributionChannels": [],
    }


def test_receipt_is_the_post_urn_and_its_feed_url(
    adapter: LinkedInAdapter, fake: FakeLinkedIn
) -> None:
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    (stored,) = fake.posts
    assert receipt.external_id == stored["id"]
    assert receipt.url == f"https://www.linkedin.com/feed/update/{stored['id']}/"


def test_organization_page_can_post(fake: FakeLinkedIn) -> None:
    adapter = make(fake.credentials(author=fake.organization))
    assert adapter.verify().detail["author"] == fake.organization
    adapter.publish(adapter.render(sample_post()), new_key())
    assert fake.posts[0]["author"] == fake.organization


def test_verify_names_the_member_and_refuses_someone_elses_token(fake: FakeLinkedIn) -> None:
    assert make(fake.credentials()).verify().name == fake.member_name
    other = fake.issue_token(member_id="someoneElse9")
    with pytest.raises(AuthError, match="another LinkedIn member"):
        make(fake.credentials(access_token=other)).verify()


def test_expired_token_is_refreshed_stored_and_used(fake: FakeLinkedIn) -> None:
    credentials = fake.credentials(
        refresh_token=fake.refresh_token,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
    )
    fake.expire(fake.token)
    store = MemoryStore(LinkedInCredentials.model_validate(credentials).model_dump(mode="json"))
    adapter = make(credentials, store)
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    assert receipt.external_id == fake.posts[0]["id"]
    assert fake.refreshes == 1
    fresh = store.credentials["access_token"]
    assert fresh != fake.token
    assert fake.tokens[fresh] == fake.member_id
    assert fake.requests[-1].headers["authorization"] == f"Bearer {fresh}"
    # The next adapter built from the store needs no refresh.
    again = make(store.credentials, store)
    again.publish(again.render(sample_post()), new_key())
    assert fake.refreshes == 1


def test_refused_refresh_is_an_auth_error(fake: FakeLinkedIn) -> None:
    credentials = fake.credentials(
        refresh_token="AQXrevoked-refresh-token-000000",
        client_id=fake.client_id,
        client_secret=fake.client_secret,
    )
    fake.expire(fake.token)
    adapter = make(credentials)
    with pytest.raises(AuthError, match="refused to refresh") as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert "AQXrevoked" not in str(info.value)
    assert fake.posts == []


def test_a_forbidden_answer_does_not_trigger_a_refresh(fake: FakeLinkedIn) -> None:
    credentials = fake.credentials(
        refresh_token=fake.refresh_token,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
    )
    adapter = make(credentials)
    fake.fail_next(403, "Not enough permissions to access: partnerApiPostsExternal.CREATE")
    with pytest.raises(AuthError):
        adapter.publish(adapter.render(sample_post()), new_key())
    assert fake.refreshes == 0


def test_refresh_token_needs_the_app_credentials(fake: FakeLinkedIn) -> None:
    with pytest.raises(ValueError, match="client_id and client_secret"):
        LinkedInCredentials.model_validate(fake.credentials(refresh_token="AQXsomething"))


def test_lost_answer_is_found_on_the_authors_feed(fake: FakeLinkedIn) -> None:
    adapter = make(fake.credentials(), read_timeout=0.3)
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.hang_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    found = adapter.find_existing(rendition, key)
    assert found is not None
    assert found.external_id == fake.posts[0]["id"]
    lookup = fake.requests[-1]
    assert lookup.method == "GET"
    assert "author=urn%3Ali%3Aperson%3A" in lookup.query
    # Remembered: asking again needs no call.
    before = len(fake.requests)
    assert adapter.find_existing(rendition, key) == found
    assert len(fake.requests) == before


def test_lookup_without_read_permission_says_it_cannot_tell(fake: FakeLinkedIn) -> None:
    fake.can_read_posts = False
    adapter = make(fake.credentials(), read_timeout=0.3)
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.hang_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    assert adapter.find_existing(rendition, key) is None


def test_lookup_ignores_a_post_this_key_never_sent(
    adapter: LinkedInAdapter, fake: FakeLinkedIn
) -> None:
    rendition = adapter.render(sample_post())
    adapter.publish(rendition, new_key())
    before = len(fake.requests)
    assert adapter.find_existing(rendition, new_key()) is None
    assert len(fake.requests) == before  # nothing was sent with that key: no need to look


def test_daily_quota_waits_until_midnight_utc(adapter: LinkedInAdapter, fake: FakeLinkedIn) -> None:
    fake.fail_next(429, "Resource level throttle APPLICATION DAY limit for calls to this resource")
    with pytest.raises(RetryableError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 86_400
    assert _until_midnight(datetime(2026, 11, 23, 23, 0, tzinfo=UTC)) == 3600


def test_validation_error_keeps_linkedins_words(
    adapter: LinkedInAdapter, fake: FakeLinkedIn
) -> None:
    fake.fail_next(422, "ERROR :: /commentary :: is a duplicate of a recent post")
    with pytest.raises(Exception, match="is a duplicate of a recent post"):
        adapter.publish(adapter.render(sample_post()), new_key())


def test_resend_after_a_lost_answer_takes_linkedins_duplicate_as_the_receipt(
    fake: FakeLinkedIn,
) -> None:
    fake.reject_duplicates = True
    fake.can_read_posts = False  # the usual app: no r_member_social, no lookup
    adapter = make(fake.credentials(), read_timeout=0.3)
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.hang_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    assert adapter.find_existing(rendition, key) is None
    receipt = adapter.publish(rendition, key)
    (stored,) = fake.posts
    assert receipt.external_id == stored["id"]
    assert adapter.find_existing(rendition, key) == receipt


def test_duplicate_of_someone_elses_post_is_refused(
    adapter: LinkedInAdapter, fake: FakeLinkedIn
) -> None:
    fake.reject_duplicates = True
    rendition = adapter.render(sample_post())
    adapter.publish(rendition, new_key())
    with pytest.raises(PermanentError, match="Content is a duplicate of urn:li:share:"):
        adapter.publish(rendition, new_key())
    assert len(fake.posts) == 1
