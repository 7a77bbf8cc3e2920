"""One delivery attempt, the body of the ``deliver`` task: claim, read, prepare, send,
record.

No transaction is open while the platform is called: the claim commits first (with the
reads the attempt needs), the outcome is recorded in a second transaction. Both moves
are :mod:`herald.publishing.actions`'; this module decides what an adapter's answer
means (:mod:`herald.publishing.outcomes`).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from herald.adapters.base import (
    Adapter,
    AdapterError,
    AmbiguousError,
    AuthError,
    MediaItem,
    PermanentError,
    PostContent,
    Receipt,
    RetryableError,
)
from herald.channels import budgets
from herald.channels.service import build_adapter
from herald.core import direct
from herald.core.clock import utcnow
from herald.core.crypto import CredentialsUnreadable
from herald.core.http import shared_client
from herald.core.tx import Tx, core_scope
from herald.media.service import media_items
from herald.posts.models import Post
from herald.publishing import actions, statements
from herald.publishing.actions import ChangedRow
from herald.publishing.lease import keeper, lease_length
from herald.publishing.outcomes import (
    Failed,
    HoldForReconnect,
    NotPrepared,
    Outcome,
    Published,
    RetryLater,
    Unconfirmed,
    WaitForBudget,
)
from herald.publishing.progress import PROGRESS_ROWS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A delivery this worker now owns, with everything needed to send and record it."""

    publication_id: uuid.UUID
    row: ChangedRow  # the claim's RETURNING: attempt, max_attempts, idempotency_key...
    content: PostContent
    adapter: Adapter[Any, Any]
    retry_seconds: tuple[float, float]  # the channel's back-off base and maximum


@dataclass(frozen=True)
class Stored:
    """What a claimed delivery needs from the database: its post and channel columns
    (``statements.delivery_content``), the post's tags and images."""

    found: Any
    tags: tuple[str, ...]
    media: tuple[MediaItem, ...]


def attempt_delivery(publication_id: uuid.UUID) -> Outcome | None:
    """Claim, send, record: the body of the ``deliver`` task. None when not claimed."""
    # Plain Core transactions: this path loads no ORM object (see core_scope).
    with core_scope() as tx:
        # The claim's lease runs from this instant or a little later (not from before a
        # connection was opened: a first one can take a while).
        claimed_at = utcnow()
        row = actions.claim(tx, publication_id)
        if row is None:
            return None
        # In the claim's own transaction: a transaction costs more CPU than these
        # one-row reads hold the (SQLite) writer's lock.
        stored = read_delivery(tx, row)
    if utcnow() >= claimed_at + lease_length():
        # The claim's commit came back after its lease ran out (this host lost the
        # database for a while: a network cut, a failover). The reconciler may have given
        # the delivery to another worker meanwhile: sending it here too would post it
        # twice where the platform cannot tell. Nothing was sent: a retry, recorded only
        # if the attempt is still this worker's (the compare-and-set decides), due again
        # at once.
        late: Outcome = RetryLater(
            "the database confirmed the claim only after its lease had run out; not sent"
        )
        with core_scope() as tx:
            actions.record_outcome(tx, publication_id, row, late, retry_seconds=(0.0, 0.0))
        return late
    # The lease is renewed until the outcome is recorded, however long the platform
    # takes: the reconciler re-examines only attempts whose worker stopped.
    with keeper.kept(publication_id, row.attempt, claimed_at):
        retry_seconds = (0.0, 0.0)
        try:
            claimed = prepare(publication_id, row, stored)
        except NotPrepared as exc:
            outcome: Outcome = Failed(str(exc))
        else:
            retry_seconds = claimed.retry_seconds
            # No transaction is open while we talk to the platform.
            outcome = _send(
                claimed.adapter, claimed.content, row.idempotency_key, row.attempt, row.channel_id
            )
        with core_scope() as tx:
            actions.record_outcome(tx, publication_id, row, outcome, retry_seconds=retry_seconds)
    return outcome


def post_content(session: Session, post: Post) -> PostContent:
    """What an adapter sees of a post."""
    media = media_items(session.connection(), post.id) if post.media_rows else ()
    return _content(post.id, post, post.tags, media)


def _content(
    post_id: uuid.UUID, text: Any, tags: Iterable[str], media: tuple[MediaItem, ...]
) -> PostContent:
    """A post's :class:`PostContent` from anything with its text columns (title, body,
    excerpt, canonical_url, short_body): the ORM object, or the delivery's one-row read."""
    return PostContent(
        id=post_id,
        title=text.title,
        body=text.body,
        excerpt=text.excerpt,
        tags=tuple(tags),
        canonical_url=text.canonical_url,
        media=media,
        short_body=text.short_body,
    )


def read_delivery(tx: Tx, row: ChangedRow) -> Stored:
    """The post and channel of a claimed delivery, in the claim's transaction.

    Plain column reads (post and channel in one row, then tags, then images only if the
    post has any): this runs once per delivery, so it skips the ORM's object loading.
    """
    connection = tx.connection()
    (found,) = direct.execute(
        connection,
        statements.delivery_content(),
        {"p_post_id": row.post_id, "p_channel_id": row.channel_id},
    )
    tags = direct.execute(connection, statements.tags(), {"p_post_id": row.post_id})
    media = media_items(connection, row.post_id) if found.has_media else ()
    return Stored(found, tuple(tag for (tag,) in tags), media)


