"""Renderers: Telegram HTML that Telegram accepts whatever the articles contain, plain text
for the terminal, and the JSON shape of ``ask --json``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from index.models import Answer, Filters, Hit, OutletRef
from index.render.answer_json import answer_to_json
from index.render.answers import RAW_LIMIT, describe_filters, visible_length
from index.render.plain import render_plain
from index.render.telegram_html import render_telegram_html

try:  # the fake Bot API's parser (tdlib's rules), as a second opinion when present
    from fakebotapi import parse_html as _tdlib_parse
except ImportError:  # pragma: no cover
    _tdlib_parse = None

ALLOWED = {"b", "i", "u", "s", "a", "code", "pre", "blockquote"}
ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class StrictTelegramHtml(HTMLParser):
    """Telegram's HTML subset, strictly: allowed tags only, balanced, known entities only, no
    bare ``<``/``>``/``&``, links only to http(s). Collects the visible text and the links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.hrefs: list[str] = []
        self.bold_in_quote: list[str] = []
        self.quotes: list[str] = []
        self.errors: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED:
            self.error(f"tag <{tag}>")
        if tag == "a":
            if len(attrs) != 1 or attrs[0][0] != "href" or not attrs[0][1]:
                self.error(f"<a> attrs {attrs}")
            elif not re.match(r"https?://", attrs[0][1]):
                self.error(f"href {attrs[0][1]!r}")
            else:
                self.hrefs.append(attrs[0][1])
        elif attrs:
            self.error(f"attrs on <{tag}>: {attrs}")
        if tag == "blockquote":
            if "blockquote" in self.stack:
                self.error("nested blockquote")
            self.quotes.append("")
        if tag == "b" and "blockquote" in self.stack:
            self.bold_in_quote.append("")
        self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.error(f"self-closing <{tag}/>")

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.error(f"unbalanced </{tag}> with open {self.stack}")
        else:
            self.stack.pop()

    def _emit(self, s: str) -> None:
        self.text.append(s)
        if "blockquote" in self.stack:
            self.quotes[-1] += s
            if self.stack[-1] == "b":
                self.bold_in_quote[-1] += s

    def handle_data(self, data):
        if any(c in data for c in "<>&"):
            self.error(f"bare markup character in {data[:40]!r}")
        self._emit(data)

    def handle_entityref(self, name):
        if name not in ENTITIES:
            self.error(f"entity &{name};")
        self._emit(ENTITIES.get(name, ""))

    def handle_charref(self, name):
        self._emit(chr(int(name[1:], 16) if name[:1] in "xX" else int(name)))

    def handle_comment(self, data):
        self.error("comment")

    def handle_decl(self, decl):
        self.error("declaration")

    def handle_pi(self, data):
        self.error("processing instruction")

    def unknown_decl(self, data):
        self.error("unknown declaration")


def validate(message: str, max_len: int = 4096) -> StrictTelegramHtml:
    p = StrictTelegramHtml()
    p.feed(message)
    p.close()
    assert not p.errors, p.errors
    assert not p.stack, f"unclosed {p.stack}"
    visible = "".join(p.text)
    assert visible_length(message) == len(visible.encode("utf-16-le")) // 2
    assert visible_length(message) <= max_len
    assert len(message) <= RAW_LIMIT
    if _tdlib_parse is not None:
        assert _tdlib_parse(message).text == visible
    return p


def quote_is_exact(parser: StrictTelegramHtml, hit: Hit) -> None:
    """Each shown quote, ellipses aside, is a verbatim piece of the article's quote."""
    for shown in parser.quotes:
        body = shown.removeprefix("… ").removesuffix(" …")
        assert body in hit.quote


ROME = ZoneInfo("Europe/Rome")
WHEN = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
HOSTILE = (
    'Prima frase con <script>alert(1)</script> & "virgolette". '
    "Seconda frase con <b>grassetto non chiuso e &amp; entità &bogus; &#0; "
    "Terza frase, quella giusta. Quarta frase </blockquote> finale."
)


def make_hit(
    quote: str = "Prima frase. La frase evidenziata. Ultima frase.",
    highlight: str | None = "La frase evidenziata.",
    *,
    article_id: str = "a1",
    title: str = "Un titolo",
    source: str | None = "ANSA",
    url: str | None = "https://www.ansa.it/articolo.html",
    published: datetime | None = WHEN,
    also: list[OutletRef] | None = None,
    ellipsis_before: bool = False,
    ellipsis_after: bool = False,
    highlight_at: int | None = None,
) -> Hit:
    hs = highlight_at if highlight_at is not None else quote.index(highlight) if highlight else 0
    he = hs + len(highlight) if highlight else 0
    return Hit(
        article_id=article_id,
        title=title,
        source=source,
        url=url,
        published=published,
        lang="it",
        quote=quote,
        quote_start=100,
        highlight_start=hs,
        highlight_end=he,
        score=0.87,
        chunk_id="c1",
        ellipsis_before=ellipsis_before,
        ellipsis_after=ellipsis_after,
        also_reported_by=also or [],
    )


