"""The adapter contract: one suite of tests that every platform adapter passes against
its local fake. Modelled on huey's ``StorageTests`` mixin.

To run it for a platform, subclass :class:`AdapterContract` in a ``test_*.py`` module
(with a class name starting ``Test``), set ``platform`` (its registry key) and
``capabilities``, and fill in the hooks: a ``fake`` fixture that starts the local fake,
the credentials pointing at it, and what the platform now holds. HTTP platforms also say
how to make the fake fail (``inject``). A test that needs a capability the platform
lacks is skipped for it.

The engine's side of the bargain (``herald.publishing.delivery``) is what these tests
pin: ``RetryableError`` means nothing was posted, ``AmbiguousError`` means it may have
been, and a second ``publish`` with the same key must never make a second post where
the adapter claims ``honours_idempotency_key`` (otherwise ``find_existing`` finds it).
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from herald.adapters.base import (
    Adapter,
    AdapterError,
    AmbiguousError,
    AuthError,
    Identity,
    MediaItem,
    PermanentError,
    PostContent,
    Receipt,
    RetryableError,
)
from herald.adapters.registry import get_adapter_class
from herald.core.http import reset_shared_client
from herald.core.settings import get_settings

HTTP = "http"  # capability: talks HTTP to the platform, so the fake can be made to fail
THREAD = "thread"  # capability: long text goes out as a thread of replies
MEDIA = "media"  # capability: images are uploaded and attached, with alt text

T = TypeVar("T", bound=Callable[..., Any])


def needs(*capabilities: str) -> Callable[[T], T]:
    """Run this contract test only for platforms declaring these capabilities.

    A subclass overriding a decorated test (say, to mark it ``xfail``) decorates the
    override again.
    """

    def mark(test: T) -> T:
        # A marker attribute on the test function, read by the contract's own fixture.
        test.contract_needs = frozenset(capabilities)  # type: ignore[attr-defined]
        return test

    return mark


@dataclass(frozen=True)
class Fault:
    """How the fake answers the next request it accepts (after its own auth check)."""

    status: int | None = None  # answer this status; the platform stores nothing
    message: str = ""  # the platform's own error text, in the platform's error shape
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: bool = False  # store the post, then never answer
    drop: bool = False  # store the post, then close the connection without answering


def new_key() -> str:
    """An idempotency key shaped like the engine's (``herald-<publication id>``)."""
    return f"herald-{uuid.uuid4().hex}"


def sample_post(**changes: Any) -> PostContent:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "title": "Café au lait — ünïcödé 日本語",
        "body": "# Heading\n\nSome *Markdown* with a [link](https://example.org/a?b=c&d=e).\n",
        "excerpt": "A short summary: with a colon",
        "tags": ("python", "release-notes", "日本"),
        "canonical_url": "https://blog.example.org/2024/cafe-au-lait",
    }
    return PostContent(**(values | changes))


# Two links and non-ASCII text, about 1,200 characters: a thread on every short platform.
THREAD_BODY = (
    "Zażółć gęślą jaźń — this is a long note about shipping software that is written "
    "once and delivered everywhere. "
    * 6
    + "The release notes live at https://example.org/releases/2026/11/herald-0.2?utm=x&y=ü "
    "and the design at https://docs.example.com/design/claims-before-side-effects. "
    + "Café crème, naïve façade, 日本語のテキスト, emoji 👩‍💻 and 🇵🇱 all count. "
    * 6
).strip()
THREAD_LINKS = (
    "https://example.org/releases/2026/11/herald-0.2?utm=x&y=ü",
    "https://docs.example.com/design/claims-before-side-effects",
)

# The smallest valid PNG: one transparent pixel.
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def sample_image(directory: Path, alt_text: str = "A tiny test pixel, ünïcödé") -> MediaItem:
    path = directory / f"{uuid.uuid4().hex}.png"
    path.write_bytes(PNG_1PX)
    return MediaItem(
        id=uuid.uuid4(),
        path=path,
        content_type="image/png",
        size=len(PNG_1PX),
        filename="pixel.png",
        alt_text=alt_text,
        width=1,
        height=1,
    )


