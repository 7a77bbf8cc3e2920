"""The Telegram adapter: the contract suite against the local Bot API fake, plus what is
particular to Telegram (HTML parse mode and its escaping, the 4,096 characters counted
after entity parsing, long posts as several messages that resume where they stopped, the
bot token kept out of errors and logs, retry_after from the body, the bot's rights)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from herald.adapters import http as adapter_http
from herald.adapters.base import (
    AdapterError,
    AuthError,
    MemoryStore,
    PermanentError,
    RetryableError,
)
from herald.adapters.telegram import (
    TelegramAdapter,
    TelegramCredentials,
    TelegramSettings,
    split_html,
    telegram_html,
    visible_text,
)
from tests.adapters.contract import (
    HTTP,
    MEDIA,
    AdapterContract,
    Fault,
    exception_texts,
    needs,
    new_key,
    sample_image,
    sample_post,
)
from tests.fakes.telegram import FakeTelegram, parse_html, units


class TestTelegramContract(AdapterContract):
    platform = "telegram"
    capabilities = frozenset({HTTP, MEDIA})
    short_timeout_settings: ClassVar[dict[str, Any]] = {"read_timeout": 0.3}

    @pytest.fixture
    def fake(self) -> Iterator[FakeTelegram]:
        with FakeTelegram() as fake:
            yield fake

    def credentials(self, fake: FakeTelegram) -> dict[str, Any]:
        return fake.credentials()

    def bad_credentials(self, fake: FakeTelegram) -> dict[str, dict[str, Any]]:
        revoked = f"{fake.bot_id}:AA" + "x" * 33
        return {
            "revoked token": fake.credentials(bot_token=revoked),
            "no bot has this token": fake.credentials(bot_token="123:nonsense"),
            "unknown chat": fake.credentials(chat_id="@nosuchchannel"),
            "bot left the channel": fake.credentials(chat_id="@leftbehind"),
            "bot may not post": fake.credentials(chat_id="@readonlyadmin"),
        }

    def posts_on_platform(self, fake: FakeTelegram) -> list[Any]:
        return list(fake.messages)

    def media_on_platform(self, fake: FakeTelegram) -> list[dict[str, Any]]:
        # Telegram has no alt text; a caption is the only text a photo carries.
        return [
            {"alt": m["caption"], "size": m["size"]} for m in fake.messages if m["kind"] == "photo"
        ]

    def secret_values(self, credentials: Mapping[str, Any]) -> list[str]:
        token = credentials["bot_token"]
        return [token, token.partition(":")[2]]

    def inject(self, fake: FakeTelegram, fault: Fault) -> None:
        fake.inject(fault)

    def requests_received(self, fake: FakeTelegram) -> int:
        return len(fake.requests)

    def unreachable_credentials(self, fake: FakeTelegram, base_url: str) -> dict[str, Any]:
        return fake.credentials(api_url=base_url)

    def rate_limit_headers(self, seconds: int, now: float) -> dict[str, dict[str, str]]:
        # Telegram says it in the body, {"parameters": {"retry_after": 30}}; the fake turns
        # this header into that body and sends no header.
        return {"parameters.retry_after": {"Retry-After": str(seconds)}}

    @needs(MEDIA)
    def test_image_arrives_with_its_alt_text(
        self, adapter: Any, fake: FakeTelegram, tmp_path: Path
    ) -> None:
        # Telegram has no alt text, and a caption is visible to everyone, so the image
        # arrives whole and the alt text stays behind (the docs say so).
        image = sample_image(tmp_path)
        rendition = adapter.render(sample_post(media=(image,)))
        assert rendition.media == (image,)
        adapter.publish(rendition, new_key())
        assert self.media_on_platform(fake) == [{"alt": "", "size": image.size}]

    @needs(HTTP)
    @pytest.mark.xfail(
        strict=True,
        raises=AssertionError,
        reason="the Bot API cannot read a chat's messages: a lost answer can't be looked up",
    )
    def test_resend_after_ambiguous_failure_posts_once(self, fake: FakeTelegram) -> None:
        super().test_resend_after_ambiguous_failure_posts_once(fake)


# -- what is particular to Telegram -------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake
        assert not fake.violations, fake.violations


def make(
    credentials: Mapping[str, Any], store: MemoryStore | None = None, **settings: Any
) -> TelegramAdapter:
    return TelegramAdapter(
        TelegramCredentials.model_validate(dict(credentials)),
        TelegramSettings.model_validate(settings),
        store,
    )


@pytest.fixture
def adapter(fake: FakeTelegram) -> TelegramAdapter:
    return make(fake.credentials())


def test_html_is_escaped_and_links_keep_their_query(
    adapter: TelegramAdapter, fake: FakeTelegram
) -> None:
    # (In Markdown, <script> is raw HTML, dropped; in code it is text.)
    body = "Use `<script>` & compare a < b > c.\n\nSee [the docs](https://example.org/a?b=c&d=e)."
    rendition = adapter.render(sample_post(title="Q&A <live>", body=body, canonical_url=None))
    (part,) = rendition.parts
    assert part.startswith("<b>Q&amp;A &lt;live&gt;</b>\n\n")
    assert "Use <code>&lt;script&gt;</code> &amp; compare a &lt; b &gt; c." in part
    assert '<a href="https://example.org/a?b=c&amp;d=e">the docs</a>' in part
    adapter.publish(rendition, new_key())
    (message,) = fake.messages
    assert message["text"] == ("Q&A <live>\n\nUse <script> & compare a < b > c.\n\nSee the docs.")
    links = [e for e in message["entities"] if e["type"] == "text_link"]
    assert links == [
        {
            "type": "text_link",
            "offset": message["text"].index("the docs"),
            "length": 8,
            "url": "https://example.org/a?b=c&d=e",
        }
    ]


def test_markdown_becomes_telegrams_html_subset() -> None:
    markdown = (
        "# Big **news**\n\nSome *emphasis*, ~~gone~~ and `code`.\n\n"
        "- one\n- two\n  1. nested\n\n"
        "> quoted\n\n"
        "```python\nprint('<hi>')\n```\n\n"
        "![alt](https://example.org/x.png) | [rel](/relative)"
    )
    converted = telegram_html(markdown)
    assert converted == (
        "<b>Big news</b>\n\n"
        "Some <i>emphasis</i>, <s>gone</s> and <code>code</code>.\n\n"
        "• one\n• two\n  1. nested\n\n"
        "<blockquote>quoted</blockquote>\n\n"
        "<pre>print('&lt;hi&gt;')</pre>\n\n"
        "| rel"
    )
    parse_html(converted)  # Telegram would take it


def test_tables_and_loose_lists_become_tidy_lines() -> None:
    table = telegram_html("| a | b |\n|---|---|\n| 1 | **2** |")
    assert table == "<b>a</b> | <b>b</b>\n1 | <b>2</b>"
    loose = telegram_html("1. first\n\n   more\n2. second\n\n```\nx\n\n\ny\n```")
    assert loose == "1. first\n\nmore\n\n2. second\n\n<pre>x\n\n\ny</pre>"


def test_code_inside_bold_or_a_link_loses_only_its_formatting() -> None:
    converted = telegram_html("**bold `x`** and [`y`](https://example.org)")
    assert converted == '<b>bold x</b> and <a href="https://example.org">y</a>'
    parse_html(converted)


def test_length_counts_what_telegram_counts(adapter: TelegramAdapter) -> None:
    assert adapter.measure('<b>a</b> &amp; <a href="https://example.org/very/long">b</a>') == 5
    assert adapter.measure("👩‍💻") == 5  # UTF-16 units, as Telegram's entity offsets


def test_long_post_is_split_into_messages_that_telegram_accepts(
    adapter: TelegramAdapter, fake: FakeTelegram
) -> None:
    sentence = "Fish & chips (<5 €) cost less than *you think*, see https://example.org/?a=1&b=2. "
    body = "\n\n".join([sentence * 30, f"**{(sentence * 60).strip()}**", sentence * 30])
    post = sample_post(body=body)
    rendition = adapter.render(post)
    assert len(rendition.parts) >= 3
    assert all(adapter.measure(part) <= 4096 for part in rendition.parts)
    adapter.publish(rendition, new_key())
    assert len(fake.messages) == len(rendition.parts)
    for message, part in zip(fake.messages, rendition.parts, strict=True):
        assert units(message["text"]) <= 4096
        assert message["text"] == visible_text(part)
    # Nothing lost or doubled at the cuts, and the URLs are whole.
    whole = "\n\n".join([f"<b>{post.title}</b>", telegram_html(body), str(post.canonical_url)])
    assert " ".join(fake.texts()).split() == visible_text(whole).split()
    assert all("https://example.org/?a=1&b=2" in text for text in fake.texts())
    # The bold paragraph cut in the middle is bold on both sides of the cut.
    bold_parts = [p for p in rendition.parts if "<b>Fish" in p]
    assert len(bold_parts) >= 2
    assert all(p.count("<b>") == p.count("</b>") for p in rendition.parts)
    # Only the part with the post's link previews it; the others preview nothing.
    previews = [m["preview"] for m in fake.messages]
    assert previews[:-1] == [{"is_disabled": True}] * (len(previews) - 1)
    assert previews[-1] == {"url": post.canonical_url}


def test_split_reopens_tags_across_the_cut() -> None:
    message = "<b>" + "word " * 30 + "</b>"
    parts = split_html(message, 50)
    assert len(parts) > 1
    for part in parts:
        assert part.startswith("<b>")
        assert part.endswith("</b>")
        assert units(parse_html(part)[0]) <= 50
    assert " ".join(visible_text(p) for p in parts).split() == ["word"] * 30


def test_split_never_cuts_an_entity_or_a_tag() -> None:
    message = " ".join(["a&amp;b", '<a href="https://example.org/x y">link text</a>'] * 40)
    for part in split_html(message, 30):
        parse_html(part)  # raises if a tag or an entity was cut
        assert units(visible_text(part)) <= 30


def test_retry_after_a_failed_part_carries_on_with_the_next(
    fake: FakeTelegram,
) -> None:
    fake.enforce_limits = False  # the parts go out back to back, past ~1 a second
    store = MemoryStore()
    adapter = make(fake.credentials(), store)
    rendition = adapter.render(sample_post(body="\n\n".join(["Paragraph. " * 300] * 3)))
    assert len(rendition.parts) >= 3
    key = new_key()
    fake.inject(Fault())  # the first part goes through
    fake.inject(Fault(503, "Internal Server Error"))
    with pytest.raises(RetryableError):
        adapter.publish(rendition, key)
    assert len(fake.messages) == 1
    assert store.progress(key) is not None
    assert adapter.find_existing(rendition, key) is None  # not all of it went out yet
    receipt = adapter.publish(rendition, key)
    assert [visible_text(p) for p in rendition.parts] == fake.texts()
    ids = [m["message_id"] for m in fake.messages]
    assert receipt.data["message_ids"] == ids
    assert receipt.external_id == f"{fake.messages[0]['chat_id']}:{ids[0]}"
    assert adapter.find_existing(rendition, key) == receipt
    assert adapter.publish(rendition, key) == receipt  # and never again
    assert len(fake.messages) == len(rendition.parts)


def test_images_go_first_as_an_album_without_captions(
    adapter: TelegramAdapter, fake: FakeTelegram, tmp_path: Path
) -> None:
    images = (sample_image(tmp_path, "one"), sample_image(tmp_path, "two"))
    gif = sample_image(tmp_path)
    gif = type(gif)(**(vars(gif) | {"content_type": "image/gif"}))
    rendition = adapter.render(sample_post(media=(*images, gif)))
    assert rendition.media == images
    adapter.publish(rendition, new_key())
    kinds = [m["kind"] for m in fake.messages]
    assert kinds == ["photo", "photo", "text"]
    assert fake.messages[0]["group"] == fake.messages[1]["group"]
    assert [m["caption"] for m in fake.messages[:2]] == ["", ""]
    upload = next(r for r in fake.requests if r.path.endswith("/sendMediaGroup"))
    assert upload.headers["content-type"].startswith("multipart/form-data")


def test_receipt_links_to_the_public_channel_message(
    adapter: TelegramAdapter, fake: FakeTelegram
) -> None:
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    (message,) = fake.messages
    assert receipt.url == f"https://t.me/heraldnews/{message['message_id']}"


def test_private_channel_by_numeric_id_gets_a_members_link(fake: FakeTelegram) -> None:
    adapter = make(fake.credentials(chat_id="-1001555000111"))
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    assert receipt.url == f"https://t.me/c/1555000111/{fake.messages[0]['message_id']}"


def test_link_preview_shows_the_canonical_url_or_nothing(fake: FakeTelegram) -> None:
    post = sample_post()
    make(fake.credentials()).publish(make(fake.credentials()).render(post), new_key())
    assert fake.messages[-1]["preview"] == {"url": post.canonical_url}
    quiet = make(fake.credentials(), link_preview=False, disable_notification=True)
    quiet.publish(quiet.render(post), new_key())
    assert fake.messages[-1]["preview"] == {"is_disabled": True}
    assert fake.requests[-1].json()["disable_notification"] is True
    plain = make(fake.credentials())
    plain.publish(plain.render(sample_post(canonical_url=None)), new_key())
    assert fake.messages[-1]["preview"] is None  # Telegram's default for the text's links


def test_verify_checks_the_bot_can_post_in_the_channel(
    adapter: TelegramAdapter, fake: FakeTelegram
) -> None:
    identity = adapter.verify()
    assert identity.name == "@herald_test_bot in Herald News ✨"
    assert identity.detail == {
        "bot_id": fake.bot_id,
        "chat_id": -1001987654321,
        "chat_type": "channel",
    }
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == [
        "getMe",
        "getChat",
        "getChatMember",
    ]
    with pytest.raises(AuthError, match="Post messages"):
        make(fake.credentials(chat_id="@readonlyadmin")).verify()
    assert fake.messages == []


def test_rate_limit_wait_comes_from_the_body(adapter: TelegramAdapter, fake: FakeTelegram) -> None:
    fake.fail_next(429, "Too Many Requests: retry after 17", {"Retry-After": "17"})
    with pytest.raises(RetryableError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert info.value.retry_after == 17
    assert "retry after 17" in info.value.message
    assert "retry-after" not in {k.lower() for k in fake.requests[-1].headers}


@pytest.mark.parametrize(
    ("status", "description", "error"),
    [
        (401, "Unauthorized", AuthError),
        (403, "Forbidden: bot was kicked from the channel chat", AuthError),
        (400, "Bad Request: chat not found", AuthError),
        (400, "Bad Request: can't parse entities: Unsupported start tag", PermanentError),
        (400, "Bad Request: group chat was upgraded to a supergroup chat", PermanentError),
    ],
)
def test_telegrams_errors_map_to_what_they_mean(
    adapter: TelegramAdapter,
    fake: FakeTelegram,
    status: int,
    description: str,
    error: type[AdapterError],
) -> None:
    fake.fail_next(status, description)
    with pytest.raises(error) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    assert description in info.value.message


def test_token_echoed_by_a_server_is_scrubbed(adapter: TelegramAdapter, fake: FakeTelegram) -> None:
    # A proxy or a self-hosted Bot API server may echo the path, token and all.
    fake.fail_next(400, f"Bad Request: no route for /bot{fake.token}/sendMessage")
    with pytest.raises(PermanentError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    secret = fake.token.partition(":")[2]
    assert all(secret not in text for text in exception_texts(info.value))
    assert "/bot[redacted]/sendMessage" in info.value.message


def test_token_in_a_transport_error_is_scrubbed_with_its_chain(
    fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    # Every HTTP adapter builds and sends its requests through this one client.
    monkeypatch.setattr(adapter_http, "shared_client", lambda: client)
    adapter = make(fake.credentials())
    with pytest.raises(RetryableError) as info:
        adapter.publish(adapter.render(sample_post()), new_key())
    secret = fake.token.partition(":")[2]
    assert all(secret not in text for text in exception_texts(info.value))
    assert "cannot connect to" in info.value.message


def test_token_stays_out_of_httpxs_log(
    adapter: TelegramAdapter, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        adapter.publish(adapter.render(sample_post()), new_key())
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines, "httpx logged nothing: the check would prove nothing"
    assert all(fake.token.partition(":")[2] not in line for line in lines)
    assert any("/bot[redacted]/sendMessage" in line for line in lines)
