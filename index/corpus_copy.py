"""The corpus held in memory by a long-running process, kept in step with the store.

The bot answers from a copy of every chunk vector and the keyword postings
(index/chunk_matrix.py): filtered questions skip Chroma's slow filters and BM25 skips FTS5.
Loading it reads everything (~10 s per 100k chunks), so it happens in the background, and
until a copy matching the store exists, questions take the Chroma and SQLite paths. One-shot
commands (``newsbot ask``, ``newsbot eval``) never start one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from index.chunk_matrix import ChunkMatrix
from index.settings import Settings
from index.store import Store
from index.vectors import VectorStore

log = logging.getLogger(__name__)

__all__ = ["SETTLE_S", "CorpusCopy"]

SETTLE_S = 5.0  # a changed corpus is copied again once it has not changed this long


class CorpusCopy:
    """Loads, serves and reloads the in-memory copy; never hands out a stale one."""

    def __init__(self, settings: Settings, store: Store, vectors: VectorStore) -> None:
        self.settings = settings
        self.store = store
        self.vectors = vectors
        self.matrix: ChunkMatrix | None = None  # the last copy loaded (maybe stale)
        self.task: asyncio.Task[None] | None = None  # the load running, if any
        self._wanted = False
        self._tried: object = None  # the corpus stamp of the last load started
        self._seen_stamp: object = None  # the corpus stamp last seen changed, and when
        self._seen_at = 0.0

    def keep(self) -> None:
        """Load the copy in the background (unless ``dense_matrix_max_chunks`` is 0) and
        keep it in step with the store from now on."""
        if self.settings.dense_matrix_max_chunks > 0:
            self._wanted = True
            if self.matrix is None:
                self._start()

    async def wait(self) -> ChunkMatrix | None:
        """:meth:`keep`, waiting until the copy matches the corpus as it is now (benchmarks,
        tests); None when it is off, too large or failed to load."""
        self.keep()
        while self._wanted:
            if self.task is not None:
                await asyncio.shield(self.task)
            stamp = await self.store.corpus_stamp()
            m = self.matrix
            if m is not None and m.stamp == stamp:
                return m
            if self._tried == stamp and (self.task is None or self.task.done()):
                return None  # this corpus was tried: too large, or the load failed
            self._start()  # the corpus changed while it loaded
        return None

    async def current(self) -> ChunkMatrix | None:
        """The copy, if it matches the store now (else None, and a reload when due)."""
        if not self._wanted:
            return None
        stamp = await self.store.corpus_stamp()
        m = self.matrix
        if m is not None and m.stamp == stamp:
            return m
        # A corpus still being written (an index run in another process) is not copied
        # again and again: only once it has kept still for SETTLE_S.
        now = time.monotonic()
        if stamp != self._seen_stamp:
            self._seen_stamp, self._seen_at = stamp, now
        elif self._tried != stamp and now - self._seen_at >= SETTLE_S:
            self._start()
        return None

    def invalidate(self) -> None:
        """Drop the copy after a re-index, and copy the new corpus at once."""
        self.matrix = None
        self._tried = None
        if self._wanted:
            with contextlib.suppress(RuntimeError):  # no event loop: the next question will
                self._start()

    async def aclose(self) -> None:
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        stamp = await self.store.corpus_stamp()
        self._tried = stamp
        limit = self.settings.dense_matrix_max_chunks
        try:
            total = await self.store.chunk_count()
            if total > limit:
                log.info("too many chunks to keep their vectors in memory",
                         extra={"kv": {"chunks": total, "limit": limit}})  # fmt: skip
                self.matrix = None
                return
            facets = await self.store.chunk_facets()
            bodies = await self.store.fts_bodies()
            found = await asyncio.to_thread(
                self.vectors.get_vectors, [f.chunk_id for f in facets]
            )
            m = await asyncio.to_thread(ChunkMatrix, facets, found, bodies, stamp)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - questions still have the Chroma/SQLite paths
            log.warning("could not load the chunk vectors into memory", exc_info=True)
            return
        if self._tried == stamp:  # else invalidated meanwhile
            self.matrix = m
            log.info("chunk vectors in memory",
                     extra={"kv": {"chunks": len(m), "mb": round(m.nbytes / 2**20)}})  # fmt: skip
