"""SQLite, the source of truth: articles, chunks, the keyword index, runs and duplicate links.

Chroma only mirrors chunk vectors; every chunk id in Chroma must exist here and vice versa
at the end of a run. One connection is the single writer (aiosqlite runs it in its own
thread), so callers never hold a write lock across an ``await`` of someone else's.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

import aiosqlite

from index.models import Article, Chunk, Filters

SCHEMA_VERSION = "1"
MMAP_BYTES = 1 << 30

# Keyword search at scale (numbers measured by bench/query_bench.py at 100k chunks): FTS5
# spends ~1.3 µs per matching row computing bm25() but ~0.05 µs to merely iterate it, and an OR
# of common words matches tens of thousands of chunks. Past FTS_EXACT_ROWS scored rows, only
# *candidates* are scored: chunks with the rarest terms (up to FTS_RARE_ROWS of them) or with
# two of the FTS_PAIR_WORDS least common other words. Each candidate gets its exact bm25 over
# all the question's terms; a chunk left out holds at most one common word and none of the
# rare ones, so it could only rank near the bottom. Below the threshold nothing changes.
FTS_EXACT_ROWS = 2000
FTS_RARE_ROWS = 1000
FTS_PAIR_WORDS = 4
FTS_FILTER_SET_ROWS = 8000  # filters passing more chunks are checked row by row
STATS_RECHECK_S = 1.0  # how often to notice writes by other connections (PRAGMA data_version)
_PHRASE = re.compile(r'"((?:[^"]|"")*)"')
_TOKEN = re.compile(r"[^\W_]+")

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
-- Filters never read an article's row: its long text comes before these columns, so reading
-- them walks the text's overflow pages (~100x slower at 100k chunks, see bench/query_bench.py).
CREATE INDEX IF NOT EXISTS articles_when ON articles(
    coalesce(published_ts, indexed_ts), source_key, lang, dup_kind, id, published_ts, indexed_ts
);
CREATE INDEX IF NOT EXISTS articles_meta ON articles(
    id, source_key, lang, dup_kind, published_ts, indexed_ts, title, url, published, source,
    canonical_id
);
DROP INDEX IF EXISTS chunks_article;
CREATE INDEX IF NOT EXISTS chunks_article_ids ON chunks(article_id, id);
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


def to_ts(dt: datetime | None) -> int | None:
    """The integer epoch seconds that ``articles.published_ts``/``indexed_ts`` hold."""
    return int(dt.timestamp()) if dt else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Facets(NamedTuple):
    """A chunk's columns that filters read (see ``Store._filter_sql``)."""

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


