"""What every part of the store shares: the connection, batched reads and the meta table."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import aiosqlite

P = ParamSpec("P")
T = TypeVar("T")


async def in_one_hop(
    db: aiosqlite.Connection,
    fn: Callable[Concatenate[sqlite3.Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """``fn(connection, ...)`` run whole on the connection's own thread, in one hop.

    Each ``await db.execute`` is a round trip through that thread and the event loop; a
    transaction of hundreds of statements pays it hundreds of times, and under a busy
    interpreter lock each trip waits for it. aiosqlite offers no public call for this; the
    one it uses itself keeps the single connection and its thread (one writer).
    """

    def call() -> T:
        return fn(db._conn, *args, **kwargs)  # noqa: SLF001 - see the docstring

    return cast(T, await db._execute(call))  # noqa: SLF001


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
