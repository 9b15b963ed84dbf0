"""Loading articles from real files, folders and a feed served over HTTP."""

from __future__ import annotations

import functools
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from index.ingest.html_pages import html_to_text
from index.ingest.loaders import iter_articles
from index.ingest.records import canonical_url, parse_published
from index.models import Article, LoadError


def load(*paths: str | Path, **kwargs: int) -> tuple[list[Article], list[LoadError]]:
    items = list(iter_articles(list(paths), **kwargs))
    articles = [i for i in items if isinstance(i, Article)]
    errors = [i for i in items if isinstance(i, LoadError)]
    return articles, errors


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)) + "\n"
                for x in lines),
        encoding="utf-8",
    )
    return path


TRAM_TEXT = (
    "The city council voted on Tuesday to approve a new tram line linking the central "
    "station with the university district, ending a decade of debate."
)

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
  <title>Gazzetta di Esempio</title>
  <link>https://gazzetta.example/</link>
  <language>it-IT</language>
  <item>
    <title>Nuova linea del tram approvata</title>
    <link>https://gazzetta.example/tram?utm_source=rss&amp;utm_medium=feed</link>
    <guid>https://gazzetta.example/?p=101</guid>
    <pubDate>Tue, 05 Mar 2024 09:30:00 +0100</pubDate>
    <description>Il consiglio approva la linea.</description>
    <content:encoded><![CDATA[<p>Il consiglio comunale ha approvato <b>martedì</b> la nuova
      linea del tram.</p><p>I lavori partiranno in primavera.</p>
      <script>track()</script>]]></content:encoded>
  </item>
  <item>
    <title>Sciopero dei trasporti venerdì</title>
    <link>https://gazzetta.example/sciopero</link>
    <pubDate>Wed, 06 Mar 2024 18:00:00 GMT</pubDate>
    <description>&lt;p&gt;Venerdì si fermano bus e metro per 24 ore.&lt;/p&gt;</description>
  </item>
  <item>
    <title>Solo un titolo</title>
    <link>https://gazzetta.example/vuoto</link>
  </item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Planet Wire</title>
  <link href="https://wire.example/"/>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2024-03-07T10:00:00Z</updated>
  <entry>
    <title>Rover finds water ice</title>
    <link href="https://wire.example/rover"/>
    <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
    <published>2024-03-07T08:15:00+02:00</published>
    <updated>2024-03-07T09:00:00Z</updated>
    <summary>Short summary.</summary>
    <content type="html">&lt;p&gt;The rover found water ice near the pole.&lt;/p&gt;&lt;p&gt;Scientists were surprised.&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>Launch delayed</title>
    <link href="https://wire.example/launch"/>
    <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6b</id>
    <updated>2024-03-06T12:00:00Z</updated>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>The launch was delayed by wind.</p><p>A new date is expected soon.</p></div></content>
  </entry>
