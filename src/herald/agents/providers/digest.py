"""The digest provider: an offline extractive digest of a run's items, with no model.

A fresh install has no model configured, so the default provider writes by choosing, not
by generating: it keeps the sentences that best state what each item says, in their own
words, and links every section back to its item.

The choice is LexRank (Erkan & Radev, 2004, its continuous form):

1. each item's text is split into sentences (abbreviations and, where the language writes
   them, ordinal dots do not end one);
2. each sentence becomes a TF-IDF vector over its words, stop words left out;
3. the sentences are the nodes of a graph whose edges weigh their cosine similarity;
4. PageRank by power iteration gives every sentence its centrality: a sentence that
   resembles many others states what the text is about.

When the run has a topic or keywords that some sentences mention, the random jump leans
toward those sentences (biased LexRank, Otterbacher, Erkan & Radev, 2005). Items are ranked
the same way, one node per item: the top item names the draft, sections follow the rank,
and each item's share of the target length follows its centrality. Chosen sentences keep
their original order, so a section reads as its author wrote it. The digest's own few
words (the intro, "Read more at") are English, German, French, Spanish or Polish, after
the request's language; other languages get English ones.

Same request, same draft: nothing here depends on hash order, the clock or chance.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from herald.agents.providers import stopwords
from herald.agents.providers.base import (
    CallRecord,
    Draft,
    ErrorKind,
    Generation,
    GenerationRequest,
    ProviderConfig,
    ProviderError,
    SourceText,
    Usage,
)
from herald.agents.tokens import estimate_tokens

MODEL = "extractive"
NO_ITEMS = "no items to draw from: give item_ids or add sources to the agent"

_DAMPING = 0.85  # PageRank's usual damping: the chance of following an edge, not jumping
_TOLERANCE = 1e-9  # stop when no score moves by more than this in total (L1)
_MAX_ITERATIONS = 200  # LexRank graphs converge in a few dozen; a bound all the same
_QUERY_BIAS = 0.3  # the share of random jumps that land on topic/keyword sentences
_MAX_SENTENCES = 80  # per item: the graph is quadratic, and leads carry the news
_MAX_SOURCES_NAMED = 4  # in the intro; more read as "and 3 more sources"
_MAX_KEYWORDS_NAMED = 5
_TITLE_MAX = 300  # posts.title
_EXCERPT_MAX = 300
_SHORT_MAX = 280  # the shortest short-post platform (X)

_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
_PARAGRAPH = re.compile(r"\n\s*\n")
# A run of sentence punctuation, closing quotes or brackets, then space: a candidate end.
_CANDIDATE = re.compile(r"([.!?…]+)[\"'\u201d\u2019»)\]]*\s+")
_OPENERS = "\"'\u201c\u2018«(["
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>])")


@dataclass(frozen=True)
class _Section:
    item: SourceText
    score: float
    sentences: list[str]  # chosen, in their original order


class DigestProvider:
    """A :class:`~herald.agents.providers.base.TextProvider` that needs no model."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    def generate(self, request: GenerationRequest) -> Generation:
        started = time.perf_counter()
        read = " ".join(
            [request.topic, *request.keywords, *(f"{i.title} {i.text}" for i in request.items)]
        )
        if not request.items:
            call = CallRecord(
                model=MODEL,
                usage=Usage(input_tokens=estimate_tokens(read), estimated=True),
                latency_ms=_elapsed_ms(started),
                outcome=ErrorKind.PERMANENT.value,
                error=NO_ITEMS,
            )
            raise ProviderError(NO_ITEMS, kind=ErrorKind.PERMANENT, call=call)
        draft = digest(request)
        usage = Usage(
            input_tokens=estimate_tokens(read),
            output_tokens=estimate_tokens(f"{draft.title}\n{draft.body}"),
            estimated=True,
        )
        call = CallRecord(model=MODEL, usage=usage, latency_ms=_elapsed_ms(started))
        return Generation(draft=draft, call=call)


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


