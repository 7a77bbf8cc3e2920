"""The WordPress adapter: the contract suite against the local fake, plus what is
particular to WordPress (terms by name, term_exists races, the featured image, the
content marker that find_existing searches for, capabilities)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from herald.adapters.base import AmbiguousError, AuthError, PermanentError, RetryableError
from herald.adapters.http import api_json
from herald.adapters.wordpress import WordPressAdapter, key_token, marker, marker_block
from tests.adapters.contract import (
    HTTP,
    MEDIA,
    AdapterContract,
    Fault,
    new_key,
    sample_image,
    sample_post,
)
from tests.fakes.specs import needs_specs
from tests.fakes.wordpress import FakeWordPress, posts_route_args, the_content, wpautop

TERM_PATHS = ("/wp-json/wp/v2/tags", "/wp-json/wp/v2/categories")


class TestWordPressContract(AdapterContract):
    platform = "wordpress"
    capabilities = frozenset({HTTP, MEDIA})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeWordPress]:
        with FakeWordPress() as fake:
            yield fake

    def credentials(self, fake: FakeWordPress) -> dict[str, Any]:
        return fake.credentials()

    def bad_credentials(self, fake: FakeWordPress) -> dict[str, dict[str, Any]]:
        good = fake.credentials()
        return {
            "wrong application password": good | {"application_password": "abcd " * 5 + "wxyz"},
            "unknown user": good | {"username": "nobody-at-all"},
        }

    def secret_values(self, credentials: Any) -> list[str]:
        # The site URL and the login name are not secrets; the password and the Basic
        # header built from it are.
        basic = f"{credentials['username']}:{credentials['application_password']}"
        return [credentials["application_password"], base64.b64encode(basic.encode()).decode()]

    def posts_on_platform(self, fake: FakeWordPress) -> list[Any]:
        return list(fake.posts.values())

    def media_on_platform(self, fake: FakeWordPress) -> list[dict[str, Any]]:
        return [{"alt": m["alt_text"], "size": len(m["data"])} for m in fake.media_on_posts()]

    def inject(self, fake: FakeWordPress, fault: Fault) -> None:
        fake.inject(fault)

    def requests_received(self, fake: FakeWordPress) -> int:
        # Tag and category look-ups come before the post and never post anything; they
        # have their own fault queue (see tests/fakes/wordpress.py) and are not counted.
        return sum(1 for r in fake.requests if r.path not in TERM_PATHS)

    def unreachable_credentials(self, fake: FakeWordPress, base_url: str) -> dict[str, Any]:
        return fake.credentials() | {"url": base_url}


# -- what is particular to WordPress ---------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeWordPress]:
    with FakeWordPress() as fake:
        yield fake


def make(fake: FakeWordPress, **settings: Any) -> WordPressAdapter:
    return WordPressAdapter.build(fake.credentials(), settings)


def only_post(fake: FakeWordPress) -> dict[str, Any]:
    (post,) = fake.posts.values()
    return post


def test_tags_and_categories_go_by_name_created_once_and_reused(fake: FakeWordPress) -> None:
    existing = fake.add_term("tags", "Python")  # differently cased: reused, not created
    adapter = make(fake, categories=["News", "Café & Co"])
    post = sample_post(tags=("python", "Release Notes", "R&D", "release notes"))
    first = adapter.publish(adapter.render(post), new_key())
    second = adapter.publish(adapter.render(post), new_key())

    assert fake.term_creations("tags") == 2
    assert fake.term_creations("categories") == 2
    one, two = (fake.posts[int(r.external_id)] for r in (first, second))
    assert one["tags"] == two["tags"]
    assert one["tags"][0] == existing
    assert fake.term_names("tags", one["tags"]) == ["Python", "Release Notes", "R&D"]
    assert fake.term_names("categories", one["categories"]) == ["News", "Café & Co"]
    assert one["categories"] == two["categories"]


def test_term_exists_race_uses_the_id_wordpress_names(fake: FakeWordPress) -> None:
    # Another writer creates the tag between our search and our create.
    racing = fake.add_term("tags", "python", hidden_from_next_search=True)
    adapter = make(fake)
    adapter.publish(adapter.render(sample_post(tags=("python",))), new_key())

    assert only_post(fake)["tags"] == [racing]
    assert len(fake.terms["tags"]) == 1
    assert fake.term_creations("tags") == 1  # tried, answered term_exists, not retried


def test_an_author_cannot_create_terms_and_is_told_how_to_fix_it(fake: FakeWordPress) -> None:
    fake.role = "author"
    adapter = make(fake)
    with pytest.raises(PermanentError) as info:
        adapter.publish(adapter.render(sample_post(tags=("brand-new",))), new_key())
    assert "Sorry, you are not allowed to create terms in this taxonomy." in info.value.message
    assert "create_missing_terms" in info.value.message
    assert fake.posts == {}

    # Told to leave unknown terms out, the author can post; known tags still go on.
    known = fake.add_term("tags", "known")
    lenient = make(fake, create_missing_terms=False)
    lenient.publish(lenient.render(sample_post(tags=("brand-new", "known"))), new_key())
    assert only_post(fake)["tags"] == [known]


def test_html_is_rendered_and_sanitised(fake: FakeWordPress) -> None:
    adapter = make(fake)
    body = (
        "Some **bold** and a [link](https://example.org/?a=1&b=2).\n\n"
        "<script>alert('x')</script>\n\n"
        '<img src="x.png" onerror="alert(1)">\n'
    )
    rendition = adapter.render(sample_post(body=body))
    html = rendition.parts[0]
    assert rendition.format == "html"
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.org/?a=1&amp;b=2"' in html
    assert "<script" not in html
    assert "onerror" not in html

    key = new_key()
    adapter.publish(rendition, key)
    stored = only_post(fake)["content"]
    # Exactly the rendition, plus the invisible marker find_existing looks for.
    assert stored == html + "\n\n" + marker_block(key)
    assert marker(key) == f"<!-- {key_token(key)} -->"
    assert marker_block(key) == f"<!-- wp:html -->\n{marker(key)}\n<!-- /wp:html -->"
    assert key not in stored  # the key itself is not exposed, only a digest of it


def test_post_body_is_what_wordpress_expects(fake: FakeWordPress) -> None:
    adapter = make(fake, status="draft")
    post = sample_post()
    adapter.publish(adapter.render(post), new_key())
    (request,) = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/posts")]
    body = request.json()
    assert body["title"] == {"raw": post.title}
    assert body["excerpt"] == {"raw": post.excerpt}
    assert body["status"] == "draft"
    assert body["content"]["raw"].startswith("<h1>Heading</h1>")
    basic = f"{fake.username}:{fake.application_password}".encode()
    assert request.headers["authorization"] == "Basic " + base64.b64encode(basic).decode()
    stored = only_post(fake)
    assert stored["status"] == "draft"
    assert fake.term_names("tags", stored["tags"]) == list(post.tags)
    assert fake.violations == []


@needs_specs
def test_fake_validates_the_posts_route_in_wordpress_dialect(fake: FakeWordPress) -> None:
    assert posts_route_args() is not None
    auth = (fake.username, fake.application_password)
    url = fake.base_url + "/wp-json/wp/v2/posts"
    bad = {"title": "a plain string", "status": "live", "tags": ["x"], "unknown_arg": 1}
    answer = httpx.post(url, json=bad, auth=auth)
    assert answer.status_code == 400
    assert answer.json()["code"] == "rest_invalid_param"
    assert set(answer.json()["data"]["params"]) == {"title", "status", "tags"}
    assert len(fake.violations) == 3
    # WordPress's own coercions pass: numeric strings for integers, ids as a list.
    good = {"title": {"raw": "t"}, "status": "draft", "tags": [], "featured_media": "0"}
    assert httpx.post(url, json=good, auth=auth).status_code == 201


def test_refusal_carries_wordpress_message_and_params(fake: FakeWordPress) -> None:
    adapter = make(fake)
    rendition = adapter.render(sample_post())
    rendition.extra["status"] = "live"  # not a status WordPress knows
    with pytest.raises(PermanentError) as info:
        adapter.publish(rendition, new_key())
    assert "Invalid parameter(s): status" in info.value.message
    assert "status is not one of publish, future, draft, pending, private." in info.value.message
    assert fake.posts == {}
    assert fake.violations  # the fake saw the bad request for what it was


def test_featured_image_is_uploaded_raw_with_alt_text(fake: FakeWordPress, tmp_path: Path) -> None:
    adapter = make(fake)
    image = sample_image(tmp_path, alt_text="Ein Pixel, ünïcödé")
    adapter.publish(adapter.render(sample_post(media=(image,))), new_key())

    (upload,) = [r for r in fake.requests if r.path == "/wp-json/wp/v2/media"]
    assert upload.headers["content-type"] == "image/png"
    assert upload.headers["content-disposition"] == 'attachment; filename="pixel.png"'
    assert upload.body == image.read()
    (media,) = fake.media.values()
    assert media["alt_text"] == image.alt_text
    assert only_post(fake)["featured_media"] == media["id"]


def test_unsupported_image_types_are_not_sent(fake: FakeWordPress, tmp_path: Path) -> None:
    image = sample_image(tmp_path)
    tiff = type(image)(**{**image.__dict__, "content_type": "image/tiff"})
    assert make(fake).render(sample_post(media=(tiff,))).media == ()


def test_retry_after_a_failed_create_does_not_upload_again(
    fake: FakeWordPress, tmp_path: Path
) -> None:
    adapter = make(fake)
    rendition = adapter.render(sample_post(media=(sample_image(tmp_path),)))
    key = new_key()
    fake.inject(Fault())  # the upload goes through
    fake.inject(Fault())  # so does the alt text
    fake.inject(Fault(503, "database is busy"))  # the create does not
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    receipt = adapter.publish(rendition, key)
    assert len(fake.media) == 1
    assert only_post(fake)["featured_media"] == next(iter(fake.media))
    assert adapter.publish(rendition, key) == receipt  # already out: nothing sent again
    assert len(fake.posts) == 1


def test_find_existing_finds_the_marker_after_a_dropped_connection(fake: FakeWordPress) -> None:
    adapter = make(fake, status="draft")  # drafts are found too
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.inject(Fault(drop=True))
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    assert adapter.store.progress(key) is None  # no receipt: the lookup is a real search
    found = adapter.find_existing(rendition, key)
    assert found is not None
    assert found.external_id == str(only_post(fake)["id"])
    (search,) = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/posts")]
    assert f"search={key_token(key)}" in search.query
    assert "context=edit" in search.query


def test_failures_before_the_create_are_retryable_not_ambiguous(fake: FakeWordPress) -> None:
    adapter = make(fake)
    fake.inject_terms(Fault(drop=True))
    with pytest.raises(RetryableError):
        adapter.publish(adapter.render(sample_post()), new_key())
    assert fake.posts == {}


def test_verify_checks_the_user_may_publish(fake: FakeWordPress) -> None:
    identity = make(fake).verify()
    assert identity.name == "Herald Editor on 127.0.0.1"
    assert identity.detail["can_create_terms"] is True

    fake.role = "author"
    assert make(fake).verify().detail["can_create_terms"] is False

    fake.role = "contributor"  # may write drafts, not publish
    with pytest.raises(AuthError, match="publish posts"):
        make(fake).verify()
    assert make(fake, status="draft").verify().detail["roles"] == ["contributor"]

    fake.role = "subscriber"
    with pytest.raises(AuthError, match="edit posts"):
        make(fake, status="draft").verify()
    assert fake.posts == {}


def test_spaces_in_the_application_password_do_not_matter(fake: FakeWordPress) -> None:
    squeezed = fake.credentials() | {
        "application_password": fake.application_password.replace(" ", "")
    }
    adapter = WordPressAdapter.build(squeezed)
    assert adapter.verify().name


def test_a_redirect_says_where_the_site_lives(fake: FakeWordPress) -> None:
    adapter = make(fake)
    moved = {"Location": "https://www.example.org/wp-json/wp/v2/posts?x=1"}
    fake.inject(Fault(301, "Moved Permanently", moved))
    with pytest.raises(PermanentError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert "redirects to https://www.example.org;" in info.value.message
    assert fake.posts == {}


def test_an_answer_that_is_not_the_api_is_not_taken_for_one() -> None:
    # A URL that leads to some other web page: refused, or ambiguous after a create.
    page = httpx.Response(200, text="<html>Welcome</html>")
    with pytest.raises(PermanentError, match="check the channel's URL"):
        api_json(page, platform="wordpress")
    with pytest.raises(AmbiguousError):
        api_json(
            httpx.Response(201, json={"no": "id"}),
            "id",
            platform="wordpress",
            expect=int,
            ambiguous=True,
        )
    assert (
        api_json(httpx.Response(201, json={"id": 5}), "id", platform="wordpress", expect=int) == 5
    )


def readers_see(fake: FakeWordPress) -> str:
    """The published post's content as WordPress serves it (content.rendered)."""
    response = httpx.get(f"{fake.base_url}/wp-json/wp/v2/posts")
    (post,) = response.json()
    return str(post["content"]["rendered"])


