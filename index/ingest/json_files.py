"""JSON Lines (one record per line) and JSON files (a record, a list of them, or a Telegram
export).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from index.ingest import telegram
from index.ingest.records import Item, decode_utf8, from_record
from index.models import LoadError


def load_jsonl(data: bytes, origin: str) -> Iterator[Item]:
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
        yield from_record(record, line_origin, f"line {number}")


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


def load_json(data: bytes, origin: str) -> Iterator[Item]:
    text = decode_utf8(data, origin)
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
            yield from_record(record, f"{origin}#{number}", f"item {number}")
    elif telegram.is_telegram_export(payload):
        yield from telegram.export_articles(payload, origin)
    else:
        yield from_record(payload, origin, "the file")
