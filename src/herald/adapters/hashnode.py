"""Hashnode: Markdown posts in one of your publications, through the GraphQL API.

- **Request.** ``POST https://gql.hashnode.com`` with the mutation
  ``publishPost(input: PublishPostInput!)``: title, ``contentMarkdown``,
  ``publicationId``, tags as ``[{slug, name}]``, ``originalArticleURL`` (the canonical
  URL) and ``subtitle`` (the excerpt). The personal access token goes in
  ``Authorization`` as it is, without ``Bearer``.
- **Errors.** GraphQL errors come in the body, ``{"errors": [{"message", "extensions":
  {"code"}}], "data": null}``, usually with HTTP 200: ``UNAUTHENTICATED`` and
  ``FORBIDDEN`` mean the token or the publication no longer work (AuthError),
  ``INTERNAL_SERVER_ERROR`` is retried, anything else (``BAD_USER_INPUT``,
  ``GRAPHQL_VALIDATION_FAILED``, ``NOT_FOUND``) is refused with Hashnode's message.
  HTTP errors (429 from the edge, 5xx) map as for any platform.
- **verify** asks ``me`` for the user and their publications, and checks the channel's
  publication is one of them, with a role that may publish (owner or editor).
- **No idempotency key.** The delivery's key goes at the end of the Markdown as an HTML
  comment. ``find_existing`` returns the receipt remembered after a successful publish,
  else looks for that comment in the publication's newest posts.
- **Images.** The public API takes no uploads, so attached images are not sent; images
  already in the Markdown by URL stay.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pydantic import Field, HttpUrl

from herald.adapters import base
from herald.adapters.devto import delivery_marker
from herald.adapters.http import MAX_MESSAGE, HttpAdapter, HttpSettings
from herald.adapters.registry import register

PLATFORM = "hashnode"
MAX_TAGS = 5  # Hashnode's editor takes at most five tags a post
LOOKUP_PAGE = 20  # newest posts of the publication searched by find_existing
PUBLICATIONS_PAGE = 20
MAX_PUBLICATION_PAGES = 10
# Hashnode's API docs (apidocs.hashnode.com, "Rate limits"): 20,000 queries and 500
# mutations per minute.
REQUESTS_PER_MINUTE = 500

AUTH_CODES = frozenset({"UNAUTHENTICATED", "FORBIDDEN"})
RETRY_CODES = frozenset({"INTERNAL_SERVER_ERROR"})
PUBLISHING_ROLES = frozenset({"OWNER", "EDITOR"})  # contributors only submit drafts

ME = """
query HeraldMe($first: Int!, $after: String) {
  me {
    id
    username
    publications(first: $first, after: $after) {
      edges { role node { id title url } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

PUBLISH = """
mutation HeraldPublish($input: PublishPostInput!) {
  publishPost(input: $input) { post { id slug url } }
}
"""

RECENT_POSTS = """
query HeraldRecentPosts($id: ObjectId!, $first: Int!) {
  publication(id: $id) {
    posts(first: $first) { edges { node { id slug url content { markdown } } } }
  }
}
"""


def tag_inputs(tags: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    """``[{slug, name}]`` for new or existing tags: the slug in lower-case ASCII words
    joined by hyphens, the name as written; at most five, none without a slug."""
    out: list[dict[str, str]] = []
    for tag in tags:
        ascii_tag = unicodedata.normalize("NFKD", tag).encode("ascii", "ignore").decode()
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_tag.lower()).strip("-")
        if slug and all(t["slug"] != slug for t in out):
            out.append({"slug": slug, "name": tag.strip()})
    return out[:MAX_TAGS]


def graphql_error(errors: list[Any]) -> base.AdapterError:
    """The adapter error for a GraphQL ``errors`` list, in Hashnode's words."""
    codes: set[str] = set()
    messages: list[str] = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        extensions = error.get("extensions")
        code = extensions.get("code") if isinstance(extensions, dict) else None
        if isinstance(code, str):
            codes.add(code)
        if isinstance(error.get("message"), str):
            messages.append(error["message"])
    label = f" ({', '.join(sorted(codes))})" if codes else ""
    message = f"{PLATFORM} refused{label}: {'; '.join(messages) or 'no message'}"[:MAX_MESSAGE]
    if codes & AUTH_CODES:
        return base.AuthError(message)
    if codes & RETRY_CODES:
        return base.RetryableError(message)
    return base.PermanentError(message)


class HashnodeCredentials(base.StrictModel):
    token: str = Field(
        min_length=1,
        description="Personal access token from Account settings → Developer.",
    )
    publication_id: str = Field(
        pattern=r"^[0-9a-f]{24}$",
        description="The publication to post in: the id in your blog dashboard's address, "
        "hashnode.com/<publication id>/dashboard.",
    )
    api_url: HttpUrl = Field(
        HttpUrl("https://gql.hashnode.com"), description="Hashnode's GraphQL endpoint."
    )


class HashnodeSettings(HttpSettings):
    delisted: bool = Field(
        False, description="Keep the posts out of Hashnode's public feed (still on your blog)."
    )


@register
class HashnodeAdapter(HttpAdapter[HashnodeCredentials, HashnodeSettings]):
    platform = PLATFORM
    display_name = "Hashnode"
    credentials_model = HashnodeCredentials
    settings_model = HashnodeSettings
    limits = base.Limits(
        max_length=None,
        max_media=0,
        requests_per_minute=REQUESTS_PER_MINUTE,
        buckets=(
            base.Bucket(
                "mutations",
                500,
                60,
                base.Scope.ACCOUNT,
                source="apidocs.hashnode.com, Rate limits (500 mutations per minute)",
            ),
        ),
    )

    def budget_scope(self, scope: base.Scope) -> str | None:
        return f"{self.credentials.api_url}|{self.credentials.token}"

    def _graphql(self, query: str, variables: dict[str, Any], *, read: bool) -> dict[str, Any]:
        """Run one operation; its ``data``, or the adapter error its ``errors`` mean."""
        request = self.build_request(
            "POST",
            str(self.credentials.api_url),
            json={"query": query, "variables": variables},
            headers={"Authorization": self.credentials.token, "Accept": "application/json"},
        )
        # A query posts nothing: an answer that never came is worth another try.
        response = self.send(request, may_post=not read)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # After a mutation the post may exist all the same.
            raise (base.PermanentError if read else base.AmbiguousError)(
                f"{PLATFORM} answered {response.status_code} with something other than a "
                "GraphQL response: is the API URL right?"
            )
        data = body.get("data")
        errors = body.get("errors")
        complete = isinstance(data, dict) and all(v is not None for v in data.values())
        if isinstance(errors, list) and errors and not complete:
            raise graphql_error(errors)
        if not isinstance(data, dict):
            raise base.PermanentError(f"{PLATFORM} answered without data or errors")
        return data

    # -- the contract -------------------------------------------------------------------

    def verify(self) -> base.Identity:
        after: str | None = None
        username = "?"
        for _ in range(MAX_PUBLICATION_PAGES):
            variables = {"first": PUBLICATIONS_PAGE, "after": after}
            me = self._graphql(ME, variables, read=True)["me"]
            username = me["username"]
            publications = me["publications"]
            for edge in publications["edges"]:
                node = edge["node"]
                if node["id"] != self.credentials.publication_id:
                    continue
                if edge.get("role") not in PUBLISHING_ROLES:
                    raise base.AuthError(
                        f"@{me['username']} is {str(edge.get('role')).lower()} of "
                        f"{node.get('title')!r}: only owners and editors can publish there"
                    )
                return base.Identity(
                    name=f"@{me['username']} → {node.get('title') or node['id']}",
                    detail={
                        "user_id": me["id"],
                        "username": me["username"],
                        "publication": node.get("title"),
                        "publication_url": node.get("url"),
                        "role": edge.get("role"),
                    },
                )
            page = publications.get("pageInfo") or {}
            after = page.get("endCursor")
            if not page.get("hasNextPage") or not after:
                break
        raise base.AuthError(
            f"publication {self.credentials.publication_id} is not one of "
            f"@{username}'s publications"
        )

    def render(self, post: base.PostContent) -> base.Rendition:
        if not post.title.strip():
            raise base.PermanentError("the post has no title: Hashnode needs one")
        if not post.body.strip():
            raise base.PermanentError("the post has no body: Hashnode needs some Markdown")
        fields: dict[str, Any] = {"tags": tag_inputs(post.tags)}
        if post.excerpt:
            fields["subtitle"] = post.excerpt
        if post.canonical_url:
            fields["originalArticleURL"] = post.canonical_url
        return base.Rendition(
            format="markdown", parts=(post.body,), title=post.title.strip(), extra={"input": fields}
        )

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        body = rendition.parts[0].rstrip("\n") + "\n\n" + delivery_marker(idempotency_key) + "\n"
        post_input: dict[str, Any] = {
            "title": rendition.title,
            "contentMarkdown": body,
            "publicationId": self.credentials.publication_id,
            **rendition.extra.get("input", {}),
        }
        if self.settings.delisted:
            post_input["settings"] = {"delisted": True}
        data = self._graphql(PUBLISH, {"input": post_input}, read=False)
        post = (data.get("publishPost") or {}).get("post")
        if not isinstance(post, dict) or not post.get("id"):
            raise base.AmbiguousError(f"{PLATFORM} accepted the post but sent back no id")
        receipt = self._receipt(post)
        self.store.save_receipt(idempotency_key, receipt)
        return receipt

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        return self.store.receipt(idempotency_key) or self._search(idempotency_key)

    def _search(self, idempotency_key: str) -> base.Receipt | None:
        """Look for the delivery's marker among the publication's newest posts."""
        marker = delivery_marker(idempotency_key)
        variables = {"id": self.credentials.publication_id, "first": LOOKUP_PAGE}
        publication = self._graphql(RECENT_POSTS, variables, read=True)["publication"]
        if publication is None:
            return None  # no such publication (any more): nothing was posted there
        for edge in publication["posts"]["edges"]:
            node = edge["node"]
            if marker in ((node.get("content") or {}).get("markdown") or ""):
                return self._receipt(node)
        return None

    @staticmethod
    def _receipt(post: dict[str, Any]) -> base.Receipt:
        url = post.get("url")
        return base.Receipt(
            external_id=str(post["id"]),
            url=url if isinstance(url, str) else None,
            data={"slug": post.get("slug")},
        )
