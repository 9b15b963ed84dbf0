"""Articles of a period: what digests read (by publication date, or indexing date when undated)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from index.models import Filters
from index.storage.filters import filter_sql
from index.storage.reads import ReadsMixin
from index.storage.records import ArticleRecord


class PeriodsMixin(ReadsMixin):
    async def articles_in_period(
        self, start: datetime | None, end: datetime | None, limit: int = 5000
    ) -> list[ArticleRecord]:
        """Canonical articles published (or indexed, when undated) in [start, end)."""
        filters = Filters(date_from=start, date_to=end)
        where, params = filter_sql(filters)
        rows = await self._all(
            f"SELECT a.id FROM articles a WHERE {where}"
            " ORDER BY coalesce(a.published_ts, a.indexed_ts) DESC LIMIT ?",
            [*params, limit],
        )
        ids = [r[0] for r in rows]
        recs = await self.articles(ids)
        return [recs[i] for i in ids if i in recs]


    async def period_article_ids(
        self,
        since_ts: int,
        until_ts: int,
        *,
        late_from_ts: int | None = None,
        limit: int = 3000,
        sources: Sequence[str] = (),
        langs: Sequence[str] = (),
    ) -> list[str]:
        """Ids of canonical and near-duplicate articles "of" [since, until), newest first.

        With ``late_from_ts``, articles indexed in the period but published in
        [late_from_ts, since) count too (index/digest/stories.py says why)."""
        params: list[Any] = [since_ts, until_ts]
        sql = (
            "SELECT id FROM articles WHERE dup_kind IS NOT 'exact' AND ("
            "(coalesce(published_ts, indexed_ts) >= ? AND coalesce(published_ts, indexed_ts) < ?)"
        )
        if late_from_ts is not None:
            sql += (
                " OR (indexed_ts >= ? AND indexed_ts < ? AND published_ts >= ?"
                " AND published_ts < ?)"
            )
            params += [since_ts, until_ts, late_from_ts, since_ts]
        sql += ")"
        if sources:
            sql += " AND (" + " OR ".join("source_key LIKE ?" for _ in sources) + ")"
            params += [f"%{s.lower()}%" for s in sources]
        if langs:
            sql += f" AND lang IN ({','.join('?' * len(langs))})"
            params += list(langs)
        sql += " ORDER BY coalesce(published_ts, indexed_ts) DESC, id LIMIT ?"
        params.append(limit)
        return [r[0] for r in await self._all(sql, params)]
