"""The Hashnode adapter: the contract suite against a local GraphQL endpoint checked
against Hashnode's SDL, plus GraphQL errors inside HTTP 200, the publication check, tags
and the lookup by marker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from herald.adapters.base import AmbiguousError, AuthError, PermanentError, RetryableError
from herald.adapters.devto import delivery_marker
from herald.adapters.hashnode import HashnodeAdapter, graphql_error, tag_inputs
from tests.adapters.contract import HTTP, AdapterContract, Fault, new_key, sample_post
from tests.fakes.hashnode import FakeHashnode
from tests.fakes.specs import needs_specs


class TestHashnodeContract(AdapterContract):
    platform = "hashnode"
    capabilities = frozenset({HTTP})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeHashnode]:
        with FakeHashnode() as fake:
            yield fake

    def credentials(self, fake: FakeHashnode) -> dict[str, Any]:
        return fake.credentials()

    def bad_credentials(self, fake: FakeHashnode) -> dict[str, dict[str, Any]]:
        good = fake.credentials()
        return {
            "unknown token": good | {"token": "hn-pat-not-a-real-token-0000"},
            "someone else's publication": good | {"publication_id": fake.foreign_publication_id},
            "a publication where the user only contributes": good
            | {"publication_id": fake.team_publication_id},
        }

    def posts_on_platform(self, fake: FakeHashnode) -> list[Any]:
        return list(fake.posts)

    def secret_values(self, credentials: Any) -> list[str]:
        return [credentials["token"]]  # the publication id and URL are public

    def inject(self, fake: FakeHashnode, fault: Fault) -> None:
        fake.inject(fault)

    def requests_received(self, fake: FakeHashnode) -> int:
        return len(fake.requests)

    def unreachable_credentials(self, fake: FakeHashnode, base_url: str) -> dict[str, Any]:
        return fake.credentials() | {"api_url": base_url}


# -- what is particular to Hashnode -----------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeHashnode]:
    with FakeHashnode() as fake:
        yield fake
        assert fake.violations == [], "a request broke Hashnode's schema"


def make(fake: FakeHashnode, **credentials: Any) -> HashnodeAdapter:
    adapter = HashnodeAdapter.build(fake.credentials() | credentials)
    assert isinstance(adapter, HashnodeAdapter)
    return adapter


def sent(fake: FakeHashnode) -> list[dict[str, Any]]:
    return [r.json() for r in fake.requests]


def test_unauthenticated_inside_http_200_is_an_auth_error(fake: FakeHashnode) -> None:
    adapter = make(fake, token="hn-pat-revoked-token-1234")
    with pytest.raises(AuthError, match="UNAUTHENTICATED") as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert "hn-pat-revoked-token-1234" not in str(info.value)
    # The fake answered as Hashnode does: HTTP 200 with errors and no data.
    response = httpx.post(
        fake.base_url,
        json={"query": "query { me { id } }"},
        headers={"Authorization": "hn-pat-revoked-token-1234"},
    )
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_token_goes_without_bearer(fake: FakeHashnode) -> None:
    make(fake).verify()
    assert fake.requests[0].headers["authorization"] == fake.token
    # "Bearer <token>" is not the token: Hashnode would not know it.
    response = httpx.post(
        fake.base_url,
        json={"query": "query { me { id } }"},
        headers={"Authorization": f"Bearer {fake.token}"},
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_graphql_error_codes_map_to_adapter_errors() -> None:
    def error(code: str) -> Any:
        return graphql_error([{"message": f"m {code}", "extensions": {"code": code}}])

    assert isinstance(error("UNAUTHENTICATED"), AuthError)
    assert isinstance(error("FORBIDDEN"), AuthError)
    assert isinstance(error("INTERNAL_SERVER_ERROR"), RetryableError)
    for code in ("BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED", "NOT_FOUND", "SOMETHING_NEW"):
        refused = error(code)
        assert type(refused) is PermanentError
        assert f"m {code}" in refused.message


def test_bad_user_input_is_permanent_with_hashnodes_message(fake: FakeHashnode) -> None:
    adapter = make(fake)
    rendition = adapter.render(sample_post())
    rendition.extra["input"]["tags"] = [{"slug": f"t{i}", "name": f"T{i}"} for i in range(6)]
    with pytest.raises(PermanentError, match="A post can have at most 5 tags"):
        adapter.publish(rendition, new_key())
    assert fake.posts == []


def test_verify_checks_the_publication_belongs_to_the_user(fake: FakeHashnode) -> None:
    identity = make(fake).verify()
    assert identity.name == "@ada → Ada's notes"
    assert identity.detail["role"] == "OWNER"
    with pytest.raises(AuthError, match="not one of @ada's publications"):
        make(fake, publication_id=fake.foreign_publication_id).verify()
    with pytest.raises(AuthError, match="only owners and editors"):
        make(fake, publication_id=fake.team_publication_id).verify()
    assert fake.posts == []


def test_verify_follows_the_publications_pages(fake: FakeHashnode) -> None:
    for i in range(45):
        fake.add_publication(f"Blog {i}", f"b{i}.example", "EDITOR")
    last = fake.add_publication("The last one", "last.example", "EDITOR")
    identity = make(fake, publication_id=last).verify()
    assert identity.detail["publication"] == "The last one"
    assert len(fake.requests) == 3  # 48 publications, 20 a page
    assert [r["variables"]["after"] for r in sent(fake)] == [None, "19", "39"]


def test_publish_sends_title_markdown_tags_canonical_and_subtitle(fake: FakeHashnode) -> None:
    adapter = make(fake)
    post = sample_post()
    key = new_key()
    receipt = adapter.publish(adapter.render(post), key)
    (request,) = sent(fake)
    assert "publishPost(input: $input)" in request["query"]
    post_input = request["variables"]["input"]
    assert post_input["title"] == post.title
    assert post_input["publicationId"] == fake.publication_id
    assert post_input["originalArticleURL"] == post.canonical_url
    assert post_input["subtitle"] == post.excerpt
    assert post_input["tags"] == [
        {"slug": "python", "name": "python"},
        {"slug": "release-notes", "name": "release-notes"},
    ]
    assert post_input["contentMarkdown"].startswith(post.body.rstrip("\n"))
    assert post_input["contentMarkdown"].rstrip().endswith(delivery_marker(key))
    (stored,) = fake.posts
    assert receipt.external_id == stored["id"]
    assert receipt.url == stored["url"]


def test_tags_become_slug_and_name() -> None:
    tags = ("Python", "Release Notes", "C++", "日本", "python", "a", "b", "c")
    assert tag_inputs(tags) == [
        {"slug": "python", "name": "Python"},
        {"slug": "release-notes", "name": "Release Notes"},
        {"slug": "c", "name": "C++"},
        {"slug": "a", "name": "a"},
        {"slug": "b", "name": "b"},
    ]


def test_delisted_setting_is_sent(fake: FakeHashnode) -> None:
    adapter = HashnodeAdapter.build(fake.credentials(), {"delisted": True})
    adapter.publish(adapter.render(sample_post()), new_key())
    assert fake.posts[0]["settings"] == {"delisted": True}


def test_find_existing_finds_the_marker_after_a_lost_answer(fake: FakeHashnode) -> None:
    adapter = make(fake)
    rendition = adapter.render(sample_post())
    other = adapter.publish(rendition, new_key())
    key = new_key()
    fake.drop_next()
    with pytest.raises(AmbiguousError):
        adapter.publish(rendition, key)
    found = adapter.find_existing(rendition, key)
    assert found is not None
    assert found.external_id == fake.posts[-1]["id"] != other.external_id
    assert "publication(id: $id)" in sent(fake)[-1]["query"]
    assert adapter.find_existing(rendition, new_key()) is None


def test_lookup_that_times_out_is_retryable_not_ambiguous(fake: FakeHashnode) -> None:
    adapter = HashnodeAdapter.build(fake.credentials(), {"read_timeout": 0.3})
    fake.hang_next()
    with pytest.raises(RetryableError):
        adapter.find_existing(adapter.render(sample_post()), new_key())


@needs_specs
def test_fake_refuses_a_field_the_schema_lacks(fake: FakeHashnode) -> None:
    bad = "mutation P($input: PublishPostInput!) { publishPost(input: $input) { post { body } } }"
    variables = {"input": {"title": "t", "contentMarkdown": "x", "publicationId": "0" * 24}}
    response = httpx.post(
        fake.base_url,
        json={"query": bad, "variables": variables},
        headers={"Authorization": fake.token},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert any("Cannot query field 'body'" in v for v in fake.violations)
    assert fake.posts == []
    fake.violations.clear()


@needs_specs
def test_fake_refuses_variables_of_the_wrong_type(fake: FakeHashnode) -> None:
    query = "mutation P($input: PublishPostInput!) { publishPost(input: $input) { post { id } } }"
    variables = {
        "input": {
            "title": "t",
            "contentMarkdown": "x",
            "publicationId": fake.publication_id,
            "tags": ["python"],  # tags are {slug, name} objects, not strings
            "canonicalUrl": "https://example.org",  # the field is originalArticleURL
        }
    }
    response = httpx.post(
        fake.base_url,
        json={"query": query, "variables": variables},
        headers={"Authorization": fake.token},
    )
    assert response.status_code == 400
    problems = " ".join(fake.violations)
    assert "tags" in problems
    assert "canonicalUrl" in problems
    fake.violations.clear()
