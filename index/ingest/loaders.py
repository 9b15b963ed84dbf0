"""Reading articles from files, folders and feeds into ``Article`` records.

Loading never stops at the first bad input: every unreadable file, broken line or empty
record becomes a ``LoadError`` naming where it is (``path``, ``path:line``, ``path#entry``)
and why, and the rest of the run goes on. Ids are derived deterministically so re-indexing
the same input finds the same articles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser
from lxml import etree
from lxml import html as lxml_html

from index.ingest import telegram
from index.ingest.datelines import page_titles
from index.ingest.fetch import FetchError, fetch_blocking
from index.models import Article, LoadError

log = logging.getLogger(__name__)

Item = Article | LoadError


@dataclass(frozen=True, slots=True)
class Preloaded:
    """Articles the caller has already read (a downloaded feed, Telegram posts), indexed like
    any other input; ``origin`` names where they came from (index/ingest/live.py)."""

    origin: str
    items: tuple[Item, ...]

    def __str__(self) -> str:
        return self.origin


# What an index run reads: a file, a folder, a feed URL, or articles read already.
Target = str | Path | Preloaded

JSONL_EXT = frozenset({".jsonl", ".ndjson"})
JSON_EXT = frozenset({".json"})
TEXT_EXT = frozenset({".txt", ".md"})
HTML_EXT = frozenset({".html", ".htm"})
FEED_EXT = frozenset({".xml", ".rss", ".atom"})
SUPPORTED_EXT = JSONL_EXT | JSON_EXT | TEXT_EXT | HTML_EXT | FEED_EXT

RECORD_FIELDS = frozenset({"id", "title", "text", "url", "published", "source", "lang"})
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid"})
DEFAULT_PORTS = {"http": "80", "https": "443"}

# A first line longer than this is a paragraph, not a headline.
MAX_TITLE_LINE_CHARS = 200
FETCH_TIMEOUT_S = 20.0


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def iter_articles(
    paths: Iterable[Target] | str | Path,
    *,
    max_file_bytes: int = 20_000_000,
    fetch_timeout: float = FETCH_TIMEOUT_S,
) -> Iterator[Article | LoadError]:
    """Yield every article (or error) found under ``paths``, in a deterministic order.

    Folders are walked recursively in name order so ids, origins and duplicate decisions
    ("the first one seen is canonical") do not depend on the file system's listing order.
    """
    if isinstance(paths, str | Path):  # one path, not an iterable of its characters
        paths = [paths]
    for target in paths:
        if isinstance(target, Preloaded):
            yield from target.items
            continue
        name = str(target)
        if _is_url(name):
            yield from _guarded(name, _load_url(name, max_file_bytes, fetch_timeout))
            continue
        path = Path(target)
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except OSError as exc:
            yield LoadError(name, f"cannot access: {_os_reason(exc)}")
            continue
        if is_dir:
            yield from _load_folder(path, max_file_bytes)
        elif exists:
            yield from _load_file(path, max_file_bytes, explicit=True)
        else:
            yield LoadError(name, "no such file or folder")


def canonical_url(url: str) -> str:
    """The URL two outlets' links to the same page agree on, for ids and duplicate checks.

    Tracking parameters and fragments vary between shares of one page; scheme and host
    case, default ports and a trailing slash carry no meaning either.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    port = str(parts.port) if _safe_port(parts) else ""
    netloc = f"[{host}]" if ":" in host else host
    if port and DEFAULT_PORTS.get(scheme) != port:
        netloc = f"{netloc}:{port}"
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)]
    )
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), query, ""))


def article_id(given: object, url: str | None, title: str, text: str) -> str:
    """A stable id: the record's own, else its canonical URL, else its content."""
    if given is not None and str(given).strip():
        return str(given).strip()
    if url:
        return "url:" + _sha1(canonical_url(url))[:16]
    return "sha:" + _sha1(f"{title.strip()}\n{text.strip()}")[:16]


def parse_published(value: object) -> datetime | None:
    """A timezone-aware UTC datetime from the date formats feeds and exports use.

    Naive times are taken as UTC and bare dates as midnight UTC, so every stored date can
    be compared with every other; anything unrecognisable gives ``None``.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return _as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if isinstance(value, str):
        return _parse_date_string(value.strip())
    return None


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment with one blank line between blocks.

    Feed entries are fragments, too short for main-text extraction; what matters is that
    paragraphs stay paragraphs so passages can be quoted sentence by sentence.
    """
    if not markup.strip():
        return ""
    try:
        root = lxml_html.fragment_fromstring(markup, create_parent="div")
    except (etree.ParserError, ValueError):
        return _collapse_blank_lines(re.sub(r"<[^>]+>", " ", markup))
    etree.strip_tags(root, etree.Comment, etree.ProcessingInstruction)
    pieces: list[str] = []
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, element in walker:
        tag = str(element.tag).lower()
        if event == "start":
            if tag in _SKIP_TAGS:
                walker.skip_subtree()
                continue
            pieces.append(_start_marker(tag))
            pieces.append(_inline(element.text or ""))
        else:
            if tag in _BLOCK_TAGS:
                pieces.append("\n\n")
            if element is not root:
                pieces.append(_inline(element.tail or ""))
    return _collapse_blank_lines("".join(pieces))


