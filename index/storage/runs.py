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

    async def article_origins(self) -> dict[str, str]:
        """Where each stored article was read from (``""`` when unknown), for pruning."""
        rows = await self._all("SELECT id, origin FROM articles")
        return {r[0]: r[1] or "" for r in rows}
