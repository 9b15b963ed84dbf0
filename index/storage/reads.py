"""Reads: counts and overview, chunks and articles by id, filtered chunk ids."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from index.models import Filters
from index.storage.base import StoreBase
from index.storage.filters import filter_sql
from index.storage.records import (
    ArticleRecord,
    ChunkRecord,
    Facets,
    article_record,
    parse_dt,
)


class ReadsMixin(StoreBase):
    async def chunk_ids_with_articles(self) -> dict[str, str]:
        rows = await self._all("SELECT id, article_id FROM chunks")
        return {r[0]: r[1] for r in rows}

    async def chunk_count(self) -> int:
        rows = await self._all("SELECT count(*) FROM chunks")
        return int(rows[0][0])

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

    async def newest_published(self) -> datetime | None:
        """The publication time of the archive's newest dated article (an index lookup)."""
        rows = await self._all("SELECT max(published_ts) FROM articles")
        ts = rows[0][0] if rows else None
        return datetime.fromtimestamp(int(ts), UTC) if ts is not None else None

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
            "first_published": parse_dt(row[0]) if row else None,
            "last_published": parse_dt(row[1]) if row else None,
            "top_sources": sources,
        }

    async def corpus_generation(self) -> tuple[int, str]:
        """How many writes the copy could see the corpus has had, and a token that changes
        with each (schema.py, m004): what a snapshot of the in-memory copy is checked against,
        across processes and restarts."""
        rows = await self._all("SELECT n, token FROM corpus_generation WHERE id = 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, "")

    async def source_keys(self) -> set[str]:
        rows = await self._all(
            "SELECT DISTINCT source_key FROM articles WHERE source_key IS NOT NULL"
        )
        return {r[0] for r in rows}

    async def chunk_facets(self) -> list[Facets]:
        """What ``filter_sql`` reads of every chunk, for filtering in memory
        (index/search/chunk_matrix.py). Exact duplicates have no chunks."""
        rows = await self._all(
            "SELECT c.id, c.rowid, coalesce(a.published_ts, a.indexed_ts), a.source_key,"
            " a.lang FROM articles a CROSS JOIN chunks c ON c.article_id = a.id"
            " WHERE a.dup_kind IS NOT 'exact'"
        )
        return [Facets(r[0], r[1], int(r[2]), r[3], r[4]) for r in rows]

    async def filtered_chunk_ids(self, filters: Filters, limit: int) -> list[str] | None:
        """Chunk ids passing the filters, or None if more than ``limit`` do."""
        where, params = filter_sql(filters)
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
        where, params = filter_sql(filters)
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
                text=r[6], title=r[7], url=r[8], published=parse_dt(r[9]), source=r[10],
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
        return {r[0]: article_record(r) for r in rows}

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
            out.setdefault(r[7], []).append(article_record(r))
        for lst in out.values():
            lst.sort(key=lambda r: (r.published or r.indexed_at))
        return out

    async def article_chunk_ids(self, article_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        rows = await self._all_in(
            "SELECT article_id, id FROM chunks WHERE article_id IN ({ids}) ORDER BY ord",
            list(article_ids),
        )
        for aid, cid in rows:
            out.setdefault(aid, []).append(cid)
        return out


    async def chunk_rowids(self, filters: Filters) -> list[int]:
        """Rowids of every chunk passing the filters (bench/query_bench.py draws questions)."""
        where, params = filter_sql(filters)
        rows = await self._all(
            "SELECT c.rowid FROM articles a CROSS JOIN chunks c ON c.article_id = a.id"
            f" WHERE {where}",
            params,
        )
        return [r[0] for r in rows]

    async def chunk_text_by_rowid(self, rowid: int) -> tuple[str, str | None] | None:
        """A chunk's text and its article's language."""
        rows = await self._all(
            "SELECT c.text, a.lang FROM chunks c JOIN articles a ON a.id = c.article_id"
            " WHERE c.rowid = ?",
            (rowid,),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    async def titled_chunk_texts(self) -> list[tuple[str, str]]:
        """(article title, chunk text) of every chunk, in indexing and chunk order."""
        rows = await self._all(
            "SELECT a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article_id"
            " ORDER BY a.rowid, c.ord"
        )
        return [(r[0], r[1]) for r in rows]
