"""The sources' ledger: health of each source, what a rescan compares, posts waiting to be indexed.

Kept in the index's SQLite (``newsbot.sqlite3``), on a connection of its own, so that the
background scheduler (index/ingest/live.py), ``newsbot status`` and the bot's ``/sources`` read
the same record, and a restart keeps each source's validators, back-off and alert state.

- ``source_state``: one row per source — the HTTP validators of the last download indexed
  (``ETag``/``Last-Modified``), last attempt / success / error, consecutive failures, articles
  added, the newest item's date (for the lag), when it is due next, and whether the current
  failure streak was reported to the admins;
- ``source_files``: size and modification time of every file a folder source read, so a rescan
  reads only the files that changed;
- ``source_inbox``: pushed articles (Telegram channel posts) not yet indexed; a post is
  deleted only once the run that indexed it has committed, so none is lost to a crash.

Timestamps are epoch seconds (the scheduler's clock).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from index.models import Article
from index.storage.schema import INDEX_MIGRATIONS
from index.storage.sqlite import connect_sqlite, migrate

__all__ = ["InboxItem", "SourceHealth", "SourceLedger"]

_COLUMNS = (
    "name, kind, target, etag, last_modified, last_attempt_ts, last_success_ts, last_error,"
    " last_error_ts, failures, added_total, added_last, newest_ts, next_attempt_ts, alerted,"
    " polls, not_modified, last_added_ts"
)


@dataclass(frozen=True, slots=True)
class SourceHealth:
    name: str
    kind: str  # feed | folder | file | channel
    target: str
    etag: str | None = None
    last_modified: str | None = None
    last_attempt: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    failures: int = 0  # consecutive
    added_total: int = 0
    added_last: int = 0
    newest: float | None = None  # the newest item's date
    next_attempt: float | None = None
    alerted: bool = False
    polls: int = 0
    not_modified: int = 0  # polls answered 304 Not Modified
    last_added: float | None = None  # when a read last added articles

    def lag(self, now: float) -> float | None:
        """Seconds between now and the newest item's date."""
        return None if self.newest is None else max(0.0, now - self.newest)

    def as_dict(self, now: float) -> dict[str, Any]:
        def iso(ts: float | None) -> str | None:
            return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None

        return {
            "name": self.name, "kind": self.kind, "target": self.target,
            "last_attempt": iso(self.last_attempt), "last_success": iso(self.last_success),
            "last_error": self.last_error, "last_error_at": iso(self.last_error_at),
            "consecutive_failures": self.failures, "articles_added": self.added_total,
            "added_last_run": self.added_last, "newest_item": iso(self.newest),
            "lag_seconds": None if self.lag(now) is None else round(self.lag(now) or 0.0),
            "next_attempt": iso(self.next_attempt), "alerted": self.alerted,
            "polls": self.polls, "not_modified": self.not_modified,
            "last_added": iso(self.last_added),
        }


@dataclass(frozen=True, slots=True)
class InboxItem:
    article_id: str
    source: str
    article: Article
    version: int


