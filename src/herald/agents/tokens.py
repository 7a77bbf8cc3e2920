"""How many tokens a text is, estimated with no tokenizer to download.

Used where a server's answer carries no ``usage`` (many local servers) and to size a
run's reservation before it calls. The estimate splits text as the GPT-4 family's BPE
pre-tokenizer (cl100k) does before merging: letter runs with the one character before
them, digit groups of at most three, punctuation runs with the space before them,
newlines and other spaces. Each piece counts one token, except long or foreign words:

- an ASCII letter run longer than 8 letters counts one token per ~4 letters, less one
  (BPE keeps common stems whole: "establishment" is one token, "tiktoken" three);
- a non-ASCII letter counts one token when it is CJK, kana or hangul (mostly a token or
  more each), half a token otherwise (accented Latin, Cyrillic, Greek: mostly two
  letters a token).

Against cl100k's real counts (OpenAI's cookbook examples)::

    text                                              real  estimate
    "Hello world"                                        2         2
    "The quick brown fox jumps over the lazy dog."      10        10
    "tiktoken is great!"                                 6         4
    "2 + 2 = 4"                                          7         7
    "antidisestablishmentarianism"                       6         6
    "お誕生日おめでとう"                                   9         9

Where it errs: common long words are one real token but count two or three here
("information", "publishes"), and rare words BPE splits finely count low ("tiktoken").
It has not been measured on a large corpus (that needs cl100k's vocabulary, a download);
code and URLs, split at every mark, count high, which errs on the side of reserving too
much.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

# cl100k's pattern, with \p{L} as [^\W\d_] and \p{N} as \d (Python's re has no \p).
_PIECES = re.compile(
    r"""'(?i:[st]|re|ve|m|ll|d)"""
    r"""|(?:[^\r\n\w]|_)?[^\W\d_]+"""
    r"""|\d{1,3}"""
    r"""| ?(?:[^\s\w]|_)+[\r\n]*"""
    r"""|\s*[\r\n]+"""
    r"""|\s+(?!\S)"""
    r"""|\s+"""
)

# A letter this high or higher (CJK radicals onwards: kana, CJK ideographs, hangul) is
# about a token by itself.
_WIDE = 0x2E80
_LONG_WORD = 8


def _letters(run: str) -> float:
    plain = sum(1 for c in run if c.isascii())
    wide = sum(1 for c in run if ord(c) >= _WIDE)
    other = len(run) - plain - wide
    ascii_part = 1.0 if plain <= _LONG_WORD else math.ceil(plain / 4) - 1
    if not plain:
        ascii_part = 0.0
    return ascii_part + wide + other / 2


def estimate_tokens(text: str) -> int:
    """The estimated token count of ``text`` (see the module's docstring for its error)."""
    total = 0.0
    for match in _PIECES.finditer(text):
        piece = match.group()
        letters = piece if piece[0].isalpha() else piece[1:]  # one leading character
        if letters[:1].isalpha():
            total += max(1.0, _letters(letters))
        elif (marks := piece.strip()) and not marks.isdigit():
            total += math.ceil(len(marks) / 4)  # a punctuation run
        else:
            total += 1  # a digit group, a space, newlines
    return math.ceil(total)


# What chat APIs add per message (role and separators) and once per answer (the
# assistant's priming), as OpenAI's cookbook counts them for the GPT-4 family.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


def estimate_messages(messages: Iterable[Mapping[str, str]]) -> int:
    """The estimated prompt tokens of a chat request: each message's role and content,
    its overhead, and the priming of the reply."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += sum(estimate_tokens(value) for value in message.values())
    return total
