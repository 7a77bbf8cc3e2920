"""The token estimate against cl100k's real counts (OpenAI's cookbook examples)."""

from __future__ import annotations

import pytest

from herald.agents.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, estimate_messages
from herald.agents.tokens import estimate_tokens as estimate


@pytest.mark.parametrize(
    ("text", "real"),
    [
        ("Hello world", 2),
        ("The quick brown fox jumps over the lazy dog.", 10),
        ("2 + 2 = 4", 7),
        ("antidisestablishmentarianism", 6),
        ("お誕生日おめでとう", 9),
    ],
)
def test_known_counts(text: str, real: int) -> None:
    assert estimate(text) == real


def test_within_the_documented_error() -> None:
    assert abs(estimate("tiktoken is great!") - 6) <= 2  # a rare word split three ways


def test_empty_and_whitespace() -> None:
    assert estimate("") == 0
    assert estimate("   ") == 1
    assert estimate("a\n\nb") == 3


def test_longer_text_grows_with_its_words() -> None:
    sentence = "Herald publishes a post to many channels at an exact time. "
    one = estimate(sentence)
    assert one == 14  # "publishes" counts two; the trailing space one
    # Repeated, the space before "Herald" joins it: 13 a sentence, and the last space.
    assert estimate(sentence * 100) == 13 * 100 + 1


def test_long_words_count_per_four_letters() -> None:
    assert estimate("internationalisation") == 4  # 20 letters
    assert estimate("abcdefgh") == 1  # 8 letters: one token


def test_messages_add_the_chat_overhead() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    content = estimate("Be brief.") + estimate("Hi") + estimate("system") + estimate("user")
    assert estimate_messages(messages) == content + 2 * TOKENS_PER_MESSAGE + TOKENS_PER_REPLY
    assert estimate_messages([]) == TOKENS_PER_REPLY
