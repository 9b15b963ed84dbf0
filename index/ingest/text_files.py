"""Plain text and Markdown files, with optional ``---`` front matter; the first short line
is the headline when no title is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from index.ingest.records import Item, decode_utf8, from_record
from index.models import LoadError

# A first line longer than this is a paragraph, not a headline.
MAX_TITLE_LINE_CHARS = 200


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


def load_text(data: bytes, origin: str) -> Iterator[Item]:
    text = decode_utf8(data, origin)
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
    yield from_record(record, origin, "the file")


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