def answer(hits: list[Hit], question: str = "Cosa è successo?", filters: Filters | None = None):
    return Answer(question, question, filters or Filters(), hits)


# -- escaping -------------------------------------------------------------------------------


def test_hostile_article_text_is_escaped_and_valid():
    hit = make_hit(
        HOSTILE,
        "Terza frase, quella giusta.",
        title='<script>alert("t")</script> & <b>Titolo',
        source="<i>Fonte</i> & co",
        url='https://ex.com/a?x=1&y="2"&z=<3>',
        also=[
            OutletRef("b", "Evil", "javascript:alert(1)"),
            OutletRef("c", 'Good "one"', "https://good.example/x?a=1&b=2"),
            OutletRef("d", "Data", "data:text/html,<script>"),
        ],
    )
    msgs = render_telegram_html(answer([hit], question="<b>chi</b> & cosa?"), lang="it")
    assert len(msgs) == 1
    p = validate(msgs[0])
    visible = "".join(p.text)
    for literal in ("<script>alert(1)</script>", '<script>alert("t")</script> & <b>Titolo',
                    "</blockquote>", "&amp; entità &bogus; &#0;", "<i>Fonte</i> & co",
                    "<b>chi</b> & cosa?", 'Good "one"', "Evil", "Data"):  # fmt: skip
        assert literal in visible
    assert p.bold_in_quote == ["Terza frase, quella giusta."]
    quote_is_exact(p, hit)
    assert all("javascript" not in h and not h.startswith("data:") for h in p.hrefs)
    assert 'https://ex.com/a?x=1&y=%222%22&z=%3C3%3E' in p.hrefs  # fmt: skip
    assert "https://good.example/x?a=1&b=2" in p.hrefs


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://x.org/a", "/relative", "http://",
                                 "https://ex.com/a b", "https://ex.com/\x00"])  # fmt: skip
def test_only_http_urls_become_links(url):
    msgs = render_telegram_html(answer([make_hit(url=url)]))
    p = validate(msgs[0])
    assert p.hrefs == []
    assert "javascript" not in msgs[0]
    assert "open at the passage" not in "".join(p.text)


def test_visible_length_strips_tags_and_decodes_entities():
    assert visible_length("<b>a&amp;b</b>") == 3
    assert visible_length('<a href="https://x.org/?a=1&amp;b=2">x</a>') == 1
    assert visible_length("&lt;b&gt;") == 3
    assert visible_length("😀") == 2  # UTF-16, as Telegram counts


# -- lengths and splitting ------------------------------------------------------------------


def long_text(n: int, unit: str = "Frase numero {i} del lungo articolo & <tag>. ") -> str:
    out, size, i = [], 0, 0
    while size < n:
        out.append(unit.format(i=i))
        size += len(out[-1])
        i += 1
    return "".join(out)


@pytest.mark.parametrize(
    "unit",
    [
        "Frase numero {i} del lungo articolo & <tag>. ",
        '&&&&<<<<>>>>"""" {i} ',  # escaping multiplies the raw length
        "😀🇮🇹 emoji {i} ",  # two UTF-16 units each
        "x",  # one 50 kB word: no boundary at all
    ],
)
def test_a_50kb_quote_is_shortened_to_fit(unit):
    text = long_text(50_000, unit)
    mid = len(text) // 2
    highlight = text[mid : mid + 200]
    hit = make_hit(text, highlight, highlight_at=mid)
    msgs = render_telegram_html(answer([hit]))
    assert len(msgs) == 1
    p = validate(msgs[0])
    quote_is_exact(p, hit)
    shown = p.quotes[0]
    assert shown.startswith("… ") and shown.endswith(" …")
    assert p.bold_in_quote and p.bold_in_quote[0]
    assert highlight.startswith(p.bold_in_quote[0].strip())


def test_a_50kb_highlight_keeps_its_start():
    text = long_text(50_000)
    hit = make_hit(text, text)
    p = validate(render_telegram_html(answer([hit]))[0])
    assert text.startswith(p.bold_in_quote[0])
    assert p.quotes[0].endswith(" …")
    assert "Frase numero 0 del lungo" in p.bold_in_quote[0]
    # cut at a sentence end: the last shown sentence is complete
    assert p.bold_in_quote[0].rstrip().endswith(".")