def test_the_marker_adds_no_paragraph_readers_see(fake: FakeWordPress) -> None:
    adapter = make(fake, status="publish")
    rendition = adapter.render(sample_post(body="One paragraph.\n\n- a list\n- to end on"))
    key = new_key()
    adapter.publish(rendition, key)

    shown = readers_see(fake)
    # No paragraph holding nothing but a comment (wpautop wraps a bare one in <p>).
    assert not re.search(r"<p>(?:\s|<!--.*?-->)*</p>", shown), shown
    # Readers get exactly the rendition; the marker is a comment in the page source.
    assert re.sub(r"\s+", " ", shown).strip() == re.sub(
        r"\s+", " ", rendition.parts[0] + "\n" + marker(key)
    )
    # And find_existing still finds the post by it.
    found = make(fake).find_existing(rendition, key)
    assert found is not None and found.external_id == str(only_post(fake)["id"])


def test_the_fake_serves_content_as_wordpress_does() -> None:
    # wpautop, as WordPress core's own tests have it.
    assert wpautop("foo\nbar") == "<p>foo<br />\nbar</p>\n"
    assert wpautop("this is a test\n<p>and it works</p>") == (
        "<p>this is a test</p>\n<p>and it works</p>\n"
    )
    # A bare comment after the content becomes a paragraph of its own: Herald's old marker.
    assert wpautop("<p>Hello</p>\n<!-- herald-0f -->") == (
        "<p>Hello</p>\n<p><!-- herald-0f --></p>\n"
    )
    # Content with a block is served as written, delimiters gone.
    assert the_content("<p>Hello</p>\n<!-- wp:html -->\n<!-- herald-0f -->\n<!-- /wp:html -->") == (
        "<p>Hello</p>\n\n<!-- herald-0f -->\n"
    )
