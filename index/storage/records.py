"""The rows the store hands out and takes in, and the time conversions its columns use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from index.models import Article, Chunk


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt else None


def to_ts(dt: datetime | None) -> int | None:
    """The integer epoch seconds that ``articles.published_ts``/``indexed_ts`` hold."""
    return int(dt.timestamp()) if dt else None


def parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Facets(NamedTuple):
    """A chunk's columns that filters read (see ``filters.filter_sql``)."""

    chunk_id: str
    rowid: int
    ts: int  # coalesce(published_ts, indexed_ts)
    source_key: str | None
    lang: str | None


@dataclass(slots=True)
class StoredState:
    """What an incremental run needs to know about an article already stored."""

    content_hash: str
    raw_hash: str | None
    dup_kind: str | None
    embedded: bool


@dataclass(slots=True)
class ArticleWrite:
    """One article's new state: its row, its chunks and their keyword-index bodies."""

    article: Article
    content_hash: str
    raw_hash: str | None
    chunks: list[Chunk]
    chunk_ids: list[str]
    fts_bodies: list[str]
    band_keys: list[int]
    signature: bytes | None = None
    canonical_id: str | None = None
    dup_kind: str | None = None  # None | "near" | "exact"
    similarity: float | None = None


@dataclass(slots=True)
class ChunkRecord:
    """A chunk joined with its article, as retrieval and renderers need it."""

    chunk_id: str
    rowid: int
    article_id: str
    ord: int
    start: int
    end: int
    text: str
    title: str
    url: str | None
    published: datetime | None
    source: str | None
    lang: str | None
    canonical_id: str | None


@dataclass(slots=True)
class ArticleRecord:
    id: str
    title: str
    text: str
    url: str | None
    published: datetime | None
    source: str | None
    lang: str | None
    canonical_id: str | None
    dup_kind: str | None
    indexed_at: datetime



def article_record(r: Sequence[Any]) -> ArticleRecord:
    """An ``articles`` row selected as id, title, text, url, published, source, lang,
    canonical_id, dup_kind, indexed_at."""
    return ArticleRecord(
        id=r[0], title=r[1], text=r[2], url=r[3], published=parse_dt(r[4]), source=r[5],
        lang=r[6], canonical_id=r[7], dup_kind=r[8], indexed_at=datetime.fromisoformat(r[9]),
    )

