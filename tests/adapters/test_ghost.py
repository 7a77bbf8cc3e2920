"""The Ghost adapter: the contract suite against the local fake, plus what is particular
to Ghost (the Admin API JWT, ``?source=html``, tags by name and the internal tag that
find_existing filters on, the feature image)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
import pytest

from herald.adapters.base import AmbiguousError, PermanentError, RetryableError
from herald.adapters.ghost import (
    GhostAdapter,
    admin_token,
    internal_tag,
    internal_tag_slug,
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
from tests.fakes.ghost import FakeGhost
from tests.fakes.specs import needs_specs


class TestGhostContract(AdapterContract):
    platform = "ghost"
    capabilities = frozenset({HTTP, MEDIA})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeGhost]:
        with FakeGhost() as fake:
            yield fake

    def credentials(self, fake: FakeGhost) -> dict[str, Any]:
        return fake.credentials()

    def bad_credentials(self, fake: FakeGhost) -> dict[str, dict[str, Any]]:
        other_secret = "ab" * 32
        return {
            "wrong secret": {
                "url": fake.base_url,
                "admin_api_key": f"{fake.key_id}:{other_secret}",
            },
            "unknown key id": {"url": fake.base_url, "admin_api_key": f"{'0' * 24}:{fake.secret}"},
        }

    def secret_values(self, credentials: Any) -> list[str]:
        # The site URL is not a secret; the key and its secret half are.
        key = credentials["admin_api_key"]
        return [key, key.split(":", 1)[1]]

    def posts_on_platform(self, fake: FakeGhost) -> list[Any]:
        return list(fake.posts.values())

    def media_on_platform(self, fake: FakeGhost) -> list[dict[str, Any]]:
        return fake.images_on_posts()

    def inject(self, fake: FakeGhost, fault: Fault) -> None:
        fake.inject(fault)

    def requests_received(self, fake: FakeGhost) -> int:
        return len(fake.requests)

    def unreachable_credentials(self, fake: FakeGhost, base_url: str) -> dict[str, Any]:
        return fake.credentials() | {"url": base_url}


# -- what is particular to Ghost -------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeGhost]:
    with FakeGhost() as fake:
        yield fake


def make(fake: FakeGhost, **settings: Any) -> GhostAdapter:
    return GhostAdapter.build(fake.credentials(), settings)


def only_post(fake: FakeGhost) -> dict[str, Any]:
    (post,) = fake.posts.values()
    return post


def browse(fake: FakeGhost, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return httpx.get(fake.base_url + "/ghost/api/admin/posts/", headers=headers)


def signed(
    fake: FakeGhost, claims: dict[str, Any], secret: bytes | None = None, **header: Any
) -> str:
    key = bytes.fromhex(fake.secret) if secret is None else secret
    return "Ghost " + jwt.encode(
        claims, key, algorithm="HS256", headers={"kid": fake.key_id} | header
    )


def test_adapter_token_has_the_claims_ghost_checks(fake: FakeGhost) -> None:
    adapter = make(fake)
    adapter.publish(adapter.render(sample_post()), new_key())
    (request,) = fake.requests
    scheme, token = request.headers["authorization"].split(" ")
    assert scheme == "Ghost"
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": fake.key_id}
    claims = jwt.decode(token, bytes.fromhex(fake.secret), algorithms=["HS256"], audience="/admin/")
    assert set(claims) == {"iat", "exp", "aud"}
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert abs(claims["iat"] - time.time()) < 60
    assert request.headers["accept-version"] == "v5.0"
    assert browse(fake, "Ghost " + admin_token(fake.admin_api_key)).status_code == 200


def test_fake_refuses_tokens_ghost_would_refuse(fake: FakeGhost) -> None:
    now = int(time.time())
    good = {"iat": now, "exp": now + 300, "aud": "/admin/"}
    assert browse(fake, signed(fake, good)).status_code == 200

    refusals = {
        "wrong secret": signed(fake, good, secret=bytes.fromhex("cd" * 32)),
        # A classic mistake: the secret's hex text used as the key, not its bytes.
        "secret not hex-decoded": signed(fake, good, secret=fake.secret.encode()),
        "lives longer than 5 minutes": signed(fake, good | {"exp": now + 301}),
        "expired": signed(fake, {"iat": now - 400, "exp": now - 100, "aud": "/admin/"}),
        "older than 5 minutes": signed(fake, good | {"iat": now - 301, "exp": now + 1}),
        "for the Content API": signed(fake, good | {"aud": "/content/"}),
        "no exp": signed(fake, {"iat": now, "aud": "/admin/"}),
        "unknown kid": signed(fake, good, kid="0" * 24),
    }
    for description, authorization in refusals.items():
        answer = browse(fake, authorization)
        assert answer.status_code == 401, description
        error = answer.json()["errors"][0]
        assert error["type"] == "UnauthorizedError", description

    assert browse(fake, "Bearer " + admin_token(fake.admin_api_key)).status_code == 401
    assert browse(fake, "Ghost not-a-jwt").status_code == 400
    assert browse(fake, None).status_code == 403
    assert fake.posts == {}


def test_html_is_sent_as_html_and_sanitised(fake: FakeGhost) -> None:
    adapter = make(fake)
    body = (
        "Some **bold**.\n\n<script>alert('x')</script>\n\n<a href=\"javascript:alert(1)\">x</a>\n"
    )
    rendition = adapter.render(sample_post(body=body))
    html = rendition.parts[0]
    assert "<strong>bold</strong>" in html
    assert "<script" not in html
    assert "javascript:" not in html
    adapter.publish(rendition, new_key())
    (request,) = fake.requests
    assert request.query == "source=html"
    assert only_post(fake)["html"] == html  # without ?source=html Ghost would save nothing


def test_post_body_fits_ghosts_schema_and_carries_the_post(fake: FakeGhost) -> None:
    adapter = make(fake, status="draft")
    post = sample_post(excerpt="Long " * 100)
    key = new_key()
    adapter.publish(adapter.render(post), key)
    (request,) = fake.requests
    sent = request.json()["posts"][0]
    assert sent["title"] == post.title
    assert sent["status"] == "draft"
    assert sent["canonical_url"] == post.canonical_url
    assert len(sent["custom_excerpt"]) <= 300
    assert sent["custom_excerpt"].endswith("…")
    assert sent["tags"] == [{"name": t} for t in post.tags] + [{"name": internal_tag(key)}]
    assert fake.violations == []


def test_tags_go_by_name_and_are_reused_with_a_hidden_tag_per_delivery(fake: FakeGhost) -> None:
    adapter = make(fake)
    first_key, second_key = new_key(), new_key()
    adapter.publish(adapter.render(sample_post(tags=("Python", "python", "日本"))), first_key)
    adapter.publish(adapter.render(sample_post(tags=("python",))), second_key)
    names = sorted(tag["name"] for tag in fake.tags.values())
    assert names == sorted(["Python", "日本", internal_tag(first_key), internal_tag(second_key)])
    hidden = [tag for tag in fake.tags.values() if tag["visibility"] == "internal"]
    assert {tag["slug"] for tag in hidden} == {
        internal_tag_slug(first_key),
        internal_tag_slug(second_key),
    }
    assert all(slug.startswith("hash-herald-") for slug in (t["slug"] for t in hidden))


def test_feature_image_is_uploaded_then_set_with_its_alt_text(
    fake: FakeGhost, tmp_path: Path
) -> None:
    adapter = make(fake)
    image = sample_image(tmp_path, alt_text="Ein Pixel, ünïcödé")
    adapter.publish(adapter.render(sample_post(media=(image,))), new_key())
    upload, create = fake.requests
    assert upload.path == "/ghost/api/admin/images/upload/"
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="pixel.png"' in upload.body
    assert f'name="ref"\r\n\r\n{image.id}'.encode() in upload.body
    (stored,) = fake.images
    assert stored["size"] == image.size
    post = only_post(fake)
    assert post["feature_image"] == stored["url"]
    assert post["feature_image_alt"] == image.alt_text
    assert create.json()["posts"][0]["feature_image"] == stored["url"]


def test_retry_after_a_failed_create_does_not_upload_again(fake: FakeGhost, tmp_path: Path) -> None:
    adapter = make(fake)
    rendition = adapter.render(sample_post(media=(sample_image(tmp_path),)))
    key = new_key()
    fake.inject(Fault())  # the upload goes through
    fake.inject(Fault(503, "Ghost is restarting"))
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    adapter.publish(rendition, key)
    assert len(fake.images) == 1
    assert only_post(fake)["feature_image"] == fake.images[0]["url"]


def test_upload_that_dies_after_sending_is_retryable(fake: FakeGhost, tmp_path: Path) -> None:
    adapter = make(fake)
    fake.inject(Fault(drop=True))
    with pytest.raises(RetryableError):
        adapter.publish(adapter.render(sample_post(media=(sample_image(tmp_path),))), new_key())
    assert fake.posts == {}


def test_find_existing_filters_on_the_internal_tag_after_a_dropped_connection(
    fake: FakeGhost,
) -> None:
    adapter = make(fake, status="draft")  # the default filter would hide drafts
    rendition = adapter.render(sample_post())
    key = new_key()
    fake.inject(Fault(drop=True))
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    assert adapter.store.progress(key) is None  # no receipt: the lookup is a real one
    found = adapter.find_existing(rendition, key)
    assert found is not None
    assert found.external_id == only_post(fake)["id"]
    lookup = fake.requests[-1]
    assert lookup.method == "GET"
    assert f"tag%3A{internal_tag_slug(key)}" in lookup.query
    assert adapter.find_existing(rendition, new_key()) is None


@needs_specs
def test_validation_error_is_permanent_with_ghosts_message_and_context(fake: FakeGhost) -> None:
    adapter = make(fake)
    with pytest.raises(PermanentError) as info:
        adapter.publish(adapter.render(sample_post(title="T" * 2001)), new_key())
    assert "ghost answered 422: Validation error, cannot save post." in info.value.message
    assert " — posts/0/title: " in info.value.message  # Ghost's context, kept
    assert fake.posts == {}
    assert fake.violations


def test_verify_names_the_site_and_proves_the_key(fake: FakeGhost) -> None:
    identity = make(fake).verify()
    assert identity.name == fake.title
    assert identity.detail["version"] == "5.96"
    site, posts = fake.requests
    assert "authorization" not in site.headers  # /site/ is public
    assert posts.headers["authorization"].startswith("Ghost ")
    assert fake.posts == {}