class SourceLedger:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    @classmethod
    async def open(cls, sqlite_path: Path) -> SourceLedger:
        db = await connect_sqlite(sqlite_path)
        try:
            await migrate(db, INDEX_MIGRATIONS, label=str(sqlite_path))
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        await self.db.close()

    # -- health -----------------------------------------------------------------------------

    async def get(self, name: str) -> SourceHealth | None:
        rows = await self.db.execute_fetchall(
            f"SELECT {_COLUMNS} FROM source_state WHERE name=?", (name,)
        )
        return _health(next(iter(rows))) if rows else None

    async def all(self) -> list[SourceHealth]:
        rows = await self.db.execute_fetchall(f"SELECT {_COLUMNS} FROM source_state ORDER BY name")
        return [_health(r) for r in rows]

    async def ensure(self, name: str, kind: str, target: str) -> SourceHealth:
        """The source's row, created if new; a source whose target changed starts afresh
        (its validators and files belong to the old target)."""
        current = await self.get(name)
        if current is not None and current.target == target and current.kind == kind:
            return current
        await self.db.execute("DELETE FROM source_state WHERE name=?", (name,))
        await self.db.execute("DELETE FROM source_files WHERE source=?", (name,))
        await self.db.execute(
            "INSERT INTO source_state(name, kind, target) VALUES(?, ?, ?)", (name, kind, target)
        )
        found = await self.get(name)
        assert found is not None
        return found

    async def attempted(self, name: str, now: float) -> None:
        await self.db.execute(
            "UPDATE source_state SET last_attempt_ts=?, polls=polls+1 WHERE name=?", (now, name)
        )

    async def succeeded(
        self,
        name: str,
        now: float,
        *,
        next_attempt: float | None,
        added: int = 0,
        newest: float | None = None,
        validators: tuple[str | None, str | None] | None = None,
        not_modified: bool = False,
    ) -> SourceHealth:
        sets = ["last_success_ts=?", "failures=0", "added_last=?", "added_total=added_total+?",
                "next_attempt_ts=?", "not_modified=not_modified+?"]
        params: list[Any] = [now, added, added, next_attempt, int(not_modified)]
        if added:
            sets.append("last_added_ts=?")
            params.append(now)
        if newest is not None:
            sets.append("newest_ts=max(coalesce(newest_ts, ?), ?)")
            params += [newest, newest]
        if validators is not None:
            sets += ["etag=?", "last_modified=?"]
            params += list(validators)
        await self.db.execute(
            f"UPDATE source_state SET {', '.join(sets)} WHERE name=?", [*params, name]
        )
        found = await self.get(name)
        assert found is not None
        return found

    async def failed(
        self, name: str, now: float, reason: str, *, next_attempt: float | None
    ) -> SourceHealth:
        await self.db.execute(
            "UPDATE source_state SET last_error=?, last_error_ts=?, failures=failures+1,"
            " next_attempt_ts=? WHERE name=?",
            (reason, now, next_attempt, name),
        )
        found = await self.get(name)
        assert found is not None
        return found

    async def set_next_attempt(self, name: str, when: float | None) -> None:
        await self.db.execute(
            "UPDATE source_state SET next_attempt_ts=? WHERE name=?", (when, name)
        )

    async def set_alerted(self, name: str, alerted: bool) -> None:
        await self.db.execute(
            "UPDATE source_state SET alerted=? WHERE name=?", (int(alerted), name)
        )

    async def known_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` already stored as articles (feed entries to leave unread)."""
        found: set[str] = set()
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 500):
            part = unique[i : i + 500]
            try:
                rows = await self.db.execute_fetchall(
                    f"SELECT id FROM articles WHERE id IN ({','.join('?' * len(part))})", part
                )
            except sqlite3.OperationalError:  # no index store here yet
                return set()
            found.update(r[0] for r in rows)
        return found

    # -- folder rescans ---------------------------------------------------------------------

    async def files(self, name: str) -> dict[str, tuple[int, int]]:
        rows = await self.db.execute_fetchall(
            "SELECT path, mtime_ns, size FROM source_files WHERE source=?", (name,)
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    async def set_files(
        self, name: str, seen: Mapping[str, tuple[int, int]], gone: Iterable[str] = ()
    ) -> None:
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            await self.db.executemany(
                "INSERT INTO source_files(source, path, mtime_ns, size) VALUES(?, ?, ?, ?)"
                " ON CONFLICT(source, path) DO UPDATE SET mtime_ns=excluded.mtime_ns,"
                " size=excluded.size",
                [(name, path, m, s) for path, (m, s) in seen.items()],
            )
            await self.db.executemany(
                "DELETE FROM source_files WHERE source=? AND path=?", [(name, p) for p in gone]
            )
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise

    # -- pushed articles --------------------------------------------------------------------

    async def inbox_put(self, source: str, article: Article, now: float) -> None:
        """Queue ``article`` (a newer version of the same id replaces the queued one)."""
        await self.db.execute(
            "INSERT INTO source_inbox(article_id, source, payload, version, received_ts)"
            " VALUES(?, ?, ?, 1, ?) ON CONFLICT(article_id) DO UPDATE SET"
            " source=excluded.source, payload=excluded.payload, version=version+1,"
            " received_ts=excluded.received_ts",
            (article.id, source, json.dumps(_article_json(article), ensure_ascii=False), now),
        )

    async def inbox(self, limit: int = 500) -> list[InboxItem]:
        rows = await self.db.execute_fetchall(
            "SELECT article_id, source, payload, version FROM source_inbox"
            " ORDER BY received_ts LIMIT ?",
            (limit,),
        )
        return [InboxItem(r[0], r[1], _article_from_json(json.loads(r[2])), int(r[3]))
                for r in rows]

    async def inbox_size(self) -> int:
        rows = list(await self.db.execute_fetchall("SELECT count(*) FROM source_inbox"))
        return int(rows[0][0]) if rows else 0

    async def inbox_done(self, items: Sequence[InboxItem]) -> None:
        """Forget the queued posts that were indexed (unless edited again meanwhile)."""
        await self.db.executemany(
            "DELETE FROM source_inbox WHERE article_id=? AND version=?",
            [(i.article_id, i.version) for i in items],
        )


def _health(r: Any) -> SourceHealth:
    return SourceHealth(
        name=r[0], kind=r[1], target=r[2], etag=r[3], last_modified=r[4], last_attempt=r[5],
        last_success=r[6], last_error=r[7], last_error_at=r[8], failures=int(r[9]),
        added_total=int(r[10]), added_last=int(r[11]), newest=r[12], next_attempt=r[13],
        alerted=bool(r[14]), polls=int(r[15]), not_modified=int(r[16]), last_added=r[17],
    )


def _article_json(a: Article) -> dict[str, Any]:
    return {
        "id": a.id, "text": a.text, "title": a.title, "url": a.url,
        "published": a.published.isoformat() if a.published else None, "source": a.source,
        "lang": a.lang, "origin": a.origin, "extra": a.extra,
    }


def _article_from_json(d: Mapping[str, Any]) -> Article:
    published = d.get("published")
    return Article(
        id=d["id"], text=d["text"], title=d.get("title") or "", url=d.get("url"),
        published=datetime.fromisoformat(published) if published else None,
        source=d.get("source"), lang=d.get("lang"), origin=d.get("origin") or "",
        extra=dict(d.get("extra") or {}),
    )
