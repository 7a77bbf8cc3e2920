"""refresh_seo: how a draft made outside the API (an agent's) gets its metrics."""

from __future__ import annotations

import uuid

from herald.agents.providers.base import GenerationRequest, ProviderConfig, SourceText
from herald.agents.providers.digest import DigestProvider
from herald.posts.models import Post, PostState
from herald.posts.service import refresh_seo
from tests.conftest import Account, SessionFactory


def test_a_digest_draft_gets_its_metrics(account: Account, db: SessionFactory) -> None:
    item = SourceText(
        id=uuid.uuid4(),
        title="Lanes open",
        text="The new bicycle lanes opened today. Riders say the lanes feel safe.",
        link="https://news.example/lanes",
        source_name="City News",
    )
    draft = (
        DigestProvider(ProviderConfig(kind="digest", name="digest"))
        .generate(
            GenerationRequest(topic="Cycling", keywords=["lanes"], items=[item], target_words=60)
        )
        .draft
    )
    with db() as session:
        post = Post(
            workspace_id=account.workspace_id,
            title=draft.title,
            body=draft.body,
            excerpt=draft.excerpt,
            short_body=draft.short_text,
            keywords=["lanes"],
            language="en",
            state=PostState.IN_REVIEW,
        )
        refresh_seo(post)
        session.add(post)
        session.flush()
        post_id = post.id
    with db() as session:
        stored = session.get(Post, post_id)
        assert stored is not None and stored.seo is not None
        # The intro names it, the heading and both sentences hold it.
        assert stored.seo["keyword_occurrences"] == {"lanes": 4}
        assert stored.seo["links"] == {"total": 1, "external": 1}
        assert stored.seo["headings"]["levels_in_order"] is True
        assert stored.seo["word_count"] > 20
