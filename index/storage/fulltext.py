"""Full-text search: the FTS5 query plan, document frequencies and the corpus statistics
that planning reads (cached until this or another connection writes)."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from index.models import Filters
from index.storage.base import StoreBase
from index.storage.filters import filter_key, filter_sql

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


class FulltextMixin(StoreBase):
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        super().__init__(db, path)
        # Corpus statistics for query planning, valid while nothing writes to the database.
        self._doc_freq: dict[str, int] = {}
        self._fractions: dict[tuple[Any, ...], float] = {}
        self._chunk_count: int | None = None
        self._stamp: tuple[int, int] = (-1, -1)  # (PRAGMA data_version, own total_changes)
        self._stamp_checked = 0.0
        self._vocab_ready = False

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
        key = filter_key(filters)
        hit = self._fractions.get(key)
        if hit is not None:
            return hit
        where, params = filter_sql(filters)
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
            match = " OR ".join(phrase(t) for t in terms)
            if sum(df[t] for t in terms) * fraction > FTS_EXACT_ROWS:
                candidates = candidate_match(terms, df)
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
            where, fparams = filter_sql(filters)
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

    async def fts_bodies(self) -> dict[int, str]:
        """The keyword index's body of every chunk, by chunk rowid."""
        return {r[0]: r[1] for r in await self._all("SELECT rowid, body FROM chunks_fts")}


def phrase(term: str) -> str:
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


def candidate_match(terms: Sequence[str], df: dict[str, int]) -> str:
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
    parts = [" OR ".join(phrase(t) for t in sorted(rare))]
    common = words[:FTS_PAIR_WORDS]
    for i, a in enumerate(common):
        for b in common[i + 1 :]:
            parts.append(
                "(" + " OR ".join(map(phrase, a)) + ") AND (" + " OR ".join(map(phrase, b)) + ")"
            )
    return " OR ".join(f"({p})" for p in parts)