# --- sentences and words ---------------------------------------------------------------


def split_sentences(text: str, language: str = "en") -> list[str]:
    """Sentences of ``text``: a paragraph break always ends one; ``.``, ``!``, ``?`` or
    ``…`` before a capital or a digit ends one, unless the dot closes an abbreviation of
    the language, an initial ("J. R. R.", "z. B.") or an ordinal ("3. Oktober")."""
    known = stopwords.abbreviations(language)
    ordinal_dot = stopwords.language_root(language) in stopwords.ORDINAL_DOT
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        flat = " ".join(paragraph.split())
        start = 0
        for match in _CANDIDATE.finditer(flat):
            following = flat[match.end() :].lstrip(_OPENERS)[:1]
            if not (following.isupper() or following.isdigit()):
                continue
            if match.group(1) == "." and _dot_continues(
                flat[start : match.start()], known, ordinal_dot
            ):
                continue
            sentences.append(flat[start : match.end()].strip())
            start = match.end()
        if flat[start:].strip():
            sentences.append(flat[start:].strip())
    return sentences


def _dot_continues(before: str, known: frozenset[str], ordinal_dot: bool) -> bool:
    words = before.split()
    if not words:
        return False
    word = words[-1].lstrip(_OPENERS).lower()
    if len(word) == 1 and word.isalpha():
        return True  # an initial
    if word in known:
        return True
    return ordinal_dot and word.isdigit() and len(word) <= 2


def _terms(text: str, stop: frozenset[str]) -> list[str]:
    return [
        word
        for word in (w.lower() for w in _WORD.findall(text))
        if len(word) > 1 and not word.isdigit() and word not in stop
    ]


def _word_count(text: str) -> int:
    return len(_WORD.findall(text))


# --- LexRank ---------------------------------------------------------------------------

_Vector = dict[str, float]


def _tfidf(documents: list[list[str]]) -> tuple[list[_Vector], dict[str, float]]:
    """Unit-length TF-IDF vectors of ``documents`` (lists of terms) and the IDF table."""
    frequency: Counter[str] = Counter()
    for terms in documents:
        frequency.update(list(dict.fromkeys(terms)))
    total = len(documents)
    idf = {term: math.log((1 + total) / (1 + df)) + 1.0 for term, df in frequency.items()}
    return [_unit(Counter(terms), idf) for terms in documents], idf


def _unit(counts: Counter[str], idf: dict[str, float]) -> _Vector:
    weighted = {term: count * idf[term] for term, count in counts.items() if term in idf}
    norm = math.sqrt(sum(value * value for value in weighted.values()))
    return {term: value / norm for term, value in weighted.items()} if norm else {}