def test_splitting_happens_only_between_hits():
    hits = [
        make_hit(long_text(1500), None, article_id=f"a{i}", title=f"Titolo {i}") for i in range(6)
    ]
    msgs = render_telegram_html(answer(hits))
    assert len(msgs) > 1
    seen = []
    for m in msgs:
        p = validate(m)
        visible = "".join(p.text)
        for i in range(6):
            if f"Titolo {i}" in visible:
                seen.append(i)
                assert f"{i + 1}." in visible
        for q in p.quotes:
            assert q in hits[0].quote  # never cut: these fit whole
    assert seen == list(range(6))
    assert "6 passages for: Cosa è successo?" in msgs[0]
    assert "passages for" not in "".join(msgs[1:])


def test_small_max_len_is_respected():
    hits = [make_hit(long_text(3000), None, also=[OutletRef("x", f"Out {j}", None) for j in range(9)])
            for _ in range(3)]  # fmt: skip
    for max_len in (300, 1000):
        msgs = render_telegram_html(answer(hits), max_len=max_len)
        assert len(msgs) == 3
        for m in msgs:
            validate(m, max_len=max_len)


def test_start_index_numbers_later_pages():
    msgs = render_telegram_html(answer([make_hit(), make_hit()]), start_index=4, lang="it")
    p = validate(msgs[0])
    visible = "".join(p.text)
    assert visible.startswith("Altri passaggi per: Cosa è successo?")
    assert "4." in visible and "5." in visible and "1." not in visible


# -- labels and dates -----------------------------------------------------------------------


def test_italian_labels_and_dates():
    hit = make_hit(also=[OutletRef("b", "Reuters", "https://reuters.com/x"),
                         OutletRef("c", "AGI", None), OutletRef("d", "ANSA", None)])  # fmt: skip
    msgs = render_telegram_html(answer([hit]), lang="it")
    p = validate(msgs[0])
    visible = "".join(p.text)
    assert visible.startswith("1 passaggio per: Cosa è successo?")
    assert "ANSA · 5 marzo 2024 · ↗ apri al passaggio" in visible
    assert "anche su: Reuters, AGI" in visible  # the hit's own outlet is not repeated
    assert "https://reuters.com/x" in p.hrefs
    frag = [h for h in p.hrefs if "#:~:text=" in h]
    assert frag == ["https://www.ansa.it/articolo.html#:~:text=La%20frase%20evidenziata"]
    assert p.bold_in_quote == ["La frase evidenziata."]


@pytest.mark.parametrize("lang", ["en", "de", "", "EN-us"])
def test_english_labels_and_fallback(lang):
    hit = make_hit(also=[OutletRef("b", "Reuters", "https://reuters.com/x")])
    visible = "".join(validate(render_telegram_html(answer([hit]), lang=lang)[0]).text)
    assert "1 passage for: Cosa è successo?" in visible
    assert "ANSA · 5 March 2024 · ↗ open at the passage" in visible
    assert "also reported by: Reuters" in visible


def test_regional_italian_code():
    visible = "".join(validate(render_telegram_html(answer([make_hit()]), lang="it-IT")[0]).text)
    assert "apri al passaggio" in visible


def test_dates_in_the_users_time_zone():
    hit = make_hit(published=datetime(2024, 3, 5, 23, 30, tzinfo=UTC))
    assert "6 March 2024" in render_telegram_html(answer([hit]), tz=ROME)[0]
    assert "5 March 2024" in render_telegram_html(answer([hit]))[0]


def test_many_outlets_are_capped():
    also = [OutletRef(f"o{i}", f"Outlet {i}", None) for i in range(8)]
    visible = "".join(validate(render_telegram_html(answer([make_hit(also=also)]))[0]).text)
    assert "Outlet 4, and 3 more" in visible and "Outlet 5" not in visible


def test_missing_fields_render():
    hit = make_hit(title="", source=None, url=None, published=None)
    p = validate(render_telegram_html(answer([hit]))[0])
    assert "(untitled)" in "".join(p.text)
    assert p.hrefs == []


def test_ellipsis_flags_are_shown():
    hit = make_hit(ellipsis_before=True, ellipsis_after=True)
    p = validate(render_telegram_html(answer([hit]))[0])
    assert p.quotes == ["… Prima frase. La frase evidenziata. Ultima frase. …"]


def test_filters_are_described_in_the_header():
    f = Filters(
        date_from=datetime(2024, 2, 29, 23, tzinfo=UTC),  # 1 March, Rome
        date_to=datetime(2024, 3, 31, 22, tzinfo=UTC),  # 1 April, Rome (exclusive)
        sources=["ansa"],
    )
    visible = "".join(
        validate(render_telegram_html(answer([make_hit()], filters=f), lang="it")[0]).text
    )
    assert "Filtri: dall'1 marzo 2024 al 31 marzo 2024 · fonte: ansa" in visible
    assert describe_filters(f, "en", ROME) == "from 1 March 2024 to 31 March 2024 · source: ansa"
    one_day = Filters(date_from=datetime(2024, 3, 7, 23, tzinfo=UTC),
                      date_to=datetime(2024, 3, 8, 23, tzinfo=UTC))  # fmt: skip
    assert describe_filters(one_day, "it") == "l'8 marzo 2024"
    since = Filters(date_from=datetime(2024, 3, 7, 23, tzinfo=UTC), langs=["it"])
    assert describe_filters(since, "it") == "dall'8 marzo 2024 · lingua: it"
    assert describe_filters(since, "en") == "since 8 March 2024 · language: it"