async def connect_sqlite(path: Path) -> aiosqlite.Connection:
    """One recipe for every database of the project: WAL so readers never wait for the
    single writer, autocommit (explicit BEGIN where a transaction is meant), named rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=NORMAL")
    await db.execute("PRAGMA foreign_keys=ON")
    await db.execute("PRAGMA busy_timeout=10000")
    return db


class Store:
    """Async access to the SQLite database; construct with :meth:`open`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        # Corpus statistics for query planning, valid while nothing writes to the database.
        self._doc_freq: dict[str, int] = {}
        self._fractions: dict[tuple[Any, ...], float] = {}
        self._chunk_count: int | None = None
        self._stamp: tuple[int, int] = (-1, -1)  # (PRAGMA data_version, own total_changes)
        self._stamp_checked = 0.0
        self._vocab_ready = False

    @classmethod
    async def open(cls, path: Path) -> Store:
        db = await connect_sqlite(path)
        # Memory-mapped reads: chunk and article rows are read at random by every question.
        await db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        await db.executescript(_SCHEMA)
        store = cls(db, path)
        if await store.get_meta("schema_version") is None:
            await store.set_meta("schema_version", SCHEMA_VERSION)
        return store

    async def close(self) -> None:
        await self.db.close()

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one statement in one hop to the connection's thread (``async with
        execute`` + ``fetchall`` takes three, each a wake-up of the event loop)."""
        return cast(list[Any], await self.db.execute_fetchall(sql, params))

    async def _all_in(
        self, sql: str, ids: Sequence[Any], params: Sequence[Any] = (), size: int = 500
    ) -> list[Any]:
        """Every row of ``sql`` with its ``{ids}`` bound to ``ids``, in batches that stay within
        SQLite's limit on bound parameters; ``params`` are bound after each batch."""
        rows: list[Any] = []
        for i in range(0, len(ids), size):
            part = list(ids[i : i + size])
            marks = ",".join("?" * len(part))
            rows += await self._all(sql.replace("{ids}", marks), [*part, *params])
        return rows

    # -- meta -----------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        rows = await self._all("SELECT value FROM meta WHERE key=?", (key,))
        row = rows[0] if rows else None
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
        rows = await self._all("SELECT status FROM runs ORDER BY id DESC LIMIT 1")
        row = rows[0] if rows else None
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
        rows = await self._all(
            "SELECT id, started_at, finished_at, status, stats FROM runs "
            "WHERE status != 'running' ORDER BY id DESC LIMIT 1"
        )
        row = rows[0] if rows else None
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
        rows = await self._all(
            "SELECT id, content_hash, raw_hash, dup_kind, embedded FROM articles"
        )
        return {
            r[0]: StoredState(r[1], r[2], r[3], bool(r[4])) for r in rows
        }

    async def ids_by_content_hash(self, hashes: Iterable[str]) -> dict[str, str]:
        """Map content hash → id of a stored canonical (non-exact-duplicate) article."""
        out: dict[str, str] = {}
        rows = await self._all_in(
            "SELECT content_hash, id FROM articles WHERE dup_kind IS NOT 'exact' "
            "AND content_hash IN ({ids}) ORDER BY indexed_ts",
            list(set(hashes)),
        )
        for h, aid in rows:
            out.setdefault(h, aid)
        return out

    async def articles_sharing_bands(self, keys: Sequence[int]) -> set[str]:
        if not keys:
            return set()
        q = ",".join("?" * len(keys))
        rows = await self._all(
            f"SELECT DISTINCT article_id FROM article_bands WHERE band_key IN ({q})", list(keys)
        )
        return {r[0] for r in rows}

    async def signatures(self, ids: Iterable[str]) -> dict[str, tuple[bytes, str | None]]:
        """MinHash signature and canonical link of each stored article."""
        rows = await self._all_in(
            "SELECT id, minhash, canonical_id FROM articles WHERE minhash IS NOT NULL"
            " AND id IN ({ids})",
            list(ids),
        )
        return {aid: (sig, canon) for aid, sig, canon in rows}

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
                        a.id, a.title, a.text, a.url, _iso(a.published), to_ts(a.published),
                        a.source, a.source.lower() if a.source else None, a.lang,
                        w.content_hash, w.raw_hash, a.origin, w.canonical_id, w.dup_kind,
                        w.similarity, w.signature, 1 if w.dup_kind != "exact" else 0,
                        now.isoformat(), to_ts(now), run_id,
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
                # Chunk ids are content-addressed: a passage re-embedded unchanged (a repair,
                # a new model) keeps its id, and its fresh vector must not go as stale.
                await self.db.executemany(
                    "DELETE FROM stale_vectors WHERE chunk_id=?", [(c,) for c in w.chunk_ids]
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
        rows = await self._all("SELECT chunk_id FROM stale_vectors")
        return [r[0] for r in rows]

    async def clear_stale(self, ids: Sequence[str]) -> None:
        await self.db.executemany(
            "DELETE FROM stale_vectors WHERE chunk_id=?", [(i,) for i in ids]
        )

    async def chunk_ids_with_articles(self) -> dict[str, str]:
        rows = await self._all("SELECT id, article_id FROM chunks")
        return {r[0]: r[1] for r in rows}

    async def counts(self) -> dict[str, int]:
        out = {}
        for name, sql in (
            ("articles", "SELECT count(*) FROM articles WHERE dup_kind IS NOT 'exact'"),
            ("exact_duplicates", "SELECT count(*) FROM articles WHERE dup_kind='exact'"),
            ("near_duplicates", "SELECT count(*) FROM articles WHERE dup_kind='near'"),
            ("chunks", "SELECT count(*) FROM chunks"),
            ("sources", "SELECT count(DISTINCT source_key) FROM articles"),
        ):
            rows = await self._all(sql)
            row = rows[0] if rows else None
            out[name] = int(row[0]) if row else 0
        return out

    async def corpus_overview(self) -> dict[str, Any]:
        """Languages, date range and top outlets: what /start and `status` tell a user."""
        rows = await self._all(
            "SELECT lang, count(*) FROM articles WHERE dup_kind IS NOT 'exact'"
            " GROUP BY lang ORDER BY count(*) DESC"
        )
        langs = {(r[0] or "?"): r[1] for r in rows}
        rows = await self._all(
            "SELECT min(published), max(published) FROM articles WHERE published IS NOT NULL"
        )
        row = rows[0] if rows else None
        rows = await self._all(
            "SELECT source, count(*) FROM articles WHERE source IS NOT NULL"
            " GROUP BY source_key ORDER BY count(*) DESC LIMIT 10"
        )
        sources = {r[0]: r[1] for r in rows}
        return {
            "languages": langs,
            "first_published": _parse_dt(row[0]) if row else None,
            "last_published": _parse_dt(row[1]) if row else None,
            "top_sources": sources,
        }

    async def source_keys(self) -> set[str]:
        rows = await self._all(
            "SELECT DISTINCT source_key FROM articles WHERE source_key IS NOT NULL"
        )
        return {r[0] for r in rows}

    # -- retrieval --------------------------------------------------------------------------

    def _filter_sql(self, filters: Filters, alias: str = "a") -> tuple[str, list[Any]]:
        clauses: list[str] = [f"{alias}.dup_kind IS NOT 'exact'"]
        params: list[Any] = []
        if filters.date_from:
            clauses.append(f"coalesce({alias}.published_ts, {alias}.indexed_ts) >= ?")
            params.append(to_ts(filters.date_from))
        if filters.date_to:
            clauses.append(f"coalesce({alias}.published_ts, {alias}.indexed_ts) < ?")
            params.append(to_ts(filters.date_to))
        if filters.sources:
            ors = []
            for s in filters.sources:
                ors.append(f"{alias}.source_key LIKE ?")
                params.append(f"%{s.lower()}%")
            clauses.append("(" + " OR ".join(ors) + ")")
        if filters.langs:
            # "+": never look articles up by language (rows, not a covering index, are read).
            clauses.append(f"+{alias}.lang IN ({','.join('?' * len(filters.langs))})")
            params.extend(filters.langs)
        return " AND ".join(clauses), params

    def _filter_key(self, filters: Filters) -> tuple[Any, ...]:
        return (
            to_ts(filters.date_from), to_ts(filters.date_to), tuple(filters.sources),
            tuple(filters.langs),
        )

    async def _fresh_stats(self) -> None:
        """Forget cached corpus statistics once this or another connection has written."""
        changes = self.db.total_changes
        version = self._stamp[0]
        now = time.monotonic()
        if now - self._stamp_checked >= STATS_RECHECK_S:
            rows = await self._all("PRAGMA data_version")
            row = rows[0] if rows else None
            version = int(row[0]) if row else -1
            self._stamp_checked = now
        if (version, changes) != self._stamp:
            self._doc_freq.clear()
            self._fractions.clear()
            self._chunk_count = None
            self._stamp = (version, changes)

    async def chunk_count(self) -> int:
        """How many chunks are stored (cached until the next write)."""
        await self._fresh_stats()
        if self._chunk_count is None:
            rows = await self._all("SELECT count(*) FROM chunks")
            row = rows[0] if rows else None
            self._chunk_count = int(row[0]) if row else 0
        return self._chunk_count

    async def doc_freqs(self, terms: Sequence[str]) -> dict[str, int]:
        """How many chunks contain each (already analysed) term; 0 for unknown terms."""
        await self._fresh_stats()
        missing = [t for t in dict.fromkeys(terms) if t not in self._doc_freq]
        if missing:
            if not self._vocab_ready:
                await self.db.execute(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab"
                    " USING fts5vocab(main, chunks_fts, 'row')"
                )
                self._vocab_ready = True
            if len(self._doc_freq) > 100_000:
                self._doc_freq.clear()
            q = ",".join("?" * len(missing))
            rows = await self._all(
                f"SELECT term, doc FROM temp.chunks_vocab WHERE term IN ({q})", missing
            )
            found = {r[0]: int(r[1]) for r in rows}
            for t in missing:
                self._doc_freq[t] = found.get(t, 0)
        return {t: self._doc_freq[t] for t in terms}

    async def filter_fraction(self, filters: Filters) -> float:
        """Estimated fraction of the chunks that pass ``filters`` (by their articles)."""
        await self._fresh_stats()
        key = self._filter_key(filters)
        hit = self._fractions.get(key)
        if hit is not None:
            return hit
        where, params = self._filter_sql(filters)
        rows = await self._all(
            f"SELECT (SELECT count(*) FROM articles a WHERE {where}),"
            " (SELECT count(*) FROM articles WHERE dup_kind IS NOT 'exact')",
            params,
        )
        row = rows[0] if rows else None
        passing, total = (int(row[0]), int(row[1])) if row else (0, 0)
        fraction = passing / total if total else 0.0
        if len(self._fractions) > 1000:
            self._fractions.clear()
        self._fractions[key] = fraction
        return fraction

    async def fts_search(
        self, match: str, limit: int, filters: Filters | None = None
    ) -> list[tuple[str, float]]:
        """Chunk ids ranked by BM25 (higher is better) for an FTS5 MATCH expression.

        For an OR of plain terms (what ``keywords.fts_match`` builds), terms absent from the
        corpus are dropped and, when many chunks match, only candidates are scored (see
        ``FTS_EXACT_ROWS``). Filters restrict the rows scored, not the rows joined: an
        article's filter columns are read once per passing chunk from covering indexes.
        """
        if not match:
            return []
        filt = filters if filters is not None and not filters.is_empty() else None
        fraction = await self.filter_fraction(filt) if filt is not None else 1.0
        if fraction <= 0.0:
            return []
        # A filter passing many chunks is checked on each row scored, a smaller one is
        # gathered once into a set of rowids.
        per_row = filt is not None and fraction * await self.chunk_count() > FTS_FILTER_SET_ROWS
        candidates: str | None = None
        terms = or_terms(match)
        if terms is not None:
            df = await self.doc_freqs(terms)
            terms = [t for t in terms if df[t] > 0]
            if not terms:
                return []
            match = " OR ".join(_phrase(t) for t in terms)
            if sum(df[t] for t in terms) * fraction > FTS_EXACT_ROWS:
                candidates = _candidate_match(terms, df)
        try:
            out = await self._fts_query(match, candidates, limit, filt, per_row)
            if candidates is not None and len(out) < limit:
                # Too few candidates passed the filters: score every match after all.
                out = await self._fts_query(match, None, limit, filt, per_row)
        except sqlite3.OperationalError:
            return []
        return out

    async def _fts_query(
        self,
        match: str,
        candidates: str | None,
        limit: int,
        filters: Filters | None,
        per_row: bool = False,
    ) -> list[tuple[str, float]]:
        inner = "SELECT rowid, bm25(chunks_fts) AS r FROM chunks_fts WHERE chunks_fts MATCH ?"
        params: list[Any] = [match]
        # "+rowid": a membership test on each match; a bare rowid IN would make FTS5 re-run
        # the whole query once per listed rowid.
        if candidates is not None:
            inner += " AND +rowid IN (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?)"
            params.append(candidates)
        if filters is not None:
            where, fparams = self._filter_sql(filters)
            if per_row:
                inner += (
                    " AND EXISTS (SELECT 1 FROM chunks c CROSS JOIN articles a"
                    " INDEXED BY articles_meta ON a.id = c.article_id"
                    f" WHERE c.rowid = chunks_fts.rowid AND {where})"
                )
            else:
                inner += (
                    " AND +rowid IN (SELECT c.rowid FROM articles a CROSS JOIN chunks c"
                    f" ON c.article_id = a.id WHERE {where})"
                )
            params.extend(fparams)
        params.append(limit)
        # bm25() is computed once per row that passes, then only the top rows are joined.
        rows = await self._all(
            f"SELECT c.id, -s.r FROM ({inner} ORDER BY r LIMIT ?) s"
            " JOIN chunks c ON c.rowid = s.rowid ORDER BY s.r",
            params,
        )
        return [(r[0], float(r[1])) for r in rows]

    def last_stamp(self) -> tuple[int, int]:
        """:meth:`corpus_stamp` as last checked, without checking (for status lines)."""
        return self._stamp

    async def corpus_stamp(self) -> tuple[int, int]:
        """Changes whenever this or another connection has written (rechecked every
        ``STATS_RECHECK_S``): what in-memory copies of the corpus compare against."""
        await self._fresh_stats()
        return self._stamp

    async def chunk_facets(self) -> list[Facets]:
        """What ``_filter_sql`` reads of every chunk, for filtering in memory
        (index/search/chunk_matrix.py). Exact duplicates have no chunks."""
        rows = await self._all(
            "SELECT c.id, c.rowid, coalesce(a.published_ts, a.indexed_ts), a.source_key,"
            " a.lang FROM articles a CROSS JOIN chunks c ON c.article_id = a.id"
            " WHERE a.dup_kind IS NOT 'exact'"
        )
        return [Facets(r[0], r[1], int(r[2]), r[3], r[4]) for r in rows]

    async def fts_bodies(self) -> dict[int, str]:
        """The keyword index's body of every chunk, by chunk rowid."""
        return {r[0]: r[1] for r in await self._all("SELECT rowid, body FROM chunks_fts")}

    async def filtered_chunk_ids(self, filters: Filters, limit: int) -> list[str] | None:
        """Chunk ids passing the filters, or None if more than ``limit`` do."""
        where, params = self._filter_sql(filters)
        rows = await self._all(
            f"SELECT c.id FROM articles a CROSS JOIN chunks c ON c.article_id = a.id"
            f" WHERE {where} LIMIT ?",
            [*params, limit + 1],
        )
        rows = list(rows)
        if len(rows) > limit:
            return None
        return [r[0] for r in rows]

    async def passing_chunk_ids(self, chunk_ids: Sequence[str], filters: Filters) -> set[str]:
        """Those of ``chunk_ids`` whose article passes ``filters``."""
        where, params = self._filter_sql(filters)
        rows = await self._all_in(
            "SELECT c.id FROM chunks c CROSS JOIN articles a INDEXED BY articles_meta"
            " ON a.id = c.article_id WHERE c.id IN ({ids}) AND " + where,
            list(chunk_ids), params, size=2000,
        )
        return {r[0] for r in rows}

    async def chunk_records(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRecord]:
        rows = await self._all_in(
            "SELECT c.id, c.rowid, c.article_id, c.ord, c.start, c.end, c.text, a.title,"
            " a.url, a.published, a.source, a.lang, a.canonical_id FROM chunks c"
            " CROSS JOIN articles a INDEXED BY articles_meta ON a.id = c.article_id"
            " WHERE c.id IN ({ids})",
            list(chunk_ids),
        )
        return {
            r[0]: ChunkRecord(
                chunk_id=r[0], rowid=r[1], article_id=r[2], ord=r[3], start=r[4], end=r[5],
                text=r[6], title=r[7], url=r[8], published=_parse_dt(r[9]), source=r[10],
                lang=r[11], canonical_id=r[12],
            )
            for r in rows
        }

    async def article(self, article_id: str) -> ArticleRecord | None:
        arts = await self.articles([article_id])
        return arts.get(article_id)

    async def articles(
        self, ids: Sequence[str], *, with_text: bool = True
    ) -> dict[str, ArticleRecord]:
        """Article rows by id; ``with_text=False`` leaves ``text`` empty (outlet credits)."""
        text = "text" if with_text else "''"
        rows = await self._all_in(
            f"SELECT id, title, {text}, url, published, source, lang, canonical_id, dup_kind,"
            " indexed_at FROM articles WHERE id IN ({ids})",
            list(ids),
        )
        return {r[0]: _article_record(r) for r in rows}

    async def duplicates_of(self, canonical_ids: Sequence[str]) -> dict[str, list[ArticleRecord]]:
        """Articles linked to each canonical (exact or near copies), for 'also reported by'.

        Without their text (``""``): only who else reported the story is shown, and a reply
        would otherwise read every copy of every story in full."""
        out: dict[str, list[ArticleRecord]] = {}
        rows = await self._all_in(
            "SELECT id, title, '', url, published, source, lang, canonical_id, dup_kind,"
            " indexed_at FROM articles WHERE canonical_id IN ({ids})",
            list(dict.fromkeys(canonical_ids)),
        )
        for r in rows:
            out.setdefault(r[7], []).append(_article_record(r))
        for lst in out.values():
            lst.sort(key=lambda r: (r.published or r.indexed_at))
        return out

    async def articles_in_period(
        self, start: datetime | None, end: datetime | None, limit: int = 5000
    ) -> list[ArticleRecord]:
        """Canonical articles published (or indexed, when undated) in [start, end)."""
        filters = Filters(date_from=start, date_to=end)
        where, params = self._filter_sql(filters)
        rows = await self._all(
            f"SELECT a.id FROM articles a WHERE {where}"
            " ORDER BY coalesce(a.published_ts, a.indexed_ts) DESC LIMIT ?",
            [*params, limit],
        )
        ids = [r[0] for r in rows]
        recs = await self.articles(ids)
        return [recs[i] for i in ids if i in recs]

    async def article_chunk_ids(self, article_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        rows = await self._all_in(
            "SELECT article_id, id FROM chunks WHERE article_id IN ({ids}) ORDER BY ord",
            list(article_ids),
        )
        for aid, cid in rows:
            out.setdefault(aid, []).append(cid)
        return out


def _article_record(r: Sequence[Any]) -> ArticleRecord:
    """An ``articles`` row selected as id, title, text, url, published, source, lang,
    canonical_id, dup_kind, indexed_at."""
    return ArticleRecord(
        id=r[0], title=r[1], text=r[2], url=r[3], published=_parse_dt(r[4]), source=r[5],
        lang=r[6], canonical_id=r[7], dup_kind=r[8], indexed_at=datetime.fromisoformat(r[9]),
    )


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def or_terms(match: str) -> list[str] | None:
    """The terms of a MATCH expression that is an OR of single quoted tokens, else None."""
    terms: list[str] = []
    pos = 0
    for m in _PHRASE.finditer(match):
        if match[pos : m.start()].strip() != ("OR" if terms else ""):
            return None
        term = m.group(1).replace('""', '"')
        if not _TOKEN.fullmatch(term):
            return None  # several tokens, or characters the tokenizer drops: leave it alone
        terms.append(term)
        pos = m.end()
    if not terms or match[pos:].strip():
        return None
    return terms


def _candidate_match(terms: Sequence[str], df: dict[str, int]) -> str:
    """MATCH expression of the chunks worth scoring: the rarest terms, or two common words.

    ``terms`` are in question order, each word's stem variants next to each other (as
    ``keywords.fts_match`` writes them): adjacent terms sharing their first three letters are
    taken for variants of one word.
    """
    rare: set[str] = set()
    total = 0
    for t in sorted(terms, key=lambda t: df[t]):
        if rare and total + df[t] > FTS_RARE_ROWS:
            break
        rare.add(t)
        total += df[t]
    words: list[list[str]] = []
    prev = ""
    for t in terms:
        if t in rare:
            prev = t
            continue
        if words and prev[:3] == t[:3] and prev not in rare:
            words[-1].append(t)
        else:
            words.append([t])
        prev = t
    words.sort(key=lambda w: sum(df[t] for t in w))
    parts = [" OR ".join(_phrase(t) for t in sorted(rare))]
    common = words[:FTS_PAIR_WORDS]
    for i, a in enumerate(common):
        for b in common[i + 1 :]:
            parts.append(
                "(" + " OR ".join(map(_phrase, a)) + ") AND (" + " OR ".join(map(_phrase, b)) + ")"
            )
    return " OR ".join(f"({p})" for p in parts)