def _cosine(a: _Vector, b: _Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(value * b.get(term, 0.0) for term, value in a.items())


def lexrank(vectors: list[_Vector], query: _Vector | None = None) -> list[float]:
    """Centrality of each vector in their cosine-similarity graph (scores sum to 1).

    The random jump is uniform, or leans toward the vectors most like ``query`` when any
    resembles it at all."""
    n = len(vectors)
    if n == 0:
        return []
    uniform = 1.0 / n
    teleport = [uniform] * n
    if query:
        relevance = [_cosine(query, v) for v in vectors]
        mass = sum(relevance)
        if mass > 0:
            teleport = [(1 - _QUERY_BIAS) * uniform + _QUERY_BIAS * r / mass for r in relevance]
    # Out-edges normalised per node; the diagonal (a sentence like itself) is left out.
    edges: list[list[tuple[int, float]]] = []
    for i in range(n):
        row = [(j, _cosine(vectors[i], vectors[j])) for j in range(n) if j != i]
        row = [(j, w) for j, w in row if w > 0]
        total = sum(w for _, w in row)
        edges.append([(j, w / total) for j, w in row])
    scores = [uniform] * n
    for _ in range(_MAX_ITERATIONS):
        # A node with no similar neighbour hands its score to the random jump.
        dangling = sum(scores[i] for i in range(n) if not edges[i])
        new = [(1 - _DAMPING + _DAMPING * dangling) * teleport[j] for j in range(n)]
        for i in range(n):
            share = _DAMPING * scores[i]
            for j, w in edges[i]:
                new[j] += share * w
        moved = sum(abs(a - b) for a, b in zip(new, scores, strict=True))
        scores = new
        if moved < _TOLERANCE:
            break
    return scores


# --- the draft -------------------------------------------------------------------------


def digest(request: GenerationRequest) -> Draft:
    """The draft for ``request`` (which has at least one item)."""
    language = request.language
    stop = stopwords.stop_words(language)
    items = list(request.items)
    keywords = _unique([k for k in [request.keyword, *request.keywords] if k and k.strip()])
    query_text = " ".join([request.topic, *keywords])

    item_vectors, item_idf = _tfidf([_terms(f"{i.title} {i.text}", stop) for i in items])
    item_scores = lexrank(item_vectors, _unit(Counter(_terms(query_text, stop)), item_idf))
    order = sorted(range(len(items)), key=lambda i: (-item_scores[i], i))
    top = items[order[0]]

    title = _title(request.topic, top)
    intro = _intro(request.topic, items, _present(keywords, items), language)
    frames = {i: _frame(items[i], i, _phrases(language)) for i in order}
    overhead = _word_count(f"{title} {intro}") + sum(f.words for f in frames.values())
    per_item = [split_sentences(item.text, language)[:_MAX_SENTENCES] for item in items]
    budgets = _budgets(
        [sum(_word_count(s) for s in sentences) for sentences in per_item],
        item_scores,
        max(request.target_words - overhead, 0),
    )
    sections: list[_Section] = []
    carry = 0.0  # words the sections before took beyond their budget (or left unused)
    for i in order:
        chosen = _choose(per_item[i], budgets[i] + carry, stop, query_text)
        if per_item[i]:
            carry += budgets[i] - sum(_word_count(s) for s in chosen)
        sections.append(_Section(item=items[i], score=item_scores[i], sentences=chosen))
    body = "\n\n".join(
        [
            _paragraph(intro),
            *(
                _section_markdown(section, frames[i])
                for i, section in zip(order, sections, strict=True)
            ),
        ]
    )
    return Draft(
        title=title,
        body=body + "\n",
        excerpt=_clip(intro, _EXCERPT_MAX),
        short_text=_short_text(title, _http_link(top.link)),
    )


def _unique(values: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.strip().lower(), value.strip())
    return list(seen.values())


def _mentions(text: str, phrase: str) -> bool:
    words = [w.lower() for w in _WORD.findall(text)]
    wanted = [w.lower() for w in _WORD.findall(phrase)]
    if not wanted:
        return False
    size = len(wanted)
    return any(words[i : i + size] == wanted for i in range(len(words) - size + 1))


def _present(keywords: list[str], items: list[SourceText]) -> list[str]:
    text = "\n".join(f"{i.title}\n{i.text}" for i in items)
    return [k for k in keywords if _mentions(text, k)][:_MAX_KEYWORDS_NAMED]


def _budgets(available: list[int], scores: list[float], words: int) -> list[float]:
    """Words per item, shared by score; an item with less text than its share gives the
    rest to the others."""
    budgets = [0.0] * len(available)
    remaining = [i for i, n in enumerate(available) if n > 0]
    pool = float(words)
    while remaining:
        total = sum(scores[i] for i in remaining)
        fits = [i for i in remaining if available[i] <= pool * scores[i] / total]
        if not fits:
            for i in remaining:
                budgets[i] = pool * scores[i] / total
            break
        for i in fits:
            budgets[i] = available[i]
            pool -= available[i]
        remaining = [i for i in remaining if i not in fits]
    return budgets


def _choose(sentences: list[str], budget: float, stop: frozenset[str], query: str) -> list[str]:
    """The most central sentences that bring the section nearest its budget (at least
    one), in their original order."""
    if not sentences:
        return []
    vectors, idf = _tfidf([_terms(s, stop) for s in sentences])
    scores = lexrank(vectors, _unit(Counter(_terms(query, stop)), idf))
    chosen: list[int] = []
    words = 0
    for index in sorted(range(len(sentences)), key=lambda i: (-scores[i], i)):
        size = _word_count(sentences[index])
        if not chosen or abs(words + size - budget) < abs(words - budget):
            chosen.append(index)
            words += size
    return [sentences[i] for i in sorted(chosen)]


def _inline(text: str) -> str:
    """Plain text made safe inside Markdown: its own markup characters are escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _http_link(link: str | None) -> str | None:
    # Only web links are linked: a feed may carry javascript: or data: URLs.
    if link and urlsplit(link.strip()).scheme.lower() in ("http", "https"):
        return link.strip()
    return None


def _host(link: str) -> str:
    host = urlsplit(link).hostname or link
    return host.removeprefix("www.")


def _title(topic: str, top: SourceText) -> str:
    topic = " ".join(topic.split())
    lead = " ".join(top.title.split())
    title = f"{topic}: {lead}" if topic and lead else topic or lead or top.source_name
    return _clip(title or "Digest", _TITLE_MAX)


@dataclass(frozen=True)
class _Phrases:
    """The digest's own words in one language. Counted nouns come in three forms: one,
    few and many (Polish says 2 artykuły but 5 artykułów)."""

    intro: str  # {count}{about}{origin}
    items: tuple[str, str, str]
    about: str  # {topic}
    origin: str  # {sources}
    more_sources: tuple[str, str, str]
    covers: str  # {keywords}
    and_: str
    by: str  # {author}
    read_more: str  # {host}
    item: str  # {n}: a section with no title, source or link


_PHRASES: dict[str, _Phrases] = {
    "en": _Phrases(
        intro="This digest gathers {count}{about}{origin}.",
        items=("{n} item", "{n} items", "{n} items"),
        about=" on {topic}",
        origin=" from {sources}",
        more_sources=("{n} more source", "{n} more sources", "{n} more sources"),
        covers=" It covers {keywords}.",
        and_="and",
        by="by {author}",
        read_more="Read more at {host}",
        item="Item {n}",
    ),
    "de": _Phrases(
        intro="Dieser Überblick fasst {count}{about}{origin} zusammen.",
        items=("{n} Beitrag", "{n} Beiträge", "{n} Beiträge"),
        about=" zum Thema {topic}",
        origin=" aus {sources}",
        more_sources=("{n} weiteren Quelle", "{n} weiteren Quellen", "{n} weiteren Quellen"),
        covers=" Es geht um {keywords}.",
        and_="und",
        by="von {author}",
        read_more="Weiterlesen bei {host}",
        item="Beitrag {n}",
    ),
    "fr": _Phrases(
        intro="Ce résumé rassemble {count}{about}{origin}.",
        items=("{n} article", "{n} articles", "{n} articles"),
        about=" sur {topic}",
        origin=" (sources : {sources})",
        more_sources=("{n} autre", "{n} autres", "{n} autres"),
        covers=" Il y est question de {keywords}.",
        and_="et",
        by="par {author}",
        read_more="Lire la suite sur {host}",
        item="Article {n}",
    ),
    "es": _Phrases(
        intro="Este resumen reúne {count}{about}{origin}.",
        items=("{n} artículo", "{n} artículos", "{n} artículos"),
        about=" sobre {topic}",
        origin=" de {sources}",
        more_sources=("{n} fuente más", "{n} fuentes más", "{n} fuentes más"),
        covers=" Trata de {keywords}.",
        and_="y",
        by="por {author}",
        read_more="Leer más en {host}",
        item="Artículo {n}",
    ),
    "pl": _Phrases(
        intro="Ten przegląd zbiera {count}{about}{origin}.",
        items=("{n} artykuł", "{n} artykuły", "{n} artykułów"),
        about=" (temat: {topic})",
        origin=" ze źródeł: {sources}",
        more_sources=("{n} inne", "{n} inne", "{n} innych"),
        covers=" Omawia: {keywords}.",
        and_="i",
        by="autor: {author}",
        read_more="Czytaj więcej: {host}",
        item="Artykuł {n}",
    ),
}


def _phrases(language: str) -> _Phrases:
    # Languages without their own phrases read the digest's few words in English.
    return _PHRASES.get(stopwords.language_root(language), _PHRASES["en"])


def _counted(forms: tuple[str, str, str], n: int, language: str) -> str:
    if n == 1:
        form = forms[0]
    elif stopwords.language_root(language) == "pl":
        few = n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14)
        form = forms[1] if few else forms[2]
    else:
        form = forms[1]
    return form.format(n=n)


def _intro(topic: str, items: list[SourceText], keywords: list[str], language: str) -> str:
    words = _phrases(language)
    about = words.about.format(topic=" ".join(topic.split())) if topic.strip() else ""
    sources = _unique([i.source_name for i in items if i.source_name.strip()])
    named = sources[:_MAX_SOURCES_NAMED]
    if len(sources) > len(named):
        named.append(_counted(words.more_sources, len(sources) - len(named), language))
    origin = words.origin.format(sources=_and(named, words.and_)) if named else ""
    count = _counted(words.items, len(items), language)
    intro = words.intro.format(count=count, about=about, origin=origin)
    if keywords:
        intro += words.covers.format(keywords=_and(keywords, words.and_))
    return intro


def _and(names: list[str], and_: str) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {and_} {names[-1]}"


@dataclass(frozen=True)
class _Frame:
    """A section's heading and closing line: everything in it but the sentences."""

    heading: str  # Markdown
    closing: str  # Markdown; "" when the item has no source, author, date or link
    words: int  # as a reader counts them (the link's address is not read)


def _frame(item: SourceText, position: int, words: _Phrases) -> _Frame:
    link = _http_link(item.link)
    heading = (
        " ".join(item.title.split())
        or item.source_name
        or (_host(link) if link else words.item.format(n=position + 1))
    )
    credit = ", ".join(
        part
        for part in (
            item.source_name.strip(),
            words.by.format(author=" ".join((item.author or "").split()))
            if item.author and item.author.strip()
            else "",
            item.published_at.date().isoformat() if item.published_at else "",
        )
        if part
    )
    closing = [f"*{_inline(credit)}*"] if credit else []
    read_more = words.read_more.format(host=_host(link)) if link else ""
    if link:
        target = f"<{link}>" if any(c in link for c in " ()<>") else link
        closing.append(f"[{_inline(read_more)}]({target})")
    return _Frame(
        heading=f"## {_inline(heading)}",
        closing=" · ".join(closing),
        words=_word_count(f"{heading} {credit} {read_more}"),
    )


def _section_markdown(section: _Section, frame: _Frame) -> str:
    parts = [frame.heading]
    if section.sentences:
        parts.append(_paragraph(" ".join(section.sentences)))
    if frame.closing:
        parts.append(frame.closing)
    return "\n\n".join(parts)


def _paragraph(text: str) -> str:
    """Plain text as a Markdown paragraph: inline markup escaped, and a start that would
    open a heading, a list or a quote ("2024. was", "- x", "# 1") escaped too."""
    text = _inline(text)
    if re.match(r"\d{1,9}[.)]\s", text):
        end = re.match(r"\d+", text)
        assert end is not None
        return f"{text[: end.end()]}\\{text[end.end() :]}"
    if text[:1] in "#-+=>|~":
        return "\\" + text
    return text


def _clip(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, "…" marking a cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def _short_text(title: str, link: str | None) -> str:
    if not link or len(link) > _SHORT_MAX - 10:
        return _clip(title, _SHORT_MAX)
    return f"{_clip(title, _SHORT_MAX - len(link) - 1)} {link}"
