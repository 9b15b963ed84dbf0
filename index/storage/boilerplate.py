"""The per-outlet boilerplate tables (migration m003 in schema.py): which lines each outlet's
articles carry, and the lines learned as boilerplate (index/ingest/outlet_boilerplate.py
decides).

Lines are stored as 64-bit hashes of their case-folded words, one row per (article, line),
so "how many of this outlet's stories carry this line" is one indexed count. A story is the
hash of an article's title: copies and updates of one story count once, so an outlet that
republishes an article five times does not turn its paragraphs into boilerplate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import aiosqlite

BATCH = 500


@dataclass(frozen=True, slots=True)
class SeenArticle:
    """One article's learnable lines, as recorded for its outlet."""

    article_id: str
    source_key: str
    story: int
    lines: Iterable[int]


@dataclass(frozen=True, slots=True)
class StoredText:
    """What re-cleaning an indexed article needs from its row."""

    id: str
    title: str
    text: str
    url: str | None
    published: str | None
    source: str | None
    lang: str | None
    origin: str
    raw_hash: str | None


@dataclass(frozen=True, slots=True)
class Pattern:
    source_key: str
    line_key: int
    text: str
    stories: int
    outlet_stories: int


class BoilerplateStore:
    """Reads and writes the boilerplate tables on the index store's connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return cast(list[Any], await self.db.execute_fetchall(sql, params))

    async def _all_in(self, sql: str, ids: Sequence[Any], params: Sequence[Any] = ()) -> list[Any]:
        rows: list[Any] = []
        for i in range(0, len(ids), BATCH):
            part = list(ids[i : i + BATCH])
            rows += await self._all(
                sql.replace("{ids}", ",".join("?" * len(part))), [*params, *part]
            )
        return rows

    async def forget_removed(self) -> None:
        """Rows of articles no longer indexed (removed, pruned, or never written).

        Found through the one-row-per-article table, then deleted by index from the big
        one: a run never scans every recorded line."""
        rows = await self._all(
            "SELECT article_id FROM boilerplate_seen WHERE article_id NOT IN (SELECT id FROM articles)"
        )
        if rows:
            await self.forget([r[0] for r in rows])

    async def unseen_articles(
        self, exclude: Iterable[str], limit: int = 20_000
    ) -> list[StoredText]:
        """Indexed articles whose lines were never recorded (indexed before this table)."""
        skip = set(exclude)
        rows = await self._all(
            "SELECT id, title, text, url, published, source, lang, origin, raw_hash FROM articles"
            " WHERE id NOT IN (SELECT article_id FROM boilerplate_seen) LIMIT ?",
            (limit,),
        )
        return [_stored(r) for r in rows if r[0] not in skip]

    async def record(self, seen: Sequence[SeenArticle]) -> None:
        """Replace the recorded lines of these articles, in one transaction."""
        if not seen:
            return
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            ids = [(s.article_id,) for s in seen]
            await self.db.executemany("DELETE FROM boilerplate_lines WHERE article_id=?", ids)
            await self.db.executemany(
                "INSERT OR REPLACE INTO boilerplate_seen(article_id, source_key, story)"
                " VALUES(?,?,?)",
                [(s.article_id, s.source_key, s.story) for s in seen],
            )
            await self.db.executemany(
                "INSERT INTO boilerplate_lines(source_key, line_key, article_id, story)"
                " VALUES(?,?,?,?)",
                [(s.source_key, k, s.article_id, s.story) for s in seen for k in set(s.lines)],
            )
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise

    async def forget(self, article_ids: Sequence[str]) -> None:
        for table in ("boilerplate_lines", "boilerplate_seen"):
            await self.db.executemany(
                f"DELETE FROM {table} WHERE article_id=?", [(a,) for a in article_ids]
            )

    async def outlet_stories(self, source_keys: Sequence[str]) -> dict[str, int]:
        rows = await self._all_in(
            "SELECT source_key, COUNT(DISTINCT story) FROM boilerplate_seen"
            " WHERE source_key IN ({ids}) GROUP BY source_key",
            list(source_keys),
        )
        return {r[0]: r[1] for r in rows}

    async def story_counts(self, source_key: str, line_keys: Sequence[int]) -> dict[int, int]:
        """How many distinct stories of the outlet carry each of these lines."""
        rows = await self._all_in(
            "SELECT line_key, COUNT(DISTINCT story) FROM boilerplate_lines"
            " WHERE source_key=? AND line_key IN ({ids}) GROUP BY line_key",
            list(line_keys),
            (source_key,),
        )
        return {r[0]: r[1] for r in rows}

    async def patterns(self, source_keys: Sequence[str]) -> dict[str, set[int]]:
        rows = await self._all_in(
            "SELECT source_key, line_key FROM boilerplate_patterns WHERE source_key IN ({ids})",
            list(source_keys),
        )
        out: dict[str, set[int]] = {}
        for source_key, key in rows:
            out.setdefault(source_key, set()).add(key)
        return out

    async def all_patterns(self) -> list[Pattern]:
        rows = await self._all(
            "SELECT source_key, line_key, text, stories, outlet_stories FROM boilerplate_patterns"
            " ORDER BY source_key, stories DESC"
        )
        return [Pattern(*r) for r in rows]

    async def add_patterns(self, patterns: Sequence[Pattern]) -> None:
        now = datetime.now(UTC).isoformat()
        await self.db.executemany(
            "INSERT OR IGNORE INTO boilerplate_patterns(source_key, line_key, text, stories,"
            " outlet_stories, learned_at) VALUES(?,?,?,?,?,?)",
            [
                (p.source_key, p.line_key, p.text, p.stories, p.outlet_stories, now)
                for p in patterns
            ],
        )

    async def carriers(self, patterns: Sequence[Pattern]) -> set[str]:
        """Ids of the indexed articles that carry any of these lines."""
        out: set[str] = set()
        by_source: dict[str, list[int]] = {}
        for p in patterns:
            by_source.setdefault(p.source_key, []).append(p.line_key)
        for source_key, keys in by_source.items():
            rows = await self._all_in(
                "SELECT DISTINCT article_id FROM boilerplate_lines"
                " WHERE source_key=? AND line_key IN ({ids})",
                keys,
                (source_key,),
            )
            out.update(r[0] for r in rows)
        return out

    async def stored_texts(self, ids: Sequence[str]) -> list[StoredText]:
        rows = await self._all_in(
            "SELECT id, title, text, url, published, source, lang, origin, raw_hash FROM articles"
            " WHERE id IN ({ids})",
            list(ids),
        )
        return [_stored(r) for r in rows]


def _stored(r: Sequence[Any]) -> StoredText:
    return StoredText(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or "", r[8])


def source_key(source: str | None) -> str | None:
    """How the boilerplate tables name an outlet (as ``articles.source_key`` does)."""
    return source.lower() if source else None


def counts_by_source(patterns: Iterable[Pattern]) -> Mapping[str, int]:
    out: dict[str, int] = {}
    for p in patterns:
        out[p.source_key] = out.get(p.source_key, 0) + 1
    return out
