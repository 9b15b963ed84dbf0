"""SQLite, the source of truth: articles, chunks, the keyword index, runs and duplicate links.

Chroma only mirrors chunk vectors; every chunk id in Chroma must exist here and vice versa
at the end of a run. One connection is the single writer (aiosqlite runs it in its own
thread), so callers never hold a write lock across an ``await`` of someone else's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from index.models import Article, Chunk, Filters

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles(
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    url TEXT,
    published TEXT,
    published_ts INTEGER,
    source TEXT,
    source_key TEXT,
    lang TEXT,
    content_hash TEXT NOT NULL,
    raw_hash TEXT,
    origin TEXT,
    canonical_id TEXT,
    dup_kind TEXT,
    similarity REAL,
    minhash BLOB,
    embedded INTEGER NOT NULL DEFAULT 0,
    indexed_at TEXT NOT NULL,
    indexed_ts INTEGER NOT NULL,
    run_id INTEGER
);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published_ts);
CREATE INDEX IF NOT EXISTS articles_indexed ON articles(indexed_ts);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source_key);
CREATE INDEX IF NOT EXISTS articles_lang ON articles(lang);
CREATE INDEX IF NOT EXISTS articles_hash ON articles(content_hash);
CREATE INDEX IF NOT EXISTS articles_canonical ON articles(canonical_id);
CREATE TABLE IF NOT EXISTS chunks(
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    body, tokenize = "unicode61 remove_diacritics 2"
);
CREATE TABLE IF NOT EXISTS article_bands(
    band_key INTEGER NOT NULL,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS article_bands_key ON article_bands(band_key);
CREATE INDEX IF NOT EXISTS article_bands_article ON article_bands(article_id);
CREATE TABLE IF NOT EXISTS stale_vectors(chunk_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    stats TEXT
);
"""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt else None


def _ts(dt: datetime | None) -> int | None:
    return int(dt.timestamp()) if dt else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


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


