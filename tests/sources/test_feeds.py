"""Parsing: every format and version the issue names, read from the feed files the tests
ship, into entries whose identity, links, text and dates are what the feed says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from herald.sources.feeds import SUMMARY_SOURCE_MAX, FeedDocument, NotAFeed, parse_feed
from tests.fakes.feed_server import feed_file


def read(name: str, url: str = "https://feeds.example.org/feed", **kwargs: str) -> FeedDocument:
    return parse_feed(feed_file(name), url=url, **kwargs)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "format_", "version", "title", "count"),
    [
        ("rss20_guids.xml", "rss", "rss20", "Lighthouse Notes", 3),
        ("rss20_no_guids.xml", "rss", "rss20", "Allotment Diary", 3),
        ("rss10_rdf.xml", "rss", "rss10", "Tide Gauge Bulletin", 2),
        ("rss091.xml", "rss", "rss091n", "Village Radio", 2),
        ("atom10_xml_base.xml", "atom", "atom10", "The Workshop", 2),
        ("atom03.xml", "atom", "atom03", "Old Weblog", 1),
        ("jsonfeed10.json", "json", "json10", "Kettle Reviews", 2),
        ("jsonfeed11.json", "json", "json11", "Night Trains", 2),
    ],
)
def test_every_format_and_version_is_read(
    name: str, format_: str, version: str, title: str, count: int
) -> None:
    document = read(name)
    assert (document.format, document.version, document.title) == (format_, version, title)
    assert len(document.entries) == count
    assert all(entry.site == "feed" and entry.title for entry in document.entries)
    assert document.problem is None


def test_rss20_with_guids() -> None:
    document = read("rss20_guids.xml")
    assert document.link == "https://lighthouse.example.org/"
    assert document.ttl_seconds == 90 * 60
    fog, lens, logbook = document.entries
    assert fog.guid == "lighthouse-post-1042"
    assert fog.key == "id:lighthouse-post-1042"
    assert fog.link == "https://lighthouse.example.org/2026/11/fog-season"
    assert fog.published_at == utc(2026, 11, 3, 8, 30)  # +0100 in the feed
    assert fog.updated_at is None
    assert fog.author == "Ada Keeper"  # dc:creator
    assert fog.comments_url == "https://lighthouse.example.org/2026/11/fog-season#comments"
    # The description, not content:encoded.
    assert fog.summary_text == "When the fog rolls in, the horn takes over from the lamp."
    assert fog.summary_html == "<p>When the fog rolls in, the horn takes over from the lamp.</p>"
    assert lens.guid == "lighthouse-post-1041"
    assert logbook.guid == "https://lighthouse.example.org/2026/10/logbook"  # a permalink guid
    assert logbook.summary_html == "Three ships, two storms and <em>one</em> seal."


def test_rss20_without_guids_keys_by_link_or_content() -> None:
    leeks, compost, note = read(
        "rss20_no_guids.xml", url="http://allotment.example.net/rss"
    ).entries
    assert leeks.guid is None
    assert leeks.key == "link:http://allotment.example.net/leeks"  # tracking dropped
    assert compost.link == "http://allotment.example.net/compost"  # relative to the feed
    # Neither title nor link: titled by its first words, keyed by its content.
    assert note.link is None
    assert note.title == "A short note without a title or a link: the shed roof…"
    assert note.key.startswith("hash:")


def test_an_item_with_only_a_link_is_titled_by_it() -> None:
    body = b"""<rss version="2.0"><channel><title>Links</title>
    <item><link>https://links.example.org/a</link></item></channel></rss>"""
    (entry,) = parse_feed(body, url="https://links.example.org/rss").entries
    assert (entry.title, entry.key) == (
        "https://links.example.org/a",
        "link:https://links.example.org/a",
    )


