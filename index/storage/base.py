"""What every part of the store shares: the connection, batched reads and the meta table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import aiosqlite


class StoreBase:
    """The connection the store's parts (runs, writes, reads, full text) work through."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path

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
