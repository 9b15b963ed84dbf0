"""RSS and Atom feeds, from a file or downloaded (a URL may also turn out to be one page)."""

from __future__ import annotations

import logging
import re
from collections.abc import Container, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from index.ingest.fetch import FetchError, fetch_blocking
from index.ingest.html_pages import collapse_blank_lines, html_to_text, load_html
from index.ingest.records import (
    Item,
    article_id,
    guarded,
    host_name,
    record_date,
    sha1_hex,
    str_field,
)
from index.models import Article, LoadError

log = logging.getLogger(__name__)


def load_feed_file(data: bytes, origin: str) -> Iterator[Item]:
    yield from _load_feed(feedparser.parse(data), origin, _line_shift(data))


def load_url(url: str, max_file_bytes: int, timeout: float) -> Iterator[Item]:
    """Fetch a feed (or a single page) ourselves (index/ingest/fetch.py): feedparser's own
    fetch has no timeout and no size cap."""
    try:
        fetched = fetch_blocking(url, timeout=timeout, max_bytes=max_file_bytes)
    except FetchError as exc:
        yield LoadError(url, exc.reason)
        return
    yield from parse_download(
        fetched.body, fetched.content_type, fetched.final_url, url
    ).items()


@dataclass(slots=True)
class Download:
    """A downloaded feed (or page), parsed but not yet turned into articles, so a caller can
    drop the entries it already has before any text is extracted or cleaned."""

    origin: str
    data: bytes
    final_url: str
    parsed: Any | None  # feedparser's result; None for an HTML page

    def entry_keys(self) -> list[str | None]:
        """The article id of each feed entry that can be known without reading its text
        (from its link, else its guid), in entry order; None where only the text tells."""
        if self.parsed is None:
            return []
        return [_entry_key(entry) for entry in self.parsed.get("entries") or []]

    def newest(self) -> datetime | None:
        """The latest date among the entries (for a source's lag)."""
        if self.parsed is None:
            return None
        dates = [_entry_date_quiet(e) for e in self.parsed.get("entries") or []]
        return max((d for d in dates if d is not None), default=None)

    def items(self, skip: Container[str] = ()) -> Iterator[Item]:
        """Articles (and errors), leaving out entries whose id is in ``skip``."""
        if self.parsed is None:
            yield from guarded(self.origin, load_html(self.data, self.origin, self.final_url))
            return
        yield from guarded(
            self.origin, _load_feed(self.parsed, self.origin, _line_shift(self.data), skip)
        )


def parse_download(data: bytes, content_type: str, final_url: str, origin: str) -> Download:
    parsed = feedparser.parse(
        data,
        response_headers={"content-type": content_type, "content-location": final_url},
    )
    if not parsed.entries and _looks_like_html(content_type, data):
        return Download(origin, data, final_url, None)
    return Download(origin, data, final_url, parsed)


def _looks_like_html(content_type: str, data: bytes) -> bool:
    head = data[:2048].lstrip().lower()
    return "html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html"))


def _line_shift(data: bytes) -> int:
    """feedparser prepends an XML declaration line when there is none: error lines shift."""
    return 0 if re.match(rb"(?:\xef\xbb\xbf)?<\?xml", data) else 1


def _load_feed(
    parsed: Any, origin: str, line_shift: int = 0, skip: Container[str] = ()
) -> Iterator[Item]:
    entries = parsed.get("entries") or []
    if not entries:
        if parsed.get("bozo"):
            reason = _parse_error(parsed.get("bozo_exception"), line_shift)
            yield LoadError(origin, f"not a valid RSS/Atom feed: {reason}")
        elif not parsed.get("version"):
            yield LoadError(origin, "no RSS or Atom feed found in the document")
        return
    if parsed.get("bozo"):
        log.warning("%s: feed is not well-formed (%s); loading what could be read",
                    origin, parsed.get("bozo_exception"))
    feed = parsed.get("feed") or {}
    source = _plain(feed.get("title"), feed.get("title_detail")) or host_name(feed.get("link"))
    lang = str_field(feed.get("language"))
    for number, entry in enumerate(entries, start=1):
        if skip:
            key = _entry_key(entry)
            if key is not None and key in skip:
                continue
        yield _from_entry(entry, f"{origin}#{number}", source, lang)


def _entry_key(entry: Any) -> str | None:
    """The id :func:`_from_entry` gives ``entry`` when it does not depend on the text."""
    url = entry.get("link") or None
    if url:
        return article_id(None, url, "", "")
    return _guid_id(entry.get("id"))


def _from_entry(entry: Any, origin: str, source: str | None, lang: str | None) -> Item:
    title = _plain(entry.get("title"), entry.get("title_detail")) or ""
    text = _entry_text(entry)
    if not text:
        return LoadError(origin, f"feed entry {title[:60]!r} has no summary or content")
    url = entry.get("link") or None
    given = None if url else _guid_id(entry.get("id"))
    extra: dict[str, object] = {}
    if entry.get("author"):
        extra["author"] = entry.get("author")
    tags = [t.get("term") for t in entry.get("tags") or [] if t.get("term")]
    if tags:
        extra["tags"] = tags
    if entry.get("id"):
        extra["guid"] = entry.get("id")
    return Article(
        id=article_id(given, url, title, text),
        text=text,
        title=title,
        url=url,
        published=_entry_date(entry, origin, extra),
        source=source,
        lang=lang,
        origin=origin,
        extra=extra,
    )


def _parse_error(exc: object, line_shift: int) -> str:
    """``not well-formed (invalid token) at line 2, column 29`` rather than ``<unknown>:2:29``."""
    get_message = getattr(exc, "getMessage", None)
    get_line = getattr(exc, "getLineNumber", None)
    get_column = getattr(exc, "getColumnNumber", None)
    if callable(get_message) and callable(get_line) and callable(get_column):
        return f"{get_message()} at line {get_line() - line_shift}, column {get_column()}"
    return str(exc) or type(exc).__name__


def _guid_id(guid: object) -> str | None:
    """A link-less entry's guid, hashed so it cannot collide with other kinds of ids."""
    if not isinstance(guid, str) or not guid.strip():
        return None
    return "guid:" + sha1_hex(guid.strip())[:16]


def _entry_text(entry: Any) -> str:
    """The fullest body an entry offers: ``content`` when present, else ``summary``."""
    candidates = [(c.get("value") or "", c.get("type") or "") for c in entry.get("content") or []]
    detail = entry.get("summary_detail") or {}
    candidates.append((entry.get("summary") or "", detail.get("type") or "text/html"))
    texts = [_to_text(value, kind) for value, kind in candidates if value.strip()]
    return max(texts, key=len, default="")


def _to_text(value: str, kind: str) -> str:
    if kind == "text/plain":
        return collapse_blank_lines(value)
    return html_to_text(value)


def _plain(value: object, detail: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    kind = (detail or {}).get("type") or "text/plain"
    text = _to_text(value, kind) if "<" in value else value
    return " ".join(text.split()) or None


def _entry_date_quiet(entry: Any) -> datetime | None:
    for key in ("published", "updated", "created"):
        parsed = entry.get(f"{key}_parsed")
        if parsed:
            year, month, day, hour, minute, second = parsed[:6]
            return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    return None


def _entry_date(entry: Any, origin: str, extra: dict[str, object]) -> datetime | None:
    found = _entry_date_quiet(entry)
    if found is not None:
        return found
    raw = entry.get("published") or entry.get("updated")
    return record_date(raw, origin, extra) if raw else None