def test_guids_that_are_not_urls_stay_as_written_wherever_the_feed_lives() -> None:
    # An RSS guid without isPermaLink="false" is not a URL to resolve: the item's id must
    # not change when the feed moves (a permanent redirect would make every item new).
    here = read("rss20_entities_cdata.xml", url="https://cafe.example.fr/rss")
    moved = read("rss20_entities_cdata.xml", url="https://new.example.com/feeds/cafe")
    assert [e.guid for e in here.entries] == ["cafe-1", "cafe-2"]
    assert [e.key for e in here.entries] == [e.key for e in moved.entries]


def test_rss10_reads_dc_date_and_the_syndication_period() -> None:
    document = read("rss10_rdf.xml")
    assert document.ttl_seconds == 86_400 // 2  # daily, twice
    spring, neap = document.entries
    assert spring.guid == "https://tidegauge.example.com/b/202"  # rdf:about
    assert spring.published_at == spring.updated_at == utc(2026, 11, 2, 6, 40)
    assert neap.published_at == utc(2026, 10, 26, 4, 10)
    assert spring.author == "Harbour office"


def test_rss091_items_have_no_ids_or_dates() -> None:
    document = read("rss091.xml")
    fete = document.entries[0]
    assert (fete.guid, fete.published_at) == (None, None)
    assert fete.key == "link:http://radio.example.org/news/fete"


def test_atom10_resolves_links_against_xml_base() -> None:
    document = read("atom10_xml_base.xml", url="https://workshop.example.io/blog/feed.atom")
    assert document.link == "https://workshop.example.io/blog/"
    dovetails, sharpening = document.entries
    assert dovetails.link == "https://workshop.example.io/blog/posts/dovetails"
    assert dovetails.title == "Dovetails & patience"  # type="html": entities decoded once
    assert dovetails.guid == "tag:workshop.example.io,2026:post-77"
    assert dovetails.published_at == utc(2026, 11, 4, 8)
    assert dovetails.updated_at == utc(2026, 11, 4, 10)
    assert dovetails.author == "Grete Joiner"  # the feed's author
    # Links inside the summary resolve against its xml:base too.
    assert 'href="https://workshop.example.io/tools/saw"' in dovetails.summary_html
    # An entry's own xml:base; no <published>: its <updated> is its date.
    assert sharpening.link == "https://workshop.example.io/archive/sharpening.html"
    assert sharpening.published_at == sharpening.updated_at == utc(2026, 10, 20, 16, 30)
    assert sharpening.author == "Piet Plane"
    # No summary: the (xhtml) content, sanitised.
    assert sharpening.summary_html == "<p>Stones, <b>strop</b>, repeat.</p>"


def test_atom03_reads_issued_and_modified() -> None:
    (entry,) = read("atom03.xml").entries
    assert entry.published_at == utc(2005, 6, 1, 16)  # issued, -05:00
    assert entry.updated_at == utc(2005, 6, 1, 12)
    assert entry.author == "Mo Archive"


def test_json_feed_10() -> None:
    document = read("jsonfeed10.json", url="https://kettles.example.org/feed.json")
    assert document.link == "https://kettles.example.org/"
    copper, steel = document.entries
    assert copper.guid == "2"
    assert copper.title == "The copper kettle"
    # "summary" first (plain text by the spec), else the content.
    assert (copper.summary_html, copper.summary_text) == (
        "Beautiful &amp; slow.",
        "Beautiful & slow.",
    )
    assert copper.published_at == utc(2026, 11, 1, 13)
    assert copper.updated_at == utc(2026, 11, 2, 9)
    assert copper.author == "Bea Boil"  # the feed's author (1.0's object)
    assert steel.guid == "1"  # a number, read as a string as the spec says
    assert steel.link == "https://kettles.example.org/reviews/steel"
    assert steel.title == "A steel kettle that whistles in E flat. It works."
    assert steel.author == "Cy Steam"


def test_json_feed_11() -> None:
    vienna, timetable = read("jsonfeed11.json").entries
    assert vienna.author == "Lena Rail, Tom Sleeper"  # 1.1's authors list
    assert vienna.extra == {"tags": ["europe", "sleeper"]}
    assert 'src="https://nighttrains.example.com/img/couchette.jpg"' in vienna.summary_html
    assert vienna.published_at == utc(2026, 11, 3, 20, 15)
    assert timetable.published_at is None  # "not a date": unreadable, never "now"
    assert timetable.author == "Lena Rail"