def exception_texts(exc: BaseException) -> list[str]:
    """``str()`` of the exception and everything chained to it (what a log would show)."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


@contextlib.contextmanager
def private_networks_refused() -> Iterator[None]:
    """Production's default inside: no private network allowed (the suite allows loopback,
    where every fake listens), with the shared HTTP client rebuilt for it and after it."""

    settings = get_settings()
    allowed = settings.allowed_private_networks
    settings.allowed_private_networks = []
    reset_shared_client()
    try:
        yield
    finally:
        settings.allowed_private_networks = allowed
        reset_shared_client()


# Every way an HTTP call can go wrong that the contract names; for the secrets check.
HTTP_ERROR_SCENARIOS = ("400", "401", "403", "429", "503", "timeout", "dropped", "refused")


class AdapterContract:
    """Mix-in of contract tests; see the module docstring for the hooks to fill in."""

    platform: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset({HTTP})
    # Settings that make the adapter give up reading an answer quickly (HTTP).
    short_timeout_settings: ClassVar[dict[str, Any]] = {}

    # -- hooks a platform fills in ----------------------------------------------------

    @pytest.fixture
    def fake(self) -> Iterator[Any]:
        """The platform's local fake, started; stopped afterwards."""
        raise NotImplementedError(f"{type(self).__name__} must provide a `fake` fixture")

    def credentials(self, fake: Any) -> dict[str, Any]:
        """Good credentials for the fake."""
        raise NotImplementedError

    def bad_credentials(self, fake: Any) -> dict[str, dict[str, Any]]:
        """Credentials the platform refuses, by a short description. At least one."""
        raise NotImplementedError

    def settings(self, fake: Any) -> dict[str, Any]:
        return {}

    def posts_on_platform(self, fake: Any) -> list[Any]:
        """Everything the platform now holds as a post (one entry per post)."""
        raise NotImplementedError

    def spec_violations(self, fake: Any) -> list[str]:
        """Requests that broke the platform's published schema (checked after each test)."""
        return list(getattr(fake, "violations", []))

    # Platforms with threads (THREAD).

    def thread_on_platform(self, fake: Any) -> list[str]:
        """The texts of the newest thread, root first; the fake checks each part replies
        to the one before it."""
        raise NotImplementedError

    # Platforms with media (MEDIA).

    def media_on_platform(self, fake: Any) -> list[dict[str, Any]]:
        """Images the platform holds: ``{"alt": str, "size": int}`` each, attached to a post."""
        raise NotImplementedError

    def secret_values(self, credentials: Mapping[str, Any]) -> list[str]:
        """Values that must never appear in an exception; default: every credential string."""
        return [v for v in credentials.values() if isinstance(v, str) and len(v) >= 8]

    # HTTP platforms only.

    def inject(self, fake: Any, fault: Fault) -> None:
        """Make the fake answer its next request as ``fault`` says."""
        raise NotImplementedError

    def requests_received(self, fake: Any) -> int:
        """How many requests have reached the fake."""
        raise NotImplementedError

    def unreachable_credentials(self, fake: Any, base_url: str) -> dict[str, Any]:
        """Good credentials, but for a server at ``base_url`` where nothing listens."""
        raise NotImplementedError

    def rate_limit_headers(self, seconds: int, now: float) -> dict[str, dict[str, str]]:
        """Header sets by which the platform says "wait ``seconds``"; override to match."""
        return {
            "Retry-After seconds": {"Retry-After": str(seconds)},
            "Retry-After HTTP date": {
                "Retry-After": email.utils.formatdate(now + seconds, usegmt=True)
            },
            "X-RateLimit-Reset epoch": {"X-RateLimit-Reset": str(int(now) + seconds)},
        }

    # -- machinery --------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _capabilities(self, request: pytest.FixtureRequest) -> Iterator[None]:
        wanted: frozenset[str] = getattr(request.function, "contract_needs", frozenset())
        missing = wanted - self.capabilities
        if missing:
            pytest.skip(f"{self.platform} adapter has no {', '.join(sorted(missing))}")
        # Set the fake up first, so it is still there when this checks it afterwards.
        fake = request.getfixturevalue("fake") if "fake" in request.fixturenames else None
        yield
        if fake is not None:
            violations = self.spec_violations(fake)
            assert not violations, f"requests broke {self.platform}'s published schema"

    def make_adapter(
        self, credentials: Mapping[str, Any], settings: Mapping[str, Any] | None = None
    ) -> Adapter[Any, Any]:
        """Built the way the engine builds it: through the registry and the models."""
        return get_adapter_class(self.platform).build(credentials, settings)

    @pytest.fixture
    def adapter(self, fake: Any) -> Adapter[Any, Any]:
        return self.make_adapter(self.credentials(fake), self.settings(fake))

    @pytest.fixture
    def closed_port(self) -> Iterator[int]:
        """A local port that refuses connections: bound, never listening."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        try:
            yield sock.getsockname()[1]
        finally:
            sock.close()

    def impatient_adapter(self, fake: Any) -> Adapter[Any, Any]:
        """An adapter that stops waiting for an answer after a fraction of a second."""
        assert self.short_timeout_settings, "declare short_timeout_settings for the timeout tests"
        return self.make_adapter(
            self.credentials(fake), self.settings(fake) | self.short_timeout_settings
        )

    def assert_no_secrets(self, exc: BaseException, credentials: Mapping[str, Any]) -> None:
        secrets = self.secret_values(credentials)
        for text in exception_texts(exc):
            for secret in secrets:
                assert secret not in text, f"a credential leaked into {type(exc).__name__}"

    def publish_failing(self, adapter: Adapter[Any, Any], fake: Any, fault: Fault) -> AdapterError:
        self.inject(fake, fault)
        rendition = adapter.render(sample_post())
        with pytest.raises(AdapterError) as info:
            adapter.publish(rendition, new_key())
        return info.value

    # -- verify -----------------------------------------------------------------------

    def test_verify_accepts_good_credentials(self, adapter: Adapter[Any, Any], fake: Any) -> None:
        identity = adapter.verify()
        assert isinstance(identity, Identity)
        assert identity.name
        shown = f"{identity.name} {identity.detail}"
        for secret in self.secret_values(self.credentials(fake)):
            assert secret not in shown
        assert self.posts_on_platform(fake) == [], "verify must not post anything"

    def test_verify_rejects_bad_credentials(self, fake: Any) -> None:
        cases = self.bad_credentials(fake)
        assert cases, "declare at least one kind of bad credentials"
        for description, credentials in cases.items():
            adapter = self.make_adapter(credentials, self.settings(fake))
            with pytest.raises(AuthError) as info:
                adapter.verify()
            assert info.value.message, description
            self.assert_no_secrets(info.value, credentials)

    def test_publish_with_bad_credentials_is_an_auth_error(self, fake: Any) -> None:
        for description, credentials in self.bad_credentials(fake).items():
            adapter = self.make_adapter(credentials, self.settings(fake))
            with pytest.raises(AuthError) as info:
                adapter.publish(adapter.render(sample_post()), new_key())
            self.assert_no_secrets(info.value, credentials)
            assert self.posts_on_platform(fake) == [], description

    # -- render -----------------------------------------------------------------------

    def test_render_is_local_and_not_empty(self, adapter: Adapter[Any, Any], fake: Any) -> None:
        rendition = adapter.render(sample_post())
        assert rendition.parts
        assert all(part.strip() for part in rendition.parts)
        assert self.posts_on_platform(fake) == []
        if HTTP in self.capabilities:
            assert self.requests_received(fake) == 0, "render must not call the platform"

    def test_render_fits_the_declared_length(self, adapter: Adapter[Any, Any]) -> None:
        limit = adapter.limits.max_length
        if limit is None:
            pytest.skip(f"{self.platform} declares no max_length")
        long_post = sample_post(body=" ".join(["wörd"] * (limit * 3)))
        rendition = adapter.render(long_post)
        assert all(adapter.measure(part) <= limit for part in rendition.parts)

    # -- threads ----------------------------------------------------------------------

    @needs(THREAD)
    def test_long_post_goes_out_as_a_thread(self, adapter: Adapter[Any, Any], fake: Any) -> None:
        rendition = adapter.render(sample_post(title="", body=THREAD_BODY))
        limit = adapter.limits.max_length
        assert limit is not None
        assert len(rendition.parts) > 1
        assert all(adapter.measure(part) <= limit for part in rendition.parts)
        for link in THREAD_LINKS:
            assert any(link in part for part in rendition.parts), f"{link} was cut"
        adapter.publish(rendition, new_key())
        assert self.thread_on_platform(fake) == list(rendition.parts)

    @needs(THREAD, HTTP)
    def test_thread_retry_carries_on_where_it_stopped(
        self, adapter: Adapter[Any, Any], fake: Any
    ) -> None:
        rendition = adapter.render(sample_post(title="", body=THREAD_BODY))
        key = new_key()
        posted_before = self.requests_received(fake)
        adapter.publish(rendition, new_key())  # a first thread, to count requests per part
        per_thread = self.requests_received(fake) - posted_before
        assert per_thread >= len(rendition.parts)
        # Fail a request in the middle of the second thread, then send it again.
        fake_posts = len(self.posts_on_platform(fake))
        self.inject_after(fake, per_thread // 2, Fault(503, "try later"))
        with pytest.raises(RetryableError):
            adapter.publish(rendition, key)
        adapter.publish(rendition, key)
        assert len(self.posts_on_platform(fake)) == fake_posts + len(rendition.parts)
        assert self.thread_on_platform(fake) == list(rendition.parts)

    def inject_after(self, fake: Any, requests: int, fault: Fault) -> None:
        """Let ``requests`` requests through, then fail the next one as ``fault`` says."""
        for _ in range(requests):
            self.inject(fake, Fault())
        self.inject(fake, fault)

    # -- media ------------------------------------------------------------------------

    @needs(MEDIA)
    def test_image_arrives_with_its_alt_text(
        self, adapter: Adapter[Any, Any], fake: Any, tmp_path: Path
    ) -> None:
        image = sample_image(tmp_path)
        rendition = adapter.render(sample_post(media=(image,)))
        assert rendition.media == (image,)
        adapter.publish(rendition, new_key())
        held = self.media_on_platform(fake)
        assert len(held) == 1
        assert held[0]["size"] == image.size
        assert held[0]["alt"] == image.alt_text

    # -- publish ----------------------------------------------------------------------

    def test_publish_returns_a_receipt(self, adapter: Adapter[Any, Any], fake: Any) -> None:
        receipt = adapter.publish(adapter.render(sample_post()), new_key())
        assert isinstance(receipt, Receipt)
        assert isinstance(receipt.external_id, str)
        assert receipt.external_id
        assert len(self.posts_on_platform(fake)) == 1

    def test_same_key_posts_once(self, adapter: Adapter[Any, Any], fake: Any) -> None:
        rendition = adapter.render(sample_post())
        key = new_key()
        first = adapter.publish(rendition, key)
        if adapter.honours_idempotency_key:
            again = adapter.publish(rendition, key)
        else:
            # What the engine does on a second attempt: look first, send only if not found.
            found = adapter.find_existing(rendition, key)
            assert found is not None, "without idempotency keys, find_existing must find it"
            again = found
        assert again.external_id == first.external_id
        assert len(self.posts_on_platform(fake)) == 1

    def test_different_keys_post_twice(self, adapter: Adapter[Any, Any], fake: Any) -> None:
        rendition = adapter.render(sample_post())
        first = adapter.publish(rendition, new_key())
        second = adapter.publish(rendition, new_key())
        assert first.external_id != second.external_id
        assert len(self.posts_on_platform(fake)) == 2

    def test_find_existing_does_not_invent_posts(
        self, adapter: Adapter[Any, Any], fake: Any
    ) -> None:
        rendition = adapter.render(sample_post())
        adapter.publish(rendition, new_key())
        assert adapter.find_existing(rendition, new_key()) is None

    # -- how HTTP failures are classified ---------------------------------------------

    @needs(HTTP)
    def test_rate_limited_is_retryable_with_retry_after(
        self, adapter: Adapter[Any, Any], fake: Any
    ) -> None:
        for description, headers in self.rate_limit_headers(30, time.time()).items():
            exc = self.publish_failing(adapter, fake, Fault(429, "slow down", headers))
            assert isinstance(exc, RetryableError), description
            assert exc.retry_after is not None, description
            assert 27 <= exc.retry_after <= 31, (description, exc.retry_after)
        assert self.posts_on_platform(fake) == []

    @needs(HTTP)
    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_server_error_is_retryable(
        self, adapter: Adapter[Any, Any], fake: Any, status: int
    ) -> None:
        exc = self.publish_failing(adapter, fake, Fault(status, "upstream is unwell"))
        assert isinstance(exc, RetryableError)
        assert self.posts_on_platform(fake) == []

    @needs(HTTP)
    @pytest.mark.parametrize("status", [401, 403])
    def test_unauthorised_is_an_auth_error(
        self, adapter: Adapter[Any, Any], fake: Any, status: int
    ) -> None:
        exc = self.publish_failing(adapter, fake, Fault(status, "token revoked"))
        assert isinstance(exc, AuthError)

    @needs(HTTP)
    @pytest.mark.parametrize("status", [400, 422])
    def test_refusal_is_permanent_with_the_platforms_message(
        self, adapter: Adapter[Any, Any], fake: Any, status: int
    ) -> None:
        message = "Le titre est trop long — 300 caractères au plus (champ « title »)"
        exc = self.publish_failing(adapter, fake, Fault(status, message))
        assert isinstance(exc, PermanentError)
        assert message in exc.message
        assert message in str(exc)

    @needs(HTTP)
    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    def test_redirect_is_not_taken_for_success(
        self, adapter: Adapter[Any, Any], fake: Any, status: int
    ) -> None:
        # Redirects are not followed, so the post was not made: it must not be "published".
        moved = {"Location": "https://elsewhere.example/hook"}
        exc = self.publish_failing(adapter, fake, Fault(status, "moved", moved))
        assert isinstance(exc, PermanentError)
        assert self.posts_on_platform(fake) == []

    @needs(HTTP)
    def test_timeout_after_sending_is_ambiguous(self, fake: Any) -> None:
        # The adapter decides "ambiguous"; whether to resend is the engine's call, even
        # for platforms that honour idempotency keys.
        adapter = self.impatient_adapter(fake)
        exc = self.publish_failing(adapter, fake, Fault(hang=True))
        assert isinstance(exc, AmbiguousError)
        assert self.requests_received(fake) == 1

    @needs(HTTP)
    def test_connection_dropped_after_sending_is_ambiguous(
        self, adapter: Adapter[Any, Any], fake: Any
    ) -> None:
        exc = self.publish_failing(adapter, fake, Fault(drop=True))
        assert isinstance(exc, AmbiguousError)
        assert self.requests_received(fake) == 1

    @needs(HTTP)
    def test_resend_after_ambiguous_failure_posts_once(self, fake: Any) -> None:
        adapter = self.impatient_adapter(fake)
        rendition = adapter.render(sample_post())
        key = new_key()
        self.inject(fake, Fault(hang=True))
        with pytest.raises(AmbiguousError):
            adapter.publish(rendition, key)
        # The engine's next step: resend where the platform dedups, else look it up.
        if adapter.honours_idempotency_key:
            receipt: Receipt | None = adapter.publish(rendition, key)
        else:
            receipt = adapter.find_existing(rendition, key)
        assert receipt is not None
        assert len(self.posts_on_platform(fake)) == 1

    @needs(HTTP)
    def test_connection_refused_is_retryable(self, fake: Any, closed_port: int) -> None:
        credentials = self.unreachable_credentials(fake, f"http://127.0.0.1:{closed_port}")
        adapter = self.make_adapter(credentials, self.settings(fake))
        with pytest.raises(RetryableError):
            adapter.publish(adapter.render(sample_post()), new_key())
        with pytest.raises(RetryableError):
            adapter.verify()

    @needs(HTTP)
    def test_an_address_herald_may_not_reach_is_refused_before_sending(self, fake: Any) -> None:
        """Every request goes through the guarded client: once loopback is not allowed,
        the fake (on 127.0.0.1) is refused, permanently, and never reached."""
        credentials = self.credentials(fake)
        adapter = self.make_adapter(credentials, self.settings(fake))
        with private_networks_refused():
            with pytest.raises(PermanentError) as info:
                adapter.publish(adapter.render(sample_post()), new_key())
            with pytest.raises(AdapterError) as verified:
                adapter.verify()
        for refused in (info.value, verified.value):
            assert "127.0.0.1 is a loopback address" in refused.message
            assert "HERALD_ALLOWED_PRIVATE_NETWORKS" in refused.message
            self.assert_no_secrets(refused, credentials)
        assert self.requests_received(fake) == 0

    # -- credentials stay secret (bad-credential errors are checked above) --------------

    @needs(HTTP)
    @pytest.mark.parametrize("scenario", HTTP_ERROR_SCENARIOS)
    def test_http_errors_never_carry_credentials(
        self, fake: Any, closed_port: int, scenario: str
    ) -> None:
        credentials = self.credentials(fake)
        settings = self.settings(fake)
        if scenario == "refused":
            credentials = self.unreachable_credentials(fake, f"http://127.0.0.1:{closed_port}")
        elif scenario == "timeout":
            settings = settings | self.short_timeout_settings
            self.inject(fake, Fault(hang=True))
        elif scenario == "dropped":
            self.inject(fake, Fault(drop=True))
        else:
            self.inject(fake, Fault(int(scenario), "no", {"Retry-After": "1"}))
        adapter = self.make_adapter(credentials, settings)
        with pytest.raises(AdapterError) as info:
            adapter.publish(adapter.render(sample_post()), new_key())
        self.assert_no_secrets(info.value, credentials)