def prepare(publication_id: uuid.UUID, row: ChangedRow, stored: Stored) -> Claim:
    """Build the channel's adapter for a claimed delivery (after the claim committed:
    decrypting and validating its settings need no lock)."""
    found = stored.found
    content = _content(row.post_id, found, stored.tags, stored.media)
    unusable = "the channel's stored configuration is unusable"
    try:
        adapter = build_adapter(
            found.platform,
            found.credentials_encrypted,
            found.settings,
            row.channel_id,
            progress_rows=PROGRESS_ROWS,
        )
    except ValidationError as exc:
        # Field names and reasons only: pydantic's own text repeats the (secret) input.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise NotPrepared(f"{unusable}: {problems}") from None
    except (CredentialsUnreadable, ValueError) as exc:
        raise NotPrepared(f"{unusable}: {exc}") from exc
    except Exception as exc:  # a bug in the adapter: this delivery fails, it does not loop
        # Only the exception's type: its text may hold the decrypted credentials.
        log.exception("building the %s adapter failed", found.platform)
        raise NotPrepared(
            f"the {found.platform} adapter could not be built ({type(exc).__name__}); "
            "the worker's log has the details"
        ) from exc
    return Claim(
        publication_id=publication_id,
        row=row,
        content=content,
        adapter=adapter,
        retry_seconds=(found.retry_base_seconds, found.retry_max_seconds),
    )


def _send(
    adapter: Any, content: PostContent, key: str, attempt: int, channel_id: uuid.UUID
) -> Outcome:
    """One attempt's calls to the adapter, and what their result means.

    Before anything goes out, the channel's rate budget pays for the rendition (its
    parts and images); a budget that cannot sends nothing and the delivery waits for
    it (:class:`WaitForBudget`). Every answer the adapter gets corrects the budget.

    An exception the adapter did not classify (a bug, or a library error it did not
    expect) ends the delivery at once: it would fail the same way again. Before anything
    was sent (render) it fails; once a request may have gone out it is unconfirmed,
    unless a look-up finds the post.
    """
    try:
        rendition = adapter.render(content)
    except AdapterError as exc:
        return Failed(exc.message)
    except Exception as exc:
        return Failed(_unexpected(adapter, exc, "render"))
    # What the adapter reads from its store before sending (this delivery's progress and
    # the cached login, one read, kept by the store) is read first: the budget's take
    # must be the last thing before the request, or a slow read between them lets
    # requests paid for apart reach the platform together.
    with contextlib.suppress(Exception):  # the adapter reads it again, and says why
        adapter.store.progress(key)
    # So is the process's HTTP client, which its first request builds (~20 ms, far more
    # under load, every first delivery of the pool waiting on it): built after the take,
    # the first takes spread over that time and their requests go out in one burst.
    shared_client()
    # After the claim committed, outside any transaction (Redis is a network call too).
    wait = budgets.take(adapter, channel_id, rendition, key)
    if wait is not None:
        return WaitForBudget(wait.reason, until=wait.until)
    budgets.watch(adapter, channel_id)
    if attempt > 1:
        # An earlier attempt may have gone through: look before sending again.
        try:
            existing = adapter.find_existing(rendition, key)
        except AdapterError:
            existing = None
        except Exception as exc:
            # It cannot look, and sending blind might post twice: a person decides.
            return Unconfirmed(_unexpected(adapter, exc, "find_existing"))
        if existing is not None:
            return Published(receipt=existing)
    try:
        return Published(receipt=adapter.publish(rendition, key))
    except RetryableError as exc:
        return RetryLater(exc.message, retry_after=exc.retry_after)
    except PermanentError as exc:
        return Failed(exc.message)
    except AuthError as exc:
        return HoldForReconnect(exc.message)
    except AmbiguousError as exc:
        return _after_ambiguous(adapter, rendition, key, exc.message)
    except Exception as exc:
        error = _unexpected(adapter, exc, "publish")
        existing = _look_up(adapter, rendition, key)
        if existing is not None:
            return Published(receipt=existing)
        return Unconfirmed(f"{error}; it may have been posted")


def _after_ambiguous(adapter: Any, rendition: Any, key: str, message: str) -> Outcome:
    if adapter.honours_idempotency_key:
        # The platform deduplicates by our key: sending again cannot post twice.
        return RetryLater(message)
    existing = _look_up(adapter, rendition, key)
    if existing is not None:
        return Published(receipt=existing)
    return Unconfirmed(message)


def _look_up(adapter: Any, rendition: Any, key: str) -> Receipt | None:
    """The post sent with this key, or None when it cannot be told (whatever the look-up
    raises: it only ever decides between "published" and "unconfirmed")."""
    try:
        found: Receipt | None = adapter.find_existing(rendition, key)
    except AdapterError:
        return None
    except Exception as exc:
        _unexpected(adapter, exc, "find_existing")
        return None
    return found


MAX_ERROR = 500
_MASK = "[redacted]"


def _unexpected(adapter: Any, exc: Exception, step: str) -> str:
    """Log an exception the adapter did not classify, with its traceback, and say what to
    record: its type and message, the channel's credentials masked out of it."""
    log.error(
        "the %s adapter raised %s in %s, which it does not classify; the delivery is "
        "not tried again",
        adapter.platform,
        type(exc).__name__,
        step,
        exc_info=exc,
    )
    text = str(exc)
    for secret in _credential_strings(adapter):
        text = text.replace(secret, _MASK)
    return f"unexpected {type(exc).__name__} in the {adapter.platform} adapter's {step}: {text}"[
        :MAX_ERROR
    ]


def _credential_strings(adapter: Any) -> list[str]:
    """Every string in the adapter's credentials long enough to be a secret, longest
    first (a token inside a URL is masked with the URL)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and len(value) >= 6:
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    try:
        walk(adapter.credentials.model_dump(mode="json"))
    except Exception:  # no usable credentials model: mask nothing rather than fail here
        return []
    return sorted(set(found), key=len, reverse=True)