def test_items_keep_document_order_whatever_their_dates() -> None:
    entries = read("rss20_out_of_order.xml").entries
    assert [e.title for e in entries] == ["Middle", "Oldest", "Newest"]
    assert [e.published_at for e in entries] == [
        utc(2026, 11, 4, 12),
        utc(2026, 11, 1, 12),
        utc(2026, 11, 6, 12),
    ]


def test_undated_and_same_second_items_keep_their_own_identity() -> None:
    entries = read("rss20_undated_same_second.xml").entries
    assert [e.published_at for e in entries] == [
        utc(2026, 11, 5, 14),
        utc(2026, 11, 5, 14),
        None,  # undated
        None,  # a date nobody can read
    ]
    assert len({e.key for e in entries}) == 4
    assert len({e.content_hash for e in entries}) == 4


def test_entities_and_cdata() -> None:
    document = read("rss20_entities_cdata.xml")
    assert document.title == "Café & Crème"
    fish, salt = document.entries
    assert fish.title == "Fish & chips \u2013 \u201cthe classic\u201d"
    assert salt.title == "Salt <& vinegar>"  # CDATA: the characters themselves
    assert fish.summary_text == "Crispy & hot — menu"
    # The script and the onclick are gone; the link stays, marked nofollow.
    assert "script" not in fish.summary_html and "onclick" not in fish.summary_html
    assert 'href="https://cafe.example.fr/menu"' in fish.summary_html
    assert salt.summary_text == "Café au lait & croissants"


@pytest.mark.parametrize(
    ("name", "title"),
    [("rss20_windows1252.xml", "Straßenfest \u2013 €5 Eintritt"), ("rss20_latin1.xml", None)],
)
def test_a_declared_non_utf8_encoding_is_honoured(name: str, title: str | None) -> None:
    document = read(name)
    assert document.title == "Grüße aus Köln"
    (entry,) = document.entries
    assert entry.title == (title or "Straßenfest - 5 EUR Eintritt")
    assert entry.summary_text.startswith("Schönes Wetter")


def test_the_http_charset_is_honoured_when_the_document_declares_none() -> None:
    text = '<rss version="2.0"><channel><title>Café</title><item><title>Crème brûlée</title>'
    text += "<guid>c-1</guid></item></channel></rss>"
    document = parse_feed(
        text.encode("latin-1"),
        url="https://cafe.example.fr/rss",
        content_type="application/rss+xml; charset=ISO-8859-1",
    )
    assert document.title == "Café"
    assert document.entries[0].title == "Crème brûlée"


def test_a_malformed_feed_is_read_with_its_problem_said() -> None:
    document = read("rss20_malformed.xml")
    assert document.problem is not None and "not well-formed" in document.problem
    assert document.title == "Hand-rolled Feed"
    first, second = document.entries
    assert (first.guid, first.title) == ("handrolled-1", "First post & more")
    assert first.summary_text == "An unescaped ampersand & a bold tag."
    assert second.guid == "handrolled-2"


