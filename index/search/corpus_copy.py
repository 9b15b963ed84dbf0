"""The corpus held in memory by a long-running process, kept in step with the store.

The bot answers from a copy of every chunk vector and the keyword postings
(index/search/chunk_matrix.py): filtered questions skip Chroma's slow filters and BM25 skips FTS5.
Loading it reads everything (~10 s per 100k chunks), so it happens in the background, and
until a copy matching the store exists, questions take the Chroma and SQLite paths. One-shot
commands (``newsbot ask``, ``newsbot eval``) never start one.

A copy is served only while it matches the store it was read from (the corpus stamp), so a
failed or stale load never answers: questions keep the Chroma and SQLite paths, the load is
retried with a growing back-off, and :meth:`CorpusCopy.status` tells ``/stats`` why. After a
write run of another process ends (index/storage/write_lock.py), the copy is read again at once;
while any write run is going on, including the bot's own live sources, it is not read.

Built once, the copy is saved in the data dir (index/search/copy_snapshot.py) and a later
start on the same corpus reads it back in seconds; a reload after a write run copies the
vectors of the chunks the last copy held from it (its int8 rows, and its float32 rows from
its file into the new file) and reads only the new chunks' from Chroma (the keyword index is
still rebuilt whole from SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.search.chunk_matrix import ChunkMatrix
from index.search.copy_snapshot import SNAPSHOT_NAME, load_snapshot, save_snapshot
from index.search.exact_rows import EXACT_NAME
from index.search.npz_file import remove_leftovers
from index.settings import Settings
from index.storage.store import Store
from index.storage.vectors import VectorStore

log = logging.getLogger(__name__)

__all__ = ["SETTLE_S", "CopyStatus", "CorpusCopy"]

SETTLE_S = 5.0  # a changed corpus is copied again once it has not changed this long
RETRY_FIRST_S = 5.0  # a failed load is tried again after this, doubling up to RETRY_MAX_S
RETRY_MAX_S = 600.0


@dataclass(slots=True)
class CopyStatus:
    """What ``/stats`` shows of the in-memory copy."""

    state: str  # "off", "loading", "ready", "stale", "too_large", "failed"
    chunks: int = 0
    mb: float = 0.0
    failures: int = 0  # consecutive failed loads
    error: str | None = None
    retry_in: float | None = None  # seconds until the next attempt, after a failure
    nbytes: int = 0  # exact size (``mb`` is rounded: a small int8 copy shows 0.0)


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
        self._generation = -1  # vectors.generation the last load read
        self._too_large = False
        self.failures = 0
        self.error: str | None = None
        self._retry_at = 0.0
        self._previous: ChunkMatrix | None = None  # a dropped copy whose vectors can be reused
        self._vector_key: str | None = None  # which vectors self.matrix's rows are
        # How the copies came to be, for /stats-style checks and tests: built from the store,
        # read from the snapshot, saved to it.
        self.builds = 0
        self.snapshot_reads = 0
        self.snapshot_writes = 0

    @property
    def snapshot_path(self) -> Path | None:
        if not self.settings.dense_matrix_snapshot:
            return None
        return self.settings.data_dir / SNAPSHOT_NAME

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
        now = time.monotonic()
        if self._tried == stamp:
            if self.error is not None and now >= self._retry_at:
                self._start()  # the last load of this corpus failed: its back-off is over
            return None
        lock = self.vectors.lock
        if lock is not None and lock.writer() is not None:
            # A write run is going on: another process's (copy the corpus once it is done)
            # or this one's, which calls invalidate() when it ends. Copying now would read a
            # corpus still changing, and the bot's own live runs would each copy it twice.
            return None
        if self.vectors.lock is not None and self._outside_write_ended():
            self._start()  # a write run just ended: the corpus is complete, copy it now
            return None
        # A corpus still being written by a process that takes no lock is not copied
        # again and again: only once it has kept still for SETTLE_S.
        if stamp != self._seen_stamp:
            self._seen_stamp, self._seen_at = stamp, now
        elif now - self._seen_at >= SETTLE_S:
            self._start()
        return None

    def _outside_write_ended(self) -> bool:
        self.vectors.follow_writes()  # reopens the client if another process wrote
        return self.vectors.generation != self._generation

    def status(self) -> CopyStatus:
        if not self._wanted:
            return CopyStatus("off")
        m = self.matrix
        loading = self.task is not None and not self.task.done()
        if self.error is not None:
            wait = max(0.0, self._retry_at - time.monotonic())
            return CopyStatus("failed", failures=self.failures, error=self.error,
                              retry_in=wait)  # fmt: skip
        if m is not None:
            state = "ready" if m.stamp == self.store.last_stamp() else "stale"
            return CopyStatus("loading" if loading else state, len(m),
                              round(m.nbytes / 2**20, 1), nbytes=int(m.nbytes))  # fmt: skip
        if self._too_large:
            return CopyStatus("too_large")
        return CopyStatus("loading")

    def invalidate(self) -> None:
        """Drop the copy after a re-index, and copy the new corpus at once."""
        if self.matrix is not None:
            self._previous = self.matrix
        self.matrix = None
        self._tried = None
        self._retry_at = 0.0
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
        generation = self.vectors.generation
        stamp = await self.store.corpus_stamp()
        self._tried = stamp
        limit = self.settings.dense_matrix_max_chunks
        try:
            total = await self.store.chunk_count()
            if total > limit:
                log.info("too many chunks to keep their vectors in memory",
                         extra={"kv": {"chunks": total, "limit": limit}})  # fmt: skip
                self.matrix = None
                self._too_large = True
                self._loaded(generation)
                return
            before = await self.store.corpus_generation()
            key = await asyncio.to_thread(self._snapshot_key, before)
            path = self.snapshot_path
            read = None
            if path is not None:
                read = await asyncio.to_thread(load_snapshot, path, key,
                                               self.vectors.get_vectors, stamp)  # fmt: skip
            from_snapshot = read is not None
            if read is not None:
                self.snapshot_reads += 1
                m = read
            else:
                m = await self._build(stamp, key["vectors"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - questions still have the Chroma/SQLite paths
            self.failures += 1
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (self.failures - 1))
            self._retry_at = time.monotonic() + delay
            log.warning("could not load the chunk vectors into memory; trying again later",
                        exc_info=True, extra={"kv": {"failures": self.failures,
                                                     "retry_in_s": delay}})  # fmt: skip
            return
        if self._tried != stamp:  # invalidated meanwhile
            m.drop_exact_file()
        else:
            self.matrix = m
            self._vector_key = key["vectors"]
            self._previous = None
            self._too_large = False
            self._loaded(generation)
            log.info("chunk vectors in memory",
                     extra={"kv": {"chunks": len(m), "mb": round(m.nbytes / 2**20),
                                   "reused_vectors": m.reused}})  # fmt: skip
            if path is not None and not from_snapshot:
                await self._save(path, m, key, before)
            elif path is not None and m.rescores and m.precision != "float32":
                await self._write_exact_file(path, m, key, before)

    def _snapshot_key(self, generation: tuple[int, str]) -> dict[str, Any]:
        """What a snapshot must have been made from to serve now. Asks Chroma (off the event
        loop): a collection that is gone fails the load as a build would, and the count
        changes with any vector written or lost without SQLite knowing."""
        count = self.vectors.count()
        return {"generation": list(generation), "vectors": self.vectors.identity(),
                "vector_count": count, "precision": self.settings.dense_matrix_precision}  # fmt: skip

    async def _build(self, stamp: object, vector_key: str) -> ChunkMatrix:
        facets = await self.store.chunk_facets()
        bodies = await self.store.fts_bodies()
        old = self.matrix if self.matrix is not None else self._previous
        reuse = old if old is not None and self._vector_key == vector_key else None
        exact_file = None
        if self.snapshot_path is not None:  # the float32 rows go beside the snapshot
            exact_file = self.settings.data_dir / EXACT_NAME
            await asyncio.to_thread(remove_leftovers, exact_file)
        # Read in batches through the store's client, which re-scoring uses again.
        m = await asyncio.to_thread(
            ChunkMatrix, facets, self.vectors.get_vectors, bodies, stamp,
            precision=self.settings.dense_matrix_precision, reuse=reuse, exact_file=exact_file,
        )  # fmt: skip
        self.builds += 1
        return m

    async def _save(
        self, path: Path, m: ChunkMatrix, key: dict[str, Any], before: tuple[int, str]
    ) -> None:
        """Save the copy just built, unless the corpus changed while it was read (then it
        may mix two corpora, and the reload that follows saves its own)."""
        if await self.store.corpus_generation() != before or self.vectors.outside_writer():
            m.drop_exact_file()
            return
        try:
            size = await asyncio.to_thread(save_snapshot, path, m, key)
        except (OSError, ValueError):
            m.drop_exact_file()
            log.warning("could not save the in-memory copy", exc_info=True,
                        extra={"kv": {"path": str(path)}})  # fmt: skip
            return
        if size:
            self.snapshot_writes += 1
            log.info("in-memory copy saved",
                     extra={"kv": {"path": str(path), "mb": round(size / 2**20)}})  # fmt: skip

    async def _write_exact_file(
        self, path: Path, m: ChunkMatrix, key: dict[str, Any], before: tuple[int, str]
    ) -> None:
        """Give a copy read from a snapshot without a usable float32 rows file (one saved by
        an older version, or whose file was lost) its file: the vectors read from Chroma once,
        while the copy already serves, then the snapshot saved again naming the file."""
        try:
            await asyncio.to_thread(m.write_exact_file, path.with_name(EXACT_NAME),
                                    self.vectors.get_vectors)  # fmt: skip
        except Exception:  # noqa: BLE001 - re-scoring keeps fetching from Chroma
            log.warning("could not write the float32 rows file of the in-memory copy",
                        exc_info=True)  # fmt: skip
            return
        if self.matrix is not m:
            m.drop_exact_file()
            return
        await self._save(path, m, key, before)

    def _loaded(self, generation: int) -> None:
        self._generation = generation
        self.failures = 0
        self.error = None