</feed>
"""

HTML_PAGE = f"""<!doctype html>
<html lang="en"><head>
<title>Council approves new tram line | Daily Planet</title>
<meta property="og:title" content="Council approves new tram line">
<meta property="og:site_name" content="Daily Planet">
<meta property="og:url" content="https://dailyplanet.example/news/tram">
<meta property="article:published_time" content="2024-03-05T09:30:00+01:00">
</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/subscribe">Subscribe to our newsletter</a></li></ul></nav>
<header><h1>Council approves new tram line</h1></header>
<main><article>
<p>{TRAM_TEXT}</p>
<p>The line will run for 7.5 kilometres and include twelve stops. Construction is expected
to begin next spring and last about three years, according to the transport department.</p>
<p>Opposition councillors criticised the cost, estimated at 310 million euros, and asked for
an independent review of the passenger forecasts before the first contracts are signed.</p>
</article></main>
<aside><h3>Most read</h3><ul><li><a href="/a">Celebrity chef opens a bakery</a></li>
<li><a href="/b">Ten tips for a greener garden</a></li></ul></aside>
<footer><p>Copyright 2024 Daily Planet. All rights reserved.</p>
<p><a href="/privacy">Privacy policy</a> | <a href="/cookies">Cookie settings</a></p></footer>
</body></html>
"""


# ---------------------------------------------------------------------------------------------
# Each format
# ---------------------------------------------------------------------------------------------


def test_jsonl_records_fields_extra_and_line_origins(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "news.jsonl", [
        {"id": "a1", "title": "Tram approved", "text": TRAM_TEXT, "url": "https://x.example/a",
         "published": "2024-03-05T09:30:00+01:00", "source": "Daily Planet", "lang": "en",
         "category": "Transport", "sources": [{"name": "DP"}]},
        "",
        {"id": 42, "text": "Second article body."},
    ])
    articles, errors = load(path)
    assert errors == []
    first, second = articles
    assert (first.id, first.title, first.text, first.source, first.lang) == (
        "a1", "Tram approved", TRAM_TEXT, "Daily Planet", "en")
    assert first.published == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert first.extra == {"category": "Transport", "sources": [{"name": "DP"}]}
    assert first.origin == f"{path}:1"
    assert (second.id, second.origin, second.title, second.published) == (
        "42", f"{path}:3", "", None)


def test_json_list_and_single_object(tmp_path: Path) -> None:
    many = tmp_path / "many.json"
    many.write_text(json.dumps([{"id": "x", "text": "One."}, {"id": "y", "text": "Two."}]))
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"id": "z", "title": "Solo", "text": "Three."}))
    articles, errors = load(many, one)
    assert errors == []
    assert [(a.id, a.text, a.origin) for a in articles] == [
        ("x", "One.", f"{many}#1"), ("y", "Two.", f"{many}#2"), ("z", "Three.", str(one))]


def test_txt_with_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "story.txt"
    path.write_text(
        "---\ntitle: \"Tram: the vote\"\nurl: https://x.example/tram\npublished: 2024-03-05\n"
        "source: Daily Planet\nlang: en\nauthor: Jane Doe\n---\n\n" + TRAM_TEXT + "\n",
        encoding="utf-8",
    )
    (article,), errors = load(path)
    assert errors == []
    assert article.title == "Tram: the vote"
    assert article.url == "https://x.example/tram"
    assert article.published == datetime(2024, 3, 5, tzinfo=UTC)
    assert (article.source, article.lang, article.origin) == ("Daily Planet", "en", str(path))
    assert article.text.strip() == TRAM_TEXT
    assert article.extra == {"author": "Jane Doe"}


def test_txt_without_front_matter_takes_first_line_as_title(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("\n  Tram line approved  \n\n" + TRAM_TEXT + "\n", encoding="utf-8")
    (article,), _ = load(path)
    assert article.title == "Tram line approved"
    assert article.text.strip() == TRAM_TEXT
    assert article.id.startswith("sha:")


def test_txt_whose_first_line_is_a_paragraph_has_no_title(tmp_path: Path) -> None:
    long_line = " ".join([TRAM_TEXT] * 2)
    path = tmp_path / "para.txt"
    path.write_text(long_line + "\n\nMore text follows.\n", encoding="utf-8")
    (article,), _ = load(path)
    assert article.title == ""
    assert article.text.startswith(long_line)


def test_markdown_heading_becomes_title(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text("# Tram line approved\n\n" + TRAM_TEXT + "\n", encoding="utf-8")
    (article,), _ = load(path)
    assert article.title == "Tram line approved"
    assert "#" not in article.text and TRAM_TEXT in article.text


def test_html_main_text_is_extracted_without_boilerplate(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(HTML_PAGE, encoding="utf-8")
    (article,), errors = load(path)
    assert errors == []
    assert article.title == "Council approves new tram line"
    assert article.source == "Daily Planet"
    assert article.url == "https://dailyplanet.example/news/tram"
    assert article.published == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert article.text.startswith(TRAM_TEXT)
    assert "310 million euros" in article.text
    assert "\n\n" in article.text  # paragraphs stay paragraphs
    for boilerplate in ("Subscribe", "All rights reserved", "Privacy policy", "Celebrity chef"):
        assert boilerplate not in article.text
    assert article.id == "url:" + __import__("hashlib").sha1(
        b"https://dailyplanet.example/news/tram").hexdigest()[:16]


def test_rss_file_entries(tmp_path: Path) -> None:
    path = tmp_path / "gazzetta.rss"
    path.write_text(RSS, encoding="utf-8")
    articles, errors = load(path)
    tram, strike = articles
    assert tram.title == "Nuova linea del tram approvata"
    assert tram.text == (
        "Il consiglio comunale ha approvato martedì la nuova linea del tram.\n\n"
        "I lavori partiranno in primavera."
    )
    assert tram.source == "Gazzetta di Esempio" and tram.lang == "it-IT"
    assert tram.published == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert tram.origin == f"{path}#1"
    assert tram.url is not None and tram.id == _url_id("https://gazzetta.example/tram")
    assert strike.text == "Venerdì si fermano bus e metro per 24 ore."
    assert strike.published == datetime(2024, 3, 6, 18, 0, tzinfo=UTC)
    (empty,) = errors
    assert empty.origin == f"{path}#3" and "no summary or content" in empty.reason


def test_atom_file_entries(tmp_path: Path) -> None:
    path = tmp_path / "wire.atom"
    path.write_text(ATOM, encoding="utf-8")
    articles, errors = load(path)
    assert errors == []
    rover, launch = articles
    assert rover.text == "The rover found water ice near the pole.\n\nScientists were surprised."
    assert rover.published == datetime(2024, 3, 7, 6, 15, tzinfo=UTC)
    assert rover.source == "Planet Wire" and rover.url == "https://wire.example/rover"
    assert launch.text == "The launch was delayed by wind.\n\nA new date is expected soon."
    assert launch.published == datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
    assert launch.origin == f"{path}#2"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a folder, for feed fetching."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_feed_over_http(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "feed.xml").write_text(RSS, encoding="utf-8")
    url = f"{base}/feed.xml"
    articles, errors = load(url)
    assert [a.title for a in articles] == [
        "Nuova linea del tram approvata", "Sciopero dei trasporti venerdì"]
    assert [a.origin for a in articles] == [f"{url}#1", f"{url}#2"]
    assert articles[0].text.endswith("I lavori partiranno in primavera.")
    assert [e.origin for e in errors] == [f"{url}#3"]


def test_html_page_over_http(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "tram.html").write_text(HTML_PAGE, encoding="utf-8")
    url = f"{base}/tram.html"
    (article,), errors = load(url)
    assert errors == []
    assert article.origin == url and article.title == "Council approves new tram line"
    assert article.text.startswith(TRAM_TEXT) and "Subscribe" not in article.text


def test_http_errors_and_unreachable_urls(http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    missing, refused = f"{base}/nope.xml", f"http://127.0.0.1:{closed_port}/feed.xml"
    articles, errors = load(missing, refused)
    assert articles == []
    assert [e.origin for e in errors] == [missing, refused]
    assert "404" in errors[0].reason
    assert "cannot reach 127.0.0.1" in errors[1].reason


# ---------------------------------------------------------------------------------------------
# Bad input: reported with a reason, the rest still loads
# ---------------------------------------------------------------------------------------------


def test_bad_input_in_a_folder_is_reported_and_good_records_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "secret.jsonl").write_text('{"id": "hidden", "text": "x"}\n')
    (folder / ".draft.txt").write_text("Hidden draft\n\nNot loaded.")
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4")
    jsonl = write_jsonl(folder / "a.jsonl", [
        {"id": "good-1", "text": "First good article."},
        '{"title": "broken',
        "[1, 2, 3]",
        {"id": "no-text", "title": "Only a title"},
        {"id": "blank", "text": "   \n  "},
        {"id": "num", "text": 12},
        {"id": "good-2", "text": "Second good article."},
    ])
    with (folder / "a.jsonl").open("ab") as fh:
        fh.write(b'{"id": "bad-utf8", "text": "Perch\xe9"}\n')
    (folder / "bin.txt").write_bytes(b"\x00\x01\x02binary")
    (folder / "latin1.txt").write_bytes("Titolo\n\nPerché no".encode("latin-1"))
    (folder / "sub" / "broken.xml").write_text("<rss version='2.0'>\n<channel><<<>>>")
    (folder / "sub" / "big.json").write_text(json.dumps({"text": "x" * 5000}))
    (folder / "sub" / "locked.txt").write_text("Locked\n\nSecret text.")
    (folder / "sub" / "ok.txt").write_text("Good title\n\nThird good article.")

    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    articles, errors = load(folder, max_file_bytes=4000)

    ok_id = "sha:" + _sha1_16("Good title\nThird good article.")
    assert [a.id for a in articles] == ["good-1", "good-2", ok_id]
    reasons = {e.origin: e.reason for e in errors}
    assert "invalid JSON on line 2" in reasons[f"{jsonl}:2"]
    assert "Unterminated string" in reasons[f"{jsonl}:2"]
    assert reasons[f"{jsonl}:3"] == "line 3 is a JSON array, not an object"
    assert reasons[f"{jsonl}:4"] == "record 'no-text' has no 'text' field"
    assert reasons[f"{jsonl}:5"] == "record 'blank' has an empty 'text'"
    assert "not a string" in reasons[f"{jsonl}:6"]
    assert "invalid UTF-8 on line 8 at byte offset 33 of the line" in reasons[f"{jsonl}:8"]
    assert "NUL" in reasons[str(folder / "bin.txt")]
    assert "invalid UTF-8 at byte offset 13 (line 3)" in reasons[str(folder / "latin1.txt")]
    assert reasons[str(folder / "sub" / "broken.xml")] == (
        "not a valid RSS/Atom feed: not well-formed (invalid token) at line 2, column 10")
    big = reasons[str(folder / "sub" / "big.json")]
    assert "5,012 bytes" in big and "limit of 4,000 bytes" in big
    assert reasons[str(folder / "sub" / "locked.txt")] == "cannot read file: permission denied"
    assert len(errors) == 11  # nothing from hidden files or the .pdf


def test_explicit_paths_unknown_type_and_missing(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    _, errors = load(pdf, tmp_path / "missing.jsonl")
    assert errors[0].origin == str(pdf) and "unsupported file type '.pdf'" in errors[0].reason
    assert errors[1] == LoadError(str(tmp_path / "missing.jsonl"), "no such file or folder")


def test_xml_that_is_not_a_feed(tmp_path: Path) -> None:
    path = tmp_path / "data.xml"
    path.write_text("<?xml version='1.0'?><catalog><book>Title</book></catalog>")
    _, errors = load(path)
    assert errors == [LoadError(str(path), "no RSS or Atom feed found in the document")]


def test_empty_text_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("\n \n")
    _, errors = load(path)
    assert errors == [LoadError(str(path), "empty file")]


# ---------------------------------------------------------------------------------------------
# Ids and dates
# ---------------------------------------------------------------------------------------------


def _sha1_16(text: str) -> str:
    return __import__("hashlib").sha1(text.encode()).hexdigest()[:16]


def _url_id(canonical: str) -> str:
    return "url:" + _sha1_16(canonical)


def test_ids_are_stable_and_url_variants_agree(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ids.jsonl", [
        {"text": "A.", "url": "https://News.Example.com/story/?utm_source=tw&utm_medium=x#top"},
        {"text": "B.", "url": "https://news.example.com/story?fbclid=abc"},
        {"text": "C.", "url": "https://news.example.com/story?gclid=1&page=2"},
        {"text": "D.", "title": "No url"},
        {"id": "given", "text": "E.", "url": "https://news.example.com/story"},
    ])
    first, _ = load(path)
    again, _ = load(path)
    ids = [a.id for a in first]
    assert ids == [a.id for a in again]
    assert ids[0] == ids[1] == _url_id("https://news.example.com/story")
    assert ids[2] == _url_id("https://news.example.com/story?page=2")
    assert ids[3] == "sha:" + _sha1_16("No url\nD.")
    assert ids[4] == "given"


@pytest.mark.parametrize(("url", "canonical"), [
    ("HTTPS://WWW.Example.COM:443/a/b/?utm_campaign=x&q=1#frag", "https://www.example.com/a/b?q=1"),
    ("http://example.com:8080/", "http://example.com:8080"),
    ("https://example.com/path?UTM_Source=a&b=&fbclid=z", "https://example.com/path?b="),
    ("  https://example.com/Case/Kept  ", "https://example.com/Case/Kept"),
])
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-03-05", datetime(2024, 3, 5, tzinfo=UTC)),
    ("2024-03-05T10:00:00", datetime(2024, 3, 5, 10, tzinfo=UTC)),
    ("2024-03-05T10:00:00Z", datetime(2024, 3, 5, 10, tzinfo=UTC)),
    ("2024-03-05T10:00:00+02:00", datetime(2024, 3, 5, 8, tzinfo=UTC)),
    ("Tue, 05 Mar 2024 10:00:00 +0100", datetime(2024, 3, 5, 9, tzinfo=UTC)),
    ("last Tuesday", None),
    ("", None),
    (2024, None),
])
def test_parse_published(raw: object, expected: datetime | None) -> None:
    assert parse_published(raw) == expected


def test_unparseable_date_keeps_the_article(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "d", "text": "T.", "published": "soon"}])
    (article,), errors = load(path)
    assert errors == [] and article.published is None
    assert article.extra["published_raw"] == "soon"


def test_html_to_text_keeps_paragraphs_and_drops_scripts() -> None:
    html = ("<div><p>One <i>two</i>\n three.</p><!-- c --><p>Four<br>five.</p>"
            "<script>evil()</script><ul><li>six</li><li>seven</li></ul></div>")
    assert html_to_text(html) == "One two three.\n\nFour\nfive.\n\nsix\n\nseven"
