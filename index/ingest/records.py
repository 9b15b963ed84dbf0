"""From raw fields to ``Article`` records, whatever the format: stable ids, canonical URLs,
dates made UTC, and the rule that a bad input costs only itself.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from index.models import Article, LoadError

log = logging.getLogger(__name__)

Item = Article | LoadError
RECORD_FIELDS = frozenset({"id", "title", "text", "url", "published", "source", "lang"})
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid"})
DEFAULT_PORTS = {"http": "80", "https": "443"}


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
        return "url:" + sha1_hex(canonical_url(url))[:16]
    return "sha:" + sha1_hex(f"{title.strip()}\n{text.strip()}")[:16]


def parse_published(value: object) -> datetime | None:
    """A timezone-aware UTC datetime from the date formats feeds and exports use.

    Naive times are taken as UTC and bare dates as midnight UTC, so every stored date can
    be compared with every other; anything unrecognisable gives ``None``.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if isinstance(value, str):
        return _parse_date_string(value.strip())
    return None


def guarded(origin: str, items: Iterator[Item]) -> Iterator[Item]:
    """A bug in a third-party parser costs one input, not the whole run."""
    try:
        yield from items
    except Exception as exc:
        log.exception("loading %s failed", origin)
        yield LoadError(origin, f"unexpected error while reading it: {exc!r}")


def from_record(record: object, origin: str, where: str) -> Item:
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
    title = str_field(record.get("title")) or ""
    url = str_field(record.get("url"))
    extra = {k: v for k, v in record.items() if k not in RECORD_FIELDS}
    published = record_date(record.get("published"), origin, extra)
    return Article(
        id=article_id(record.get("id"), url, title, text),
        text=text,
        title=title,
        url=url,
        published=published,
        source=str_field(record.get("source")),
        lang=str_field(record.get("lang")),
        origin=origin,
        extra=extra,
    )


def _record_label(record: Mapping[str, Any]) -> str:
    given = record.get("id")
    return f"record {str(given)!r} " if given is not None and str(given).strip() else "record "


def str_field(value: object) -> str | None:
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


def record_date(value: object, origin: str, extra: dict[str, object]) -> datetime | None:
    """Parse a date, keeping the raw value in ``extra`` when it cannot be understood."""
    parsed = parse_published(value)
    if parsed is None and value not in (None, ""):
        log.warning("%s: unrecognised date %r, loaded without one", origin, value)
        extra["published_raw"] = value
    return parsed


def decode_utf8(data: bytes, origin: str) -> str | LoadError:
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
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        pass
    try:
        return as_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None


def _from_epoch(value: float) -> datetime | None:
    """Epoch seconds or milliseconds; small numbers (a bare year, a count) are not dates."""
    if 1e11 <= value < 1e14:
        value /= 1000
    if not 1e8 <= value < 1e11:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _is_tracking(key: str) -> bool:
    lowered = key.lower()
    return lowered.startswith("utm_") or lowered in TRACKING_PARAMS


def _safe_port(parts: Any) -> bool:
    try:
        return parts.port is not None
    except ValueError:
        return False


def host_name(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    host = urlsplit(url).hostname
    return host.removeprefix("www.") if host else None


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()