# ---------------------------------------------------------------------------------------------
# Files and folders
# ---------------------------------------------------------------------------------------------


def list_files(target: Path) -> tuple[list[Path], list[LoadError]]:
    """The files a folder (or a single file) source would read, in the order they are read,
    without reading them: what a rescan compares by size and modification time."""
    if not target.is_dir():
        return ([target], []) if target.exists() else ([], [LoadError(str(target),
                                                                       "no such file or folder")])
    files: list[Path] = []
    errors: list[LoadError] = []
    for path, error in _walk(target):
        if error is not None:
            errors.append(error)
        elif path.suffix.lower() in SUPPORTED_EXT:
            files.append(path)
    return files, errors


def _load_folder(folder: Path, max_file_bytes: int) -> Iterator[Item]:
    for path, error in _walk(folder):
        if error is not None:
            yield error
        elif path.suffix.lower() in SUPPORTED_EXT:
            yield from _load_file(path, max_file_bytes, explicit=False)


def _walk(folder: Path) -> Iterator[tuple[Path, LoadError | None]]:
    """Files under ``folder`` in name order, skipping hidden entries (``.git``, ``.DS_Store``)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        yield folder, LoadError(str(folder), f"cannot list folder: {_os_reason(exc)}")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(path)
        else:
            yield path, None


def _load_file(path: Path, max_file_bytes: int, *, explicit: bool) -> Iterator[Item]:
    origin = str(path)
    ext = path.suffix.lower()
    loader = _LOADERS.get(ext)
    if loader is None:
        if explicit:
            supported = ", ".join(sorted(SUPPORTED_EXT))
            yield LoadError(origin, f"unsupported file type {ext or '(none)'!r}; use {supported}")
        return
    data = _read_bytes(path, max_file_bytes)
    if isinstance(data, LoadError):
        yield data
        return
    if ext not in FEED_EXT and b"\x00" in data[:65536]:
        yield LoadError(origin, "binary file (contains NUL bytes), not text")
        return
    yield from _guarded(origin, loader(data, origin))


def _guarded(origin: str, items: Iterator[Item]) -> Iterator[Item]:
    """A bug in a third-party parser costs one input, not the whole run."""
    try:
        yield from items
    except Exception as exc:
        log.exception("loading %s failed", origin)
        yield LoadError(origin, f"unexpected error while reading it: {exc!r}")


def _read_bytes(path: Path, max_file_bytes: int) -> bytes | LoadError:
    origin = str(path)
    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            return LoadError(origin, _too_big(size, max_file_bytes))
        return path.read_bytes()
    except OSError as exc:
        return LoadError(origin, f"cannot read file: {_os_reason(exc)}")


def _too_big(size: int, limit: int) -> str:
    megabytes = f" ({size / 1e6:.1f} MB > {limit / 1e6:.1f} MB)" if limit >= 100_000 else ""
    return (
        f"file is {size:,} bytes, over the limit of {limit:,} bytes{megabytes}; "
        "raise MAX_FILE_MB to load it"
    )


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


# ---------------------------------------------------------------------------------------------
# JSON and JSON Lines
# ---------------------------------------------------------------------------------------------


def _load_jsonl(data: bytes, origin: str) -> Iterator[Item]:
    """One record per line; a bad line costs only that line."""
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line_origin = f"{origin}:{number}"
        text = _decode_line(raw, number, line_origin)
        if isinstance(text, LoadError):
            yield text
            continue
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield LoadError(line_origin, f"invalid JSON on line {number}: {exc.msg} (column {exc.colno})")
            continue
        yield _from_record(record, line_origin, f"line {number}")


def _decode_line(raw: bytes, number: int, origin: str) -> str | LoadError:
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return LoadError(
            origin,
            f"invalid UTF-8 on line {number} at byte offset {exc.start} of the line "
            f"({exc.reason}); save the file as UTF-8",
        )


def _load_json(data: bytes, origin: str) -> Iterator[Item]:
    text = _decode(data, origin)
    if isinstance(text, LoadError):
        yield text
        return
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        yield LoadError(
            origin, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        )
        return
    if isinstance(payload, list):
        for number, record in enumerate(payload, start=1):
            yield _from_record(record, f"{origin}#{number}", f"item {number}")
    elif telegram.is_telegram_export(payload):
        yield from telegram.export_articles(payload, origin)
    else:
        yield _from_record(payload, origin, "the file")


def _from_record(record: object, origin: str, where: str) -> Item:
    if not isinstance(record, dict):
        return LoadError(origin, f"{where} is a JSON {_json_type(record)}, not an object")
    text = record.get("text")
    label = _record_label(record)
    if text is None:
        return LoadError(origin, f"{label}has no 'text' field")
    if not isinstance(text, str):
        return LoadError(origin, f"{label}has a 'text' that is a {_json_type(text)}, not a string")
    if not text.strip():
        return LoadError(origin, f"{label}has an empty 'text'")
    title = _str_field(record.get("title")) or ""
    url = _str_field(record.get("url"))
    extra = {k: v for k, v in record.items() if k not in RECORD_FIELDS}
    published = _published(record.get("published"), origin, extra)
    return Article(
        id=article_id(record.get("id"), url, title, text),
        text=text,
        title=title,
        url=url,
        published=published,
        source=_str_field(record.get("source")),
        lang=_str_field(record.get("lang")),
        origin=origin,
        extra=extra,
    )


def _record_label(record: Mapping[str, Any]) -> str:
    given = record.get("id")
    return f"record {str(given)!r} " if given is not None and str(given).strip() else "record "


def _str_field(value: object) -> str | None:
    """Strings stripped; numbers tolerated as text; lists and objects ignored."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else "object"