class Store:
    """Async access to the SQLite database; construct with :meth:`open`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA busy_timeout=10000")
        await db.executescript(_SCHEMA)
        store = cls(db, path)
        if await store.get_meta("schema_version") is None:
            await store.set_meta("schema_version", SCHEMA_VERSION)
        return store

    async def close(self) -> None:
        await self.db.close()

    # -- meta -----------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        async with self.db.execute("SELECT value FROM meta WHERE key=?", (key,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    # -- runs -----------------------------------------------------------------------------

    async def begin_run(self) -> tuple[int, bool]:
        """Start a run; also say whether the previous one died before finishing."""
        async with self.db.execute("SELECT status FROM runs ORDER BY id DESC LIMIT 1") as cur:
            row = await cur.fetchone()
        interrupted = bool(row and row[0] == "running")
        if interrupted:
            await self.db.execute("UPDATE runs SET status='interrupted' WHERE status='running'")
        cur2 = await self.db.execute(
            "INSERT INTO runs(started_at, status) VALUES(?, 'running')", (utcnow().isoformat(),)
        )
        assert cur2.lastrowid is not None
        return cur2.lastrowid, interrupted

    async def finish_run(self, run_id: int, stats: dict[str, Any], status: str = "done") -> None:
        await self.db.execute(
            "UPDATE runs SET finished_at=?, status=?, stats=? WHERE id=?",
            (utcnow().isoformat(), status, json.dumps(stats, default=str), run_id),
        )

    async def last_run(self) -> dict[str, Any] | None:
        async with self.db.execute(
            "SELECT id, started_at, finished_at, status, stats FROM runs "
            "WHERE status != 'running' ORDER BY id DESC LIMIT 1"
        ) as cur:
            row = await cur.fetchone()
        if not row:
            return None
        return {
            "id": row["id"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "status": row["status"],
            "stats": json.loads(row["stats"]) if row["stats"] else {},
        }

    # -- indexing ---------------------------------------------------------------------------

    async def article_states(self) -> dict[str, StoredState]:
        async with self.db.execute(
            "SELECT id, content_hash, raw_hash, dup_kind, embedded FROM articles"
        ) as cur:
            rows = await cur.fetchall()
        return {
            r[0]: StoredState(r[1], r[2], r[3], bool(r[4])) for r in rows
        }

    async def ids_by_content_hash(self, hashes: Iterable[str]) -> dict[str, str]:
        """Map content hash → id of a stored canonical (non-exact-duplicate) article."""
        out: dict[str, str] = {}
        hs = list(set(hashes))
        for i in range(0, len(hs), 500):
            part = hs[i : i + 500]
            q = ",".join("?" * len(part))
            async with self.db.execute(
                f"SELECT content_hash, id FROM articles WHERE dup_kind IS NOT 'exact' "
                f"AND content_hash IN ({q}) ORDER BY indexed_ts",
                part,
            ) as cur:
                for h, aid in await cur.fetchall():
                    out.setdefault(h, aid)
        return out

    async def articles_sharing_bands(self, keys: Sequence[int]) -> set[str]:
        if not keys:
            return set()
        q = ",".join("?" * len(keys))
        async with self.db.execute(
            f"SELECT DISTINCT article_id FROM article_bands WHERE band_key IN ({q})", list(keys)
        ) as cur:
            return {r[0] for r in await cur.fetchall()}

    async def signatures(self, ids: Iterable[str]) -> dict[str, tuple[bytes, str | None]]:
        """MinHash signature and canonical link of each stored article."""
        out: dict[str, tuple[bytes, str | None]] = {}
        lst = list(ids)
        for i in range(0, len(lst), 500):
            part = lst[i : i + 500]
            q = ",".join("?" * len(part))
            async with self.db.execute(
                f"SELECT id, minhash, canonical_id FROM articles WHERE minhash IS NOT NULL"
                f" AND id IN ({q})",
                part,
            ) as cur:
                for aid, sig, canon in await cur.fetchall():
                    out[aid] = (sig, canon)
        return out

    async def write_articles(self, writes: Sequence[ArticleWrite], run_id: int) -> None:
        """Replace each article's row and chunks in one transaction.

        Old chunk ids go to ``stale_vectors`` in the same transaction, so their vectors are
        deleted from Chroma afterwards even if the process dies right after the commit.
        """
        now = utcnow()
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            for w in writes:
                a = w.article
                await self._delete_article_rows(a.id)
                await self.db.execute(
                    "INSERT INTO articles(id, title, text, url, published, published_ts, source,"
                    " source_key, lang, content_hash, raw_hash, origin, canonical_id, dup_kind,"
                    " similarity, minhash, embedded, indexed_at, indexed_ts, run_id)"
                    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        a.id, a.title, a.text, a.url, _iso(a.published), _ts(a.published),
                        a.source, a.source.lower() if a.source else None, a.lang,
                        w.content_hash, w.raw_hash, a.origin, w.canonical_id, w.dup_kind,
                        w.similarity, w.signature, 1 if w.dup_kind != "exact" else 0,
                        now.isoformat(), _ts(now), run_id,
                    ),
                )
                for chunk, cid, body in zip(w.chunks, w.chunk_ids, w.fts_bodies, strict=True):
                    cur = await self.db.execute(
                        "INSERT INTO chunks(id, article_id, ord, start, end, text)"
                        " VALUES(?,?,?,?,?,?)",
                        (cid, a.id, chunk.ord, chunk.start, chunk.end, chunk.text),
                    )
                    await self.db.execute(
                        "INSERT INTO chunks_fts(rowid, body) VALUES(?, ?)", (cur.lastrowid, body)
                    )
                if w.band_keys:
                    await self.db.executemany(
                        "INSERT INTO article_bands(band_key, article_id) VALUES(?, ?)",
                        [(k, a.id) for k in w.band_keys],
                    )
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise

    async def _delete_article_rows(self, article_id: str) -> None:
        await self.db.execute(
            "INSERT OR IGNORE INTO stale_vectors(chunk_id)"
            " SELECT id FROM chunks WHERE article_id=?",
            (article_id,),
        )
        await self.db.execute(
            "DELETE FROM chunks_fts WHERE rowid IN (SELECT rowid FROM chunks WHERE article_id=?)",
            (article_id,),
        )
        await self.db.execute("DELETE FROM chunks WHERE article_id=?", (article_id,))
        await self.db.execute("DELETE FROM article_bands WHERE article_id=?", (article_id,))
        await self.db.execute("DELETE FROM articles WHERE id=?", (article_id,))

    async def remove_articles(self, ids: Sequence[str]) -> None:
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            for aid in ids:
                await self._delete_article_rows(aid)
            # Duplicates of a removed canonical lose their link; the next run re-judges them.
            for i in range(0, len(ids), 500):
                part = list(ids[i : i + 500])
                q = ",".join("?" * len(part))
                await self.db.execute(
                    f"UPDATE articles SET canonical_id=NULL, dup_kind=NULL, similarity=NULL,"
                    f" content_hash='' WHERE canonical_id IN ({q})",
                    part,
                )
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise

    async def mark_all_for_reembed(self) -> None:
        """Forget every chunk so the next run re-chunks and re-embeds all articles."""
        await self.db.execute("BEGIN IMMEDIATE")
        await self.db.execute("DELETE FROM chunks_fts")
        await self.db.execute("DELETE FROM chunks")
        await self.db.execute("DELETE FROM stale_vectors")
        await self.db.execute("UPDATE articles SET content_hash='', embedded=0")
        await self.db.execute("COMMIT")

    async def mark_for_reembed(self, article_ids: Iterable[str]) -> None:
        ids = list(article_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = ",".join("?" * len(part))
            await self.db.execute(
                f"UPDATE articles SET content_hash='' WHERE id IN ({q})", part
            )

    async def stale_vector_ids(self) -> list[str]:
        async with self.db.execute("SELECT chunk_id FROM stale_vectors") as cur:
            return [r[0] for r in await cur.fetchall()]

    async def clear_stale(self, ids: Sequence[str]) -> None:
        await self.db.executemany(
            "DELETE FROM stale_vectors WHERE chunk_id=?", [(i,) for i in ids]
        )

    async def chunk_ids_with_articles(self) -> dict[str, str]:
        async with self.db.execute("SELECT id, article_id FROM chunks") as cur:
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def counts(self) -> dict[str, int]:
        out = {}
        for name, sql in (
            ("articles", "SELECT count(*) FROM articles WHERE dup_kind IS NOT 'exact'"),
            ("exact_duplicates", "SELECT count(*) FROM articles WHERE dup_kind='exact'"),
            ("near_duplicates", "SELECT count(*) FROM articles WHERE dup_kind='near'"),
            ("chunks", "SELECT count(*) FROM chunks"),
            ("sources", "SELECT count(DISTINCT source_key) FROM articles"),
        ):
            async with self.db.execute(sql) as cur:
                row = await cur.fetchone()
            out[name] = int(row[0]) if row else 0
        return out

    async def corpus_overview(self) -> dict[str, Any]:
        """Languages, date range and top outlets: what /start and `status` tell a user."""
        async with self.db.execute(
            "SELECT lang, count(*) FROM articles WHERE dup_kind IS NOT 'exact'"
            " GROUP BY lang ORDER BY count(*) DESC"
        ) as cur:
            langs = {(r[0] or "?"): r[1] for r in await cur.fetchall()}
        async with self.db.execute(
            "SELECT min(published), max(published) FROM articles WHERE published IS NOT NULL"
        ) as cur:
            row = await cur.fetchone()
        async with self.db.execute(
            "SELECT source, count(*) FROM articles WHERE source IS NOT NULL"
            " GROUP BY source_key ORDER BY count(*) DESC LIMIT 10"
        ) as cur:
            sources = {r[0]: r[1] for r in await cur.fetchall()}
        return {
            "languages": langs,
            "first_published": _parse_dt(row[0]) if row else None,
            "last_published": _parse_dt(row[1]) if row else None,
            "top_sources": sources,
        }

    async def source_keys(self) -> set[str]:
        async with self.db.execute(
            "SELECT DISTINCT source_key FROM articles WHERE source_key IS NOT NULL"
        ) as cur:
            return {r[0] for r in await cur.fetchall()}

    # -- retrieval --------------------------------------------------------------------------

    def _filter_sql(self, filters: Filters, alias: str = "a") -> tuple[str, list[Any]]:
        clauses: list[str] = [f"{alias}.dup_kind IS NOT 'exact'"]
        params: list[Any] = []
        if filters.date_from:
            clauses.append(f"coalesce({alias}.published_ts, {alias}.indexed_ts) >= ?")
            params.append(_ts(filters.date_from))
        if filters.date_to:
            clauses.append(f"coalesce({alias}.published_ts, {alias}.indexed_ts) < ?")
            params.append(_ts(filters.date_to))
        if filters.sources:
            ors = []
            for s in filters.sources:
                ors.append(f"{alias}.source_key LIKE ?")
                params.append(f"%{s.lower()}%")
            clauses.append("(" + " OR ".join(ors) + ")")
        if filters.langs:
            clauses.append(f"{alias}.lang IN ({','.join('?' * len(filters.langs))})")
            params.extend(filters.langs)
        return " AND ".join(clauses), params

    async def fts_search(
        self, match: str, limit: int, filters: Filters | None = None
    ) -> list[tuple[str, float]]:
        """Chunk ids ranked by BM25 (higher is better) for an FTS5 MATCH expression."""
        if not match:
            return []
        sql = (
            "SELECT c.id, -bm25(chunks_fts) AS score FROM chunks_fts"
            " JOIN chunks c ON c.rowid = chunks_fts.rowid"
        )
        params: list[Any] = [match]
        if filters is not None and not filters.is_empty():
            where, fparams = self._filter_sql(filters)
            sql += f" JOIN articles a ON a.id = c.article_id WHERE chunks_fts MATCH ? AND {where}"
            params.extend(fparams)
        else:
            sql += " WHERE chunks_fts MATCH ?"
        sql += " ORDER BY bm25(chunks_fts) LIMIT ?"
        params.append(limit)
        try:
            async with self.db.execute(sql, params) as cur:
                return [(r[0], float(r[1])) for r in await cur.fetchall()]
        except sqlite3.OperationalError:
            return []

    async def filtered_chunk_ids(self, filters: Filters, limit: int) -> list[str] | None:
        """Chunk ids passing the filters, or None if more than ``limit`` do."""
        where, params = self._filter_sql(filters)
        async with self.db.execute(
            f"SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article_id WHERE {where}"
            f" LIMIT ?",
            [*params, limit + 1],
        ) as cur:
            rows = list(await cur.fetchall())
        if len(rows) > limit:
            return None
        return [r[0] for r in rows]

    async def chunk_records(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRecord]:
        out: dict[str, ChunkRecord] = {}
        ids = list(chunk_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = ",".join("?" * len(part))
            async with self.db.execute(
                "SELECT c.id, c.rowid, c.article_id, c.ord, c.start, c.end, c.text, a.title,"
                " a.url, a.published, a.source, a.lang, a.canonical_id, a.dup_kind,"
                " a.published_ts, a.indexed_ts, a.source_key"
                f" FROM chunks c JOIN articles a ON a.id = c.article_id WHERE c.id IN ({q})",
                part,
            ) as cur:
                for r in await cur.fetchall():
                    out[r[0]] = ChunkRecord(
                        chunk_id=r[0], rowid=r[1], article_id=r[2], ord=r[3], start=r[4],
                        end=r[5], text=r[6], title=r[7], url=r[8], published=_parse_dt(r[9]),
                        source=r[10], lang=r[11], canonical_id=r[12],
                    )
        return out

    async def article(self, article_id: str) -> ArticleRecord | None:
        arts = await self.articles([article_id])
        return arts.get(article_id)

    async def articles(self, ids: Sequence[str]) -> dict[str, ArticleRecord]:
        out: dict[str, ArticleRecord] = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = ",".join("?" * len(part))
            async with self.db.execute(
                "SELECT id, title, text, url, published, source, lang, canonical_id, dup_kind,"
                f" indexed_at FROM articles WHERE id IN ({q})",
                part,
            ) as cur:
                for r in await cur.fetchall():
                    out[r[0]] = ArticleRecord(
                        id=r[0], title=r[1], text=r[2], url=r[3], published=_parse_dt(r[4]),
                        source=r[5], lang=r[6], canonical_id=r[7], dup_kind=r[8],
                        indexed_at=datetime.fromisoformat(r[9]),
                    )
        return out

    async def duplicates_of(self, canonical_ids: Sequence[str]) -> dict[str, list[ArticleRecord]]:
        """Articles linked to each canonical (exact or near copies), for 'also reported by'."""
        out: dict[str, list[ArticleRecord]] = {}
        ids = list(canonical_ids)
        if not ids:
            return out
        q = ",".join("?" * len(ids))
        async with self.db.execute(
            f"SELECT id FROM articles WHERE canonical_id IN ({q})", ids
        ) as cur:
            dup_ids = [r[0] for r in await cur.fetchall()]
        recs = await self.articles(dup_ids)
        for rec in recs.values():
            assert rec.canonical_id is not None
            out.setdefault(rec.canonical_id, []).append(rec)
        for lst in out.values():
            lst.sort(key=lambda r: (r.published or r.indexed_at))
        return out

    async def articles_in_period(
        self, start: datetime | None, end: datetime | None, limit: int = 5000
    ) -> list[ArticleRecord]:
        """Canonical articles published (or indexed, when undated) in [start, end)."""
        filters = Filters(date_from=start, date_to=end)
        where, params = self._filter_sql(filters)
        async with self.db.execute(
            f"SELECT a.id FROM articles a WHERE {where}"
            " ORDER BY coalesce(a.published_ts, a.indexed_ts) DESC LIMIT ?",
            [*params, limit],
        ) as cur:
            ids = [r[0] for r in await cur.fetchall()]
        recs = await self.articles(ids)
        return [recs[i] for i in ids if i in recs]

    async def article_chunk_ids(self, article_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        ids = list(article_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = ",".join("?" * len(part))
            async with self.db.execute(
                f"SELECT article_id, id FROM chunks WHERE article_id IN ({q}) ORDER BY ord", part
            ) as cur:
                for aid, cid in await cur.fetchall():
                    out.setdefault(aid, []).append(cid)
        return out
