"""The chat messages a model is asked with: a system message saying what to write and
how, and a user message with the topic and the items to draw on.

The prompt stays bounded however long the sources' articles are, so that what a run
reserves before calling covers it: each item's text gets an equal share of
:data:`ITEMS_BUDGET` characters, at most :data:`ITEM_CHARS`, cut at a word; titles,
topic and instructions are cut too; and if the whole still counts more than
:data:`PROMPT_TOKENS` (by :func:`herald.agents.tokens.estimate_messages`: text in
scripts of a token a letter), the items' share is halved, then the last items are
left out, until it fits.
"""

from __future__ import annotations

from dataclasses import replace

from herald.agents.providers.base import GenerationRequest, SourceText
from herald.agents.tokens import estimate_messages

ITEM_CHARS = 1500  # the most of one item's text the model sees
ITEMS_BUDGET = 12_000  # the most of all items' texts together
MAX_ITEMS = 20  # items past this are left out (a draft cites a handful)
TITLE_CHARS = 200
TOPIC_CHARS = 500
INSTRUCTIONS_CHARS = 2000
# The most a prompt counts, by the estimate (a run reserves a little more for its error).
PROMPT_TOKENS = 5000
_SMALLEST_SHARE = 400

_LANGUAGES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pl": "Polish",
    "pt": "Portuguese",
    "nl": "Dutch",
    "sv": "Swedish",
    "cs": "Czech",
    "uk": "Ukrainian",
    "ja": "Japanese",
    "zh": "Chinese",
}


def _language(code: str) -> str:
    name = _LANGUAGES.get(code.split("-", maxsplit=1)[0].lower())
    return f"{name} ({code})" if name else f"the language with the code {code!r}"


def cut(text: str, limit: int) -> str:
    """``text`` as one line, at most ``limit`` characters, cut at a word with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    head = flat[: max(0, limit - 1)]
    if " " in head:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,.;:") + "…"


def system_message(request: GenerationRequest) -> str:
    lines = [
        "You are a writer for a publication. You write one article from the source items "
        "the user gives you, for readers who have not read them.",
        f"Write in {_language(request.language)}.",
        f"Length: about {request.target_words} words.",
    ]
    if request.tone:
        lines.append(f"Tone: {request.tone}.")
    if request.instructions:
        voice = cut(request.instructions, INSTRUCTIONS_CHARS)
        lines.append(f"House style and brand voice: {voice}")
    lines.append(
        "Format: Markdown. Start with one '# ' title line, then the article; use '## ' "
        "for sections. Cite the sources with links: link each claim you take from an "
        "item to that item's link, and name its source. Invent no facts, quotes or links."
    )
    return "\n".join(lines)


def _item(number: int, item: SourceText, chars: int) -> str:
    lines = [f"## Item {number}: {cut(item.title, TITLE_CHARS) or '(untitled)'}"]
    if item.source_name:
        lines.append(f"Source: {item.source_name}")
    if item.author:
        lines.append(f"Author: {item.author}")
    if item.published_at is not None:
        lines.append(f"Date: {item.published_at.date().isoformat()}")
    if item.link:
        lines.append(f"Link: {item.link}")
    text = cut(item.text, chars)
    if text:
        lines.append(f"Text: {text}")
    return "\n".join(lines)


def user_message(request: GenerationRequest, budget: int = ITEMS_BUDGET) -> str:
    """The topic and the items, the items' texts sharing ``budget`` characters."""
    lines = [f"Topic: {cut(request.topic, TOPIC_CHARS) or 'the items below'}"]
    if request.keywords:
        lines.append(f"Keywords: {cut(', '.join(request.keywords), TOPIC_CHARS)}")
    if request.keyword:
        lines.append(
            f"Focus keyword: {cut(request.keyword, TITLE_CHARS)} (use it in the title and "
            "the first paragraph)"
        )
    items = request.items[:MAX_ITEMS]
    if not items:
        lines.append("There are no source items: write from the topic alone, with no links.")
        return "\n".join(lines)
    lines.append(f"\nSource items ({len(items)}):")
    left = budget
    for number, item in enumerate(items, start=1):
        share = min(ITEM_CHARS, left // (len(items) - number + 1))
        block = _item(number, item, share)
        left -= min(share, len(item.text))
        lines.append("\n" + block)
    return "\n".join(lines)


def messages_for(request: GenerationRequest) -> list[dict[str, str]]:
    """The chat messages for ``request``: system (what and how), user (topic and items),
    within :data:`PROMPT_TOKENS` by the estimate (see the module's docstring)."""
    system = {"role": "system", "content": system_message(request)}
    budget, items = ITEMS_BUDGET, request.items[:MAX_ITEMS]
    while True:
        shown = replace(request, items=items)
        messages = [system, {"role": "user", "content": user_message(shown, budget)}]
        if estimate_messages(messages) <= PROMPT_TOKENS:
            return messages
        if not items:
            return messages  # nothing left to cut: the instructions and topic are capped
        if budget // 2 >= _SMALLEST_SHARE:
            budget //= 2
        elif len(items) > 1:
            items = items[:-1]
        else:
            return messages  # one item, its text cut short: only the fixed parts are left