def _published(value: object, origin: str, extra: dict[str, object]) -> datetime | None:
    """Parse a date, keeping the raw value in ``extra`` when it cannot be understood."""
    parsed = parse_published(value)
    if parsed is None and value not in (None, ""):
        log.warning("%s: unrecognised date %r, loaded without one", origin, value)
        extra["published_raw"] = value
    return parsed


# ---------------------------------------------------------------------------------------------
# Plain text and Markdown
# ---------------------------------------------------------------------------------------------

_FRONT_MATTER_KEYS = {
    "title": "title",
    "url": "url",
    "link": "url",
    "published": "published",
    "date": "published",
    "source": "source",
    "lang": "lang",
    "language": "lang",
    "id": "id",
}


def _load_text(data: bytes, origin: str) -> Iterator[Item]:
    text = _decode(data, origin)
    if isinstance(text, LoadError):
        yield text
        return
    if not text.strip():
        yield LoadError(origin, "empty file")
        return
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    meta, body = _front_matter(text)
    markdown = origin.lower().endswith(".md")
    if not meta.get("title"):
        meta["title"], body = _title_from_first_line(body, markdown)
    if not body.strip():
        yield LoadError(origin, "no text (the file has only a title or front matter)")
        return
    record: dict[str, object] = {**meta, "text": body}
    yield _from_record(record, origin, "the file")