# -- nothing found --------------------------------------------------------------------------


def test_not_found_english_with_suggestion():
    a = Answer("chi ha vinto <b>?", "chi ha vinto", Filters(), [], suggestion="rephrase")
    msgs = render_telegram_html(a)
    assert len(msgs) == 1
    visible = "".join(validate(msgs[0]).text)
    assert visible.startswith("Nothing relevant found for: chi ha vinto <b>?")
    assert "other words" in visible
    assert "filters" not in visible.lower()


def test_not_found_italian_with_active_filters():
    f = Filters(sources=["ansa"], langs=["it"])
    a = Answer("chi ha vinto?", "chi ha vinto", f, [], suggestion="filters")
    visible = "".join(validate(render_telegram_html(a, lang="it")[0]).text)
    assert "Non ho trovato niente di pertinente per: chi ha vinto?" in visible
    assert "Filtri attivi: fonte: ansa · lingua: it." in visible
    assert "Riprova senza i filtri." in visible
    plain = render_plain(a, lang="it")
    assert "Filtri attivi" in plain and "<" not in plain


def test_not_found_filters_hint_without_suggestion_and_free_text_suggestion():
    a = Answer("q", "q", Filters(langs=["en"]), [])
    assert "Try again without the filters." in "".join(validate(render_telegram_html(a)[0]).text)
    a = Answer("q", "q", Filters(), [], suggestion="Try <b>this</b> & that")
    assert "Try <b>this</b> & that" in "".join(validate(render_telegram_html(a)[0]).text)


# -- plain text and JSON --------------------------------------------------------------------


def test_render_plain():
    hit = make_hit(
        "Prima\x1b[31m frase.\nLa frase evidenziata. Ultima frase.",
        "La frase evidenziata.",
        title="Titolo\nsu due righe",
        also=[OutletRef("b", "Reuters", "https://reuters.com/x")],
        ellipsis_after=True,
    )
    out = render_plain(answer([hit]), lang="it")
    assert "\x1b" not in out
    assert "[1] Titolo su due righe" in out
    assert "ANSA · 5 marzo 2024" in out
    assert "https://www.ansa.it/articolo.html" in out
    assert "⟦La frase evidenziata.⟧" in out and "Ultima frase. …" in out
    assert "anche su: Reuters <https://reuters.com/x>" in out
    assert "<b>" not in out and "&amp;" not in out


def test_answer_to_json_shape():
    f = Filters(date_from=datetime(2024, 3, 1, tzinfo=UTC), sources=["ansa"])
    hits = [make_hit(also=[OutletRef("b", "Reuters", "https://reuters.com/x", "T")]),
            make_hit(published=None, url=None)]  # fmt: skip
    data = answer_to_json(Answer("q?", "q", f, hits))
    decoded = json.loads(json.dumps(data))
    assert decoded == data
    assert set(data) == {"question", "hits", "filters"}
    assert data["question"] == "q?"
    required = {"article_id", "title", "source", "url", "published", "quote", "highlight", "score"}
    for h in data["hits"]:
        assert required <= set(h) <= required | {"also_reported_by"}
    first, second = data["hits"]
    assert first["published"] == "2024-03-05T10:00:00+00:00"
    assert first["highlight"] == "La frase evidenziata."
    assert first["score"] == 0.87
    assert first["also_reported_by"] == [
        {"article_id": "b", "source": "Reuters", "url": "https://reuters.com/x", "title": "T"}
    ]
    assert second["published"] is None and second["url"] is None
    assert data["filters"] == {
        "date_from": "2024-03-01T00:00:00+00:00",
        "date_to": None,
        "sources": ["ansa"],
        "langs": [],
    }
    assert answer_to_json(Answer("q", "q", Filters(), []))["hits"] == []


def test_a_long_question_is_cut_short_in_the_bold_header():
    long_q = ("Qual è stato il prezzo del biglietto per il concerto di Vasco Rossi a San Siro "
              "la scorsa estate, e quanti spettatori c'erano secondo gli organizzatori?")
    (msg,) = render_telegram_html(answer([make_hit()], question=long_q), lang="it")
    header = msg.split("\n", 1)[0]
    assert header.startswith("<b>") and header.endswith("…</b>")
    assert len(header) <= len("<b>1 passaggio per: </b>") + 64
