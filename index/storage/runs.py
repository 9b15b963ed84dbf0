"""Runs and what an incremental run compares against: stored hashes, states and duplicate bands."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from index.storage.base import StoreBase
from index.storage.records import StoredState, utcnow


class RunsMixin(StoreBase):

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

    async def latest_run_id(self) -> int:
        """The newest run's id (0 before the first run)."""
        rows = await self._all("SELECT coalesce(max(id), 0) FROM runs")
        return int(rows[0][0]) if rows else 0

    async def settled_run_id(self) -> int:
        """The highest run id such that no run up to it is still writing (0 if none)."""
        rows = await self._all(
            "SELECT coalesce(max(id), 0), (SELECT min(id) FROM runs WHERE status='running')"
            " FROM runs"
        )
        top, running = (int(rows[0][0]), rows[0][1]) if rows else (0, None)
        return int(running) - 1 if running is not None else top

    async def articles_after_run(self, run_id: int) -> list[tuple[str, int]]:
        """(id, epoch seconds of publication, else of indexing) of the articles written by
        runs after ``run_id``, oldest write first; exact duplicates are left out."""
        rows = await self._all(
            "SELECT id, coalesce(published_ts, indexed_ts) FROM articles WHERE run_id > ?"
            " AND dup_kind IS NOT 'exact' ORDER BY indexed_ts, id", (run_id,),
        )
        return [(r[0], int(r[1])) for r in rows]

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

    async def articles_by_band(self, keys: Sequence[int]) -> dict[int, set[str]]:
        """The stored articles under each of these MinHash band keys (a whole run's keys in
        a few queries: one query per article cost more than MinHash itself)."""
        out: dict[int, set[str]] = {}
        for key, aid in await self._all_in(
            "SELECT band_key, article_id FROM article_bands WHERE band_key IN ({ids})", keys
        ):
            out.setdefault(key, set()).add(aid)
        return out

    async def signatures(self, ids: Iterable[str]) -> dict[str, tuple[bytes, str | None]]:
        """MinHash signature and canonical link of each stored article."""
        rows = await self._all_in(
            "SELECT id, minhash, canonical_id FROM articles WHERE minhash IS NOT NULL"
            " AND id IN ({ids})",
            list(ids),
        )
        return {aid: (sig, canon) for aid, sig, canon in rows}

    async def article_origins(self) -> dict[str, str]:
        """Where each stored article was read from (``""`` when unknown), for pruning."""
        rows = await self._all("SELECT id, origin FROM articles")
        return {r[0]: r[1] or "" for r in rows}