def _front_matter(text: str) -> tuple[dict[str, object], str]:
    """``---`` fenced ``key: value`` lines at the top, as many static-site exports write."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        return {}, text
    meta: dict[str, object] = {}
    for line in lines[1:end]:
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            continue
        name = key.strip().lower()
        meta[_FRONT_MATTER_KEYS.get(name, name)] = _unquote(value.strip())
    return meta, "\n".join(lines[end + 1 :])


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _title_from_first_line(body: str, markdown: bool) -> tuple[str, str]:
    """Take the first non-empty line as the headline when it is short enough to be one."""
    lines = body.split("\n")
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        candidate = line.strip()
        if markdown:
            candidate = re.sub(r"^#{1,6}\s+", "", candidate).rstrip("#").strip()
        rest = "\n".join(lines[index + 1 :])
        if len(candidate) <= MAX_TITLE_LINE_CHARS and rest.strip():
            return candidate, rest
        return "", body
    return "", body


# ---------------------------------------------------------------------------------------------
# HTML pages
# ---------------------------------------------------------------------------------------------


def _load_html(data: bytes, origin: str, url: str | None = None) -> Iterator[Item]:
    """Main text and metadata of a saved page; navigation, ads and footers are left out."""
    # Imported here: trafilatura is slow to import and most corpora have no HTML.
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(
            data,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            date_extraction_params={
                "outputformat": "%Y-%m-%dT%H:%M:%S%z",
                "original_date": True,
            },
        )
    except Exception as exc:  # trafilatura raises assorted lxml/parser errors
        yield LoadError(origin, f"cannot parse HTML: {exc}")
        return
    text = _paragraphs(getattr(doc, "text", None) or "")
    if not text:
        yield LoadError(origin, "no article text found in the HTML page")
        return
    page_url = getattr(doc, "url", None) or url
    record: dict[str, object] = {
        "title": getattr(doc, "title", None) or "",
        "text": text,
        "url": page_url,
        "published": getattr(doc, "date", None),
        "source": getattr(doc, "sitename", None) or _host(page_url),
        "lang": getattr(doc, "language", None),
    }
    author = getattr(doc, "author", None)
    if author:
        record["author"] = author
    record.update(page_titles(data))  # fallbacks for a headline that is only a dateline
    yield _from_record(record, origin, "the page")


def _paragraphs(text: str) -> str:
    """Trafilatura puts one block per line; a blank line between them marks paragraphs."""
    return "\n\n".join(line.strip() for line in text.split("\n") if line.strip())


# ---------------------------------------------------------------------------------------------
# RSS and Atom feeds
# ---------------------------------------------------------------------------------------------


def _load_feed_file(data: bytes, origin: str) -> Iterator[Item]:
    yield from _load_feed(feedparser.parse(data), origin, _line_shift(data))


def _load_url(url: str, max_file_bytes: int, timeout: float) -> Iterator[Item]:
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
            yield from _guarded(self.origin, _load_html(self.data, self.origin, self.final_url))
            return
        yield from _guarded(
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
    source = _plain(feed.get("title"), feed.get("title_detail")) or _host(feed.get("link"))
    lang = _str_field(feed.get("language"))
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
    return "guid:" + _sha1(guid.strip())[:16]


def _entry_text(entry: Any) -> str:
    """The fullest body an entry offers: ``content`` when present, else ``summary``."""
    candidates = [(c.get("value") or "", c.get("type") or "") for c in entry.get("content") or []]
    detail = entry.get("summary_detail") or {}
    candidates.append((entry.get("summary") or "", detail.get("type") or "text/html"))
    texts = [_to_text(value, kind) for value, kind in candidates if value.strip()]
    return max(texts, key=len, default="")


def _to_text(value: str, kind: str) -> str:
    if kind == "text/plain":
        return _collapse_blank_lines(value)
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
    return _published(raw, origin, extra) if raw else None


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

_LOADERS: dict[str, Callable[[bytes, str], Iterator[Item]]] = {
    **dict.fromkeys(JSONL_EXT, _load_jsonl),
    **dict.fromkeys(JSON_EXT, _load_json),
    **dict.fromkeys(TEXT_EXT, _load_text),
    **dict.fromkeys(HTML_EXT, _load_html),
    **dict.fromkeys(FEED_EXT, _load_feed_file),
}

_BLOCK_TAGS = frozenset({
    "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
    "tr", "table", "section", "article", "header", "footer", "figure", "figcaption", "dl",
    "dt", "dd", "hr", "address", "aside", "main", "nav",
})
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "head", "title"})


def _start_marker(tag: str) -> str:
    if tag == "br":
        return "\n"
    return "\n\n" if tag in _BLOCK_TAGS else ""


def _inline(text: str) -> str:
    """Source line breaks inside HTML text are just spaces."""
    return re.sub(r"\s+", " ", text)


def _collapse_blank_lines(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.split("\n")]
    joined = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", joined).strip()


def _decode(data: bytes, origin: str) -> str | LoadError:
    """Strict UTF-8: guessing an encoding would silently corrupt quotes."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return LoadError(
            origin,
            f"invalid UTF-8 at byte offset {exc.start} (line {line}): {exc.reason}; "
            "save the file as UTF-8",
        )


def _parse_date_string(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return _as_utc(datetime.fromisoformat(value))
    except ValueError:
        pass
    try:
        return _as_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None


def _from_epoch(value: float) -> datetime | None:
    """Epoch seconds or milliseconds; small numbers (a bare year, a count) are not dates."""
    if 1e11 <= value < 1e14:
        value /= 1000
    if not 1e8 <= value < 1e11:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _is_url(name: str) -> bool:
    return name.lower().startswith(("http://", "https://"))


def _is_tracking(key: str) -> bool:
    lowered = key.lower()
    return lowered.startswith("utm_") or lowered in TRACKING_PARAMS


def _safe_port(parts: Any) -> bool:
    try:
        return parts.port is not None
    except ValueError:
        return False


def _host(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    host = urlsplit(url).hostname
    return host.removeprefix("www.") if host else None


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()