def test_a_long_summary_is_cut_before_it_is_sanitised() -> None:
    words = "word " * (SUMMARY_SOURCE_MAX // 2)
    body = f"""<rss version="2.0"><channel><title>Long</title><item><guid>l-1</guid>
    <description>&lt;p&gt;{words}&lt;/p&gt;</description></item></channel></rss>"""
    (entry,) = parse_feed(body.encode(), url="https://long.example.org/rss").entries
    assert len(entry.summary_html) <= SUMMARY_SOURCE_MAX + len("</p>")
    assert entry.summary_html.startswith("<p>word") and entry.summary_html.endswith("</p>")


def test_an_empty_channel_is_a_feed_with_no_entries() -> None:
    body = b'<rss version="2.0"><channel><title>Quiet</title><item></item></channel></rss>'
    document = parse_feed(body, url="https://quiet.example.org/rss")
    assert (document.version, document.title, document.entries) == ("rss20", "Quiet", [])


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"", None, "empty"),
        (b"  \n ", "application/rss+xml", "empty"),
        (feed_file("page_with_feeds.html"), "text/html", "HTML page"),
        (feed_file("page_without_feeds.html"), None, "HTML page"),
        (b'{"data": [1, 2, 3]}', "application/json", "not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1"}', None, "without an items list"),
        (b"{not json", "application/feed+json", "cannot be read"),
        (b"[1, 2]", "application/json", "not a JSON Feed"),
        (b"Hello, plain text.", "text/plain", "not a feed"),
        (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>", None, "not a feed"),
    ],
)
def test_a_document_with_no_feed_is_not_a_feed(
    body: bytes, content_type: str | None, says: str
) -> None:
    with pytest.raises(NotAFeed, match=says) as raised:
        parse_feed(body, url="https://example.org/x", content_type=content_type)
    assert raised.value.status_code == 422


def test_feedparser_never_opens_a_body_as_a_file_or_url() -> None:
    # feedparser opens a str or bytes argument that names a file or URL: a body must
    # never be read as one.
    with pytest.raises(NotAFeed):
        parse_feed(b"/etc/hostname", url="https://example.org/x")
    with pytest.raises(NotAFeed):
        parse_feed(b"http://127.0.0.1:9/feed.xml", url="https://example.org/x")


def test_every_date_is_aware() -> None:
    for name in ("rss20_guids.xml", "rss10_rdf.xml", "atom10_xml_base.xml", "jsonfeed10.json"):
        for entry in read(name).entries:
            for moment in (entry.published_at, entry.updated_at):
                assert moment is None or moment.utcoffset() is not None


def test_external_entities_are_never_read() -> None:
    body = b"""<?xml version="1.0"?>
    <!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/hostname">]>
    <rss version="2.0"><channel><title>T</title>
    <item><guid>x-1</guid><title>a &secret; b</title></item></channel></rss>"""
    (entry,) = parse_feed(body, url="https://example.org/rss").entries
    assert entry.title == "a &secret; b"  # left as text, the file never opened


def test_nested_entities_are_not_expanded() -> None:
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    body = f"""<?xml version="1.0"?><!DOCTYPE rss [{"".join(levels)}]>
    <rss version="2.0"><channel><title>&lol9;</title>
    <item><guid>x-1</guid><title>&lol9;</title></item></channel></rss>"""
    document = parse_feed(body.encode(), url="https://example.org/rss")
    assert all(len(entry.title) < 100 for entry in document.entries)
    assert len(document.title or "") < 100


def test_unusable_links_are_dropped_not_fatal() -> None:
    body = b"""<rss version="2.0"><channel><title>Odd</title><link>http://[odd/</link>
    <item><guid>o-1</guid><title>Bad IPv6</title><link>http://[::1/x</link>
      <description>&lt;a href="rel"&gt;x&lt;/a&gt;</description></item>
    <item><guid>o-2</guid><title>Bad port</title><link>http://odd.example:99999/x</link></item>
    <item><guid>o-3</guid><title>Script</title><link>javascript:alert(1)</link></item>
    </channel></rss>"""
    document = parse_feed(body, url="https://odd.example/rss")
    assert document.link is None
    assert [e.link for e in document.entries] == [None, None, None]
    assert [e.key for e in document.entries] == ["id:o-1", "id:o-2", "id:o-3"]
    assert 'href="https://odd.example/rel"' in document.entries[0].summary_html


@pytest.mark.parametrize("content_type", ["text/html", "text/plain", "application/octet-stream"])
def test_a_feed_served_with_a_wrong_content_type_is_still_read(content_type: str) -> None:
    document = read("rss20_guids.xml", content_type=content_type)
    assert (document.version, len(document.entries)) == ("rss20", 3)
    assert document.problem is not None  # feedparser says what was off
