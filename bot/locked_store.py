"""What the bot's SQLite stores of digests and alerts share: one connection opened through the
bot state's migrations, one lock held for a method's whole body, explicit transactions, and a
sleep that a stopping service cuts short.

Each service keeps its own connection so that planning one never queues behind the other or
behind the answering path (see :class:`bot.digests.store.DigestStore`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import aiosqlite

from bot.migrations import BOT_MIGRATIONS
from index.storage.sqlite import connect_sqlite, migrate

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def serialized(method: F) -> F:
    """The method runs holding the store's lock: one transaction at a time on the connection."""

    @functools.wraps(method)
    async def wrapper(self: LockedStore, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class LockedStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Self:
        db = await connect_sqlite(path)
        try:
            await migrate(db, BOT_MIGRATIONS, label=str(path))
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        async with self._lock:
            await self.db.close()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[None]:
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise
        await self.db.execute("COMMIT")


class Sleeper(Protocol):
    async def sleep(self, seconds: float) -> None: ...


async def sleep_unless_stopping(clock: Sleeper, stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep on ``clock``; False if ``stopping`` was set before or meanwhile."""
    if stopping.is_set():
        return False
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (sleeper, stopper):
            if not fut.done():
                fut.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fut
    return not stopping.is_set()
