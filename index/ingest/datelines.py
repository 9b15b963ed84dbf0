"""Titles that are datelines ("London CNN —", "ROMA —", "(ANSA) - MILANO,") and the
datelines that open a scraped body.

Scrapers often take the first bold line of a page as its title, and on wire-style pages
that line is the dateline: a place, an outlet and a dash. Such a title is prefixed to every
passage the embedder reads and is shown in every reply, so it is replaced by the page's
``og:title``/``<title>`` when the HTML loader found one, else by the article's first real
sentence. The dateline opening the body is removed as well: it is debris, not text a reply
would quote.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

MAX_DATELINE_TOKENS = 7
MAX_HEADLINE_CHARS = 100
MIN_HEADLINE_CHARS = 35
MIN_PAGE_TITLE_WORDS = 3
HEAD_BYTES = 200_000  # <title> and <meta> live in the head, well before this

# Extra fields the HTML loader keeps: other titles a page gives itself, best first.
PAGE_TITLE_FIELDS = ("og_title", "html_title")

_DASH = r"(?:—|–|-{1,2})"
_TRAILING = re.compile(rf"\s*(?:{_DASH}|,)\s*$")
_TOKEN = re.compile(r"\([^()]{1,30}\)|[^\s,()]+")
_MONTH = re.compile(
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|gen|mag|giu|lug|ago|set|ott|dic)"
    r"[a-z]*\.?",
    re.IGNORECASE,
)
_CONNECTORS = frozenset(
    [
        "de",
        "di",
        "del",
        "della",
        "da",
        "of",
        "the",
        "on",
        "upon",
        "am",
        "la",
        "le",
        "el",
        "al",
        "d'",
        "l'",
    ]
)
# "(ANSA) - ROMA, 12 MAG -", "LONDON (Reuters) -", "New York CNN Business —": a run of
# place/outlet/date tokens ended by a dash (or, after an agency, a comma).
_BODY_PREFIX = re.compile(rf"^(?P<head>[^\n.!?;:]{{1,80}}?)\s+{_DASH}\s+(?=[\"'“‘«(]?[^\W\d_])")
_AGENCY_PREFIX = re.compile(rf"^\((?P<agency>[^()]{{2,20}})\)\s*{_DASH}\s*")
_PLACE_COMMA = re.compile(r"^(?P<place>[A-ZÀ-Ý][A-ZÀ-Ý'’ .]{1,30}),\s+(?=\S)")
_SENTENCE_END = re.compile(
    r"(?<=[.!?])(?<!\b[A-Z]\.)(?<!\bMr\.)(?<!\bDr\.)\s+(?=[\"'“‘«(]?[A-ZÀ-Ý0-9])"
)
_CLAUSE = re.compile(r"(?:,|;|:| —| –| -)\s")
_SITE_SEPARATOR = re.compile(r"\s+(?:\||—|–|-|·|::)\s+")


def is_dateline(title: str, source: str | None = None) -> bool:
    """True for a title that only says where and who: place, outlet, date, then a dash."""
    text = title.strip()
    if not text:
        return False
    if source and _fold(text.rstrip(" —–-,:")) == _fold(source):
        return True
    if not _TRAILING.search(text) and not _AGENCY_PREFIX.match(text):
        return False
    return _is_dateline_head(_TRAILING.sub("", _AGENCY_PREFIX.sub("", text)))


def strip_body_dateline(text: str, *, title_was_dateline: bool, source: str | None) -> str:
    """``text`` without the dateline that opens it ("London CNN — The UK…" → "The UK…").

    Only a prefix made of place/outlet/date tokens is removed, and only when the title was
    a dateline too or the prefix is unmistakable (an agency in brackets, a capitalised
    place, the outlet's own name): "Il governo - ha detto…" stays as it is.
    """
    rest = text
    agency = _AGENCY_PREFIX.match(rest)
    if agency:
        rest = rest[agency.end() :]
        comma = _PLACE_COMMA.match(rest)
        if comma:
            rest = rest[comma.end() :]
    match = _BODY_PREFIX.match(rest)
    if match and _is_dateline_head(match.group("head")):
        head = match.group("head")
        if agency or title_was_dateline or _unmistakable(head, source):
            rest = rest[match.end() :]
    if rest is text or not rest.strip():
        return text
    return rest.lstrip()


def page_titles(data: bytes) -> dict[str, str]:
    """``og_title`` and ``html_title`` of a saved page, for when its headline is a dateline."""
    parser = _HeadTitles()
    try:
        parser.feed(data[:HEAD_BYTES].decode("utf-8", errors="replace"))
        parser.close()
    except Exception:  # a malformed head only means no fallback title
        return {}
    found = {"og_title": parser.og_title, "html_title": parser.title}
    return {k: " ".join(v.split()) for k, v in found.items() if v and v.strip()}


def retitle(
    title: str, text: str, *, source: str | None, extra: dict[str, object]
) -> tuple[str, str]:
    """``(title, text)`` with a dateline title dropped (the page's own title instead, or
    ``""`` so the caller derives one from the first sentence) and the body's dateline cut."""
    dateline = is_dateline(title, source)
    text = strip_body_dateline(text, title_was_dateline=dateline, source=source)
    if dateline:
        title = page_title(extra, source) or headline_from(text)
    return title, text


def headline_from(text: str) -> str:
    """The first sentence as a headline, cut at a clause when long ("The Bank of England
    held its rate at 4% on Thursday, with five of…" → "…at 4% on Thursday"), else at a word."""
    first = text.split("\n", 1)[0].strip()
    sentence = _SENTENCE_END.split(first, maxsplit=1)[0].strip().rstrip(".")
    if len(sentence) <= MAX_HEADLINE_CHARS:
        return sentence
    cuts = [m.start() for m in _CLAUSE.finditer(sentence, MIN_HEADLINE_CHARS, MAX_HEADLINE_CHARS)]
    if cuts:
        return sentence[: cuts[-1]].rstrip()
    cut = sentence[: MAX_HEADLINE_CHARS - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-–—") + "…"


def page_title(extra: dict[str, object], source: str | None) -> str | None:
    """The first of the page's own titles that is a headline, without its site suffix."""
    for name in PAGE_TITLE_FIELDS:
        value = extra.get(name)
        if not isinstance(value, str):
            continue
        title = _without_site(value.strip(), source)
        if len(title.split()) >= MIN_PAGE_TITLE_WORDS and not is_dateline(title, source):
            return title
    return None


# ---------------------------------------------------------------------------------------------


def _is_dateline_head(head: str) -> bool:
    tokens = _TOKEN.findall(head)
    if not tokens or len(tokens) > MAX_DATELINE_TOKENS:
        return False
    return all(_is_dateline_token(t) for t in tokens)


def _is_dateline_token(token: str) -> bool:
    if token.startswith("(") and token.endswith(")"):
        return True  # (CNN), (ANSA), (AP)
    word = token.strip(".'’")
    if not word:
        return False
    if word.lower() in _CONNECTORS or word.isdigit() or _MONTH.fullmatch(word):
        return True
    return word[0].isupper() and not any(ch in word for ch in '!?"“”')


def _unmistakable(head: str, source: str | None) -> bool:
    tokens = _TOKEN.findall(head)
    if any(t.startswith("(") for t in tokens):
        return True
    if any(len(t) >= 2 and t.isupper() and t.isalpha() for t in tokens):
        return True
    return bool(source) and _fold(source or "") in _fold(head)


def _without_site(title: str, source: str | None) -> str:
    """ "UK inflation falls to 3% | CNN Business" → "UK inflation falls to 3%"."""
    parts = _SITE_SEPARATOR.split(title)
    if len(parts) < 2:
        return title
    last = parts[-1]
    folded_source = _fold(source or "")
    short = len(last.split()) <= 4
    if short and (
        not folded_source or folded_source in _fold(last) or _fold(last) in folded_source
    ):
        return title[: title.rfind(last)].rstrip(" |—–-·:")
    return title


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


class _HeadTitles(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.og_title = ""
        self._in_title = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._done:
            return
        if tag == "title" and not self.title:
            self._in_title = True
        elif tag == "meta":
            values = {k.lower(): v or "" for k, v in attrs}
            key = (values.get("property") or values.get("name") or "").lower()
            if key in ("og:title", "twitter:title") and not self.og_title:
                self.og_title = values.get("content", "")
        elif tag == "body":
            self._done = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and not self._done:
            self.title += data
