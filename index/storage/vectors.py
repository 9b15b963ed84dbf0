"""Chunk vectors in Chroma: embedded ``PersistentClient`` by default, ``HttpClient`` at scale.

We always pass vectors ourselves: Chroma's default embedding function downloads a model,
which fails offline. Calls are blocking; async callers run them in a thread.

Every call goes through one seam (:meth:`VectorStore._call`) because the client can go
stale under a long-running process: another process writing to the embedded store leaves
this process's copy of the index behind (index/storage/write_lock.py), and a server can restart.
So before a call the write stamp is compared, and the client is reopened once a write by
another process has ended; a failing call reopens the client and is tried once more, and
then raises :class:`VectorsUnavailable`, which the answer path turns into keyword-only
answers instead of errors.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from index.settings import Settings
from index.storage.chroma_client import server_client, server_description
from index.storage.write_lock import WriteLock, WriteStamp

log = logging.getLogger(__name__)

MAX_BATCH = 5000  # Chroma refuses adds above 5461 records
REOPEN_AFTER_ERROR_S = 2.0  # a client reopened this recently is not reopened again on error
RETIRE_AFTER_S = 30.0  # a replaced client is stopped once calls begun on it have surely ended

T = TypeVar("T")


class EmbeddingMismatch(RuntimeError):
    """The collection holds vectors of another model; mixing them would be meaningless."""


class VectorsUnavailable(RuntimeError):
    """Chroma failed, was reopened, and failed again: callers fall back to keywords."""


def _chroma_settings(**extra: Any) -> Any:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, **extra)


def _connect(settings: Settings, *, fresh: bool) -> Any:
    """A client; with ``fresh`` an embedded one gets its own new in-process state, not the
    copy chromadb caches per path (which is what goes stale)."""
    import chromadb

    if settings.chroma_host:
        return server_client(settings, _chroma_settings(allow_reset=False))
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    if fresh:
        _forget_cached_system(str(settings.chroma_path))
    return chromadb.PersistentClient(
        path=str(settings.chroma_path), settings=_chroma_settings(allow_reset=False)
    )


def forget_cached_client(settings: Settings) -> None:
    """Make the next embedded client of this process read the store afresh (a write run
    about to start must not write through a copy another process has made stale)."""
    if not settings.chroma_host:
        _forget_cached_system(str(settings.chroma_path))


def _forget_cached_system(identifier: str) -> None:
    # chromadb shares one System per persist directory in a process and offers no public
    # way to get a new one while another client holds it; the old System keeps serving the
    # clients that hold it until they are retired.
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient._identifier_to_system.pop(identifier, None)  # noqa: SLF001
    SharedSystemClient._identifier_to_refcount.pop(identifier, None)  # noqa: SLF001


def client_settings() -> Any:
    """The Chroma settings every client of newsbot uses (no telemetry, no reset)."""
    return _chroma_settings(allow_reset=False)


def embedded_client(path: Path) -> Any:
    """A client of its own on the persist directory ``path``, not the per-path one chromadb
    caches (a backup's copy, checked or read while the store's own clients stay open)."""
    import chromadb

    _forget_cached_system(str(path))
    return chromadb.PersistentClient(path=str(path), settings=client_settings())


def close_client(client: Any) -> None:
    """Stop an :func:`embedded_client` (its files are released) and forget it."""
    system = system_of(client)
    ident = getattr(client, "_identifier", None)
    if system is not None:
        system.stop()
    if ident:
        _forget_cached_system(ident)


def system_of(client: Any) -> Any:
    """The chromadb System behind a client (what its calls run on; stopped, they all fail)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    ident = getattr(client, "_identifier", None)
    return SharedSystemClient._identifier_to_system.get(ident) if ident else None  # noqa: SLF001


def _stop_later(system: Any) -> None:
    def stop() -> None:
        try:
            system.stop()
        except Exception:  # noqa: BLE001 - a retired client; nothing depends on it any more
            log.debug("stopping a retired chroma client failed", exc_info=True)

    timer = threading.Timer(RETIRE_AFTER_S, stop)
    timer.daemon = True
    timer.start()


class VectorStore:
    def __init__(
        self,
        collection: Any,
        client: Any,
        description: str,
        *,
        settings: Settings | None = None,
        lock: WriteLock | None = None,
    ) -> None:
        self.collection = collection
        self.client = client
        self.description = description
        self.settings = settings  # None: a fixed collection that cannot be reopened
        self.lock = lock  # embedded stores only: whose writes make this client stale
        self.generation = 0  # +1 at every reopen: in-memory copies of the vectors compare it
        self.reopens = 0
        self.last_error: str | None = None
        self._seen: WriteStamp | None = lock.stamp() if lock else None
        self._mutex = threading.Lock()
        self._opened_at = time.monotonic()  # last reopen, or attempt at one

    @classmethod
    def open(cls, settings: Settings, model_id: str, dim: int) -> VectorStore:
        client = _connect(settings, fresh=False)
        collection = client.get_or_create_collection(
            name=settings.chroma_collection,
            embedding_function=None,
            metadata={"hnsw:space": "cosine", "model_id": model_id, "dim": dim},
        )
        meta = collection.metadata or {}
        if meta.get("model_id") != model_id or int(meta.get("dim", dim)) != dim:
            raise EmbeddingMismatch(
                f"collection {settings.chroma_collection!r} holds vectors of "
                f"{meta.get('model_id')} ({meta.get('dim')} dims), not {model_id} ({dim} dims)"
            )
        if settings.chroma_host:
            description = server_description(settings)
            lock = None
        else:
            description = f"embedded chroma at {settings.chroma_path}"
            lock = WriteLock(settings.data_dir)
        return cls(collection, client, description, settings=settings, lock=lock)

    @classmethod
    def recreate(cls, settings: Settings, model_id: str, dim: int) -> VectorStore:
        """Drop the collection (after a model change) and start an empty one."""
        client = _connect(settings, fresh=False)
        try:
            client.delete_collection(settings.chroma_collection)
        except Exception:  # noqa: BLE001 - an absent collection is fine
            log.debug("no collection %s to delete", settings.chroma_collection)
        return cls.open(settings, model_id, dim)

    # -- staying current --------------------------------------------------------------------

    def reopen(self, reason: str = "") -> None:
        """A new client with its own fresh state, swapped in for every holder of this
        object; the old one is stopped a little later, when calls begun on it are over."""
        if self.settings is None:
            return
        with self._mutex:
            self._opened_at = time.monotonic()
            old = system_of(self.client)
            client = _connect(self.settings, fresh=True)
            collection = client.get_collection(self.settings.chroma_collection)
            self.client, self.collection = client, collection
            self.generation += 1
            self.reopens += 1
            self._opened_at = time.monotonic()
            if self.lock is not None:
                self._seen = self.lock.stamp()
        if old is not None and old is not system_of(client):
            _stop_later(old)
        log.info("chroma client reopened", extra={"kv": {"reason": reason or "asked",
                                                           "store": self.description}})

    def outside_writer(self) -> int | None:
        """The pid of another process writing to this embedded store now, else None."""
        if self.lock is None:
            return None
        pid = self.lock.writer()
        return None if pid is None or pid == os.getpid() else pid

    def follow_writes(self) -> None:
        """Reopen the client if another process has finished writing since it was opened.

        Writes by this process go through this same object (which the run reopens as it
        takes the lock), so they never make it stale.
        While another process is still writing, the old client serves (a reopen now would
        read a half-written index, and again after every batch).
        """
        if self.lock is None:
            return
        stamp = self.lock.stamp()
        if stamp == self._seen:
            return
        if stamp is not None and stamp.pid == os.getpid():
            self._seen = stamp  # our own write run (which reopened this client as it began)
            return
        if self.outside_writer() is not None:
            return
        self.reopen("another process wrote to the store")

    def _call(self, fn: Callable[[Any], T]) -> T:
        self.follow_writes()
        collection = self.collection
        try:
            return fn(collection)
        except Exception as exc:  # noqa: BLE001 - chromadb raises many kinds; see the module doc
            first = exc
        self.last_error = f"{type(first).__name__}: {first}"[:300]
        if collection is self.collection:  # else reopened meanwhile: just try the new one
            recent = time.monotonic() - self._opened_at < REOPEN_AFTER_ERROR_S
            if self.settings is None or recent:
                raise VectorsUnavailable(self.last_error) from first
            log.warning("chroma call failed; reopening the client and trying once more",
                        extra={"kv": {"error": self.last_error}})
            try:
                self.reopen(f"error: {type(first).__name__}")
            except Exception as exc:  # noqa: BLE001
                raise VectorsUnavailable(f"{self.last_error}; reopening failed: {exc}") from exc
        try:
            return fn(self.collection)
        except Exception as exc:  # noqa: BLE001
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            raise VectorsUnavailable(self.last_error) from exc

    def _do(self, method: str, **kwargs: Any) -> Any:
        return self._call(lambda c: getattr(c, method)(**kwargs))

    # -- calls ------------------------------------------------------------------------------

    def identity(self) -> str:
        """Which vectors these are: the collection (a new one after a model change) and its
        model. A chunk id keeps its vector within one identity (ids are content-addressed)."""
        collection = self.collection
        meta = collection.metadata or {}
        return f"{collection.id}|{meta.get('model_id')}|{meta.get('dim')}"

    def count(self) -> int:
        return int(self._call(lambda c: c.count()))

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadatas: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        for i in range(0, len(ids), MAX_BATCH):
            self._do(
                "upsert",
                ids=list(ids[i : i + MAX_BATCH]),
                embeddings=vectors[i : i + MAX_BATCH],
                metadatas=list(metadatas[i : i + MAX_BATCH]) if metadatas else None,
            )

    def delete(self, ids: Sequence[str]) -> None:
        for i in range(0, len(ids), MAX_BATCH):
            self._do("delete", ids=list(ids[i : i + MAX_BATCH]))

    def all_ids(self) -> set[str]:
        out: set[str] = set()
        offset = 0
        page = 20000
        while True:
            got = self._do("get", include=[], limit=page, offset=offset)
            ids = got["ids"]
            out.update(ids)
            if len(ids) < page:
                return out
            offset += page

    def query(
        self, vectors: np.ndarray, n: int, ids: Sequence[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        """Nearest chunks per query vector as (chunk id, cosine similarity).

        No ``count()`` first: it costs twice the query itself at 100k chunks, and Chroma
        already returns fewer results (or none) when the collection holds fewer than ``n``.
        """
        kwargs: dict[str, Any] = {}
        if ids is not None:
            if not ids:
                return [[] for _ in range(len(vectors))]
            kwargs["ids"] = list(ids)
            n = min(n, len(ids))
        if n <= 0:
            return [[] for _ in range(len(vectors))]
        res = self._do(
            "query", query_embeddings=vectors, n_results=n, include=["distances"], **kwargs
        )
        out = []
        for id_list, dist_list in zip(res["ids"], res["distances"] or [], strict=False):
            out.append([(i, 1.0 - float(d)) for i, d in zip(id_list, dist_list, strict=True)])
        return out

    def get_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(ids), MAX_BATCH):
            got = self._do("get", ids=list(ids[i : i + MAX_BATCH]), include=["embeddings"])
            for cid, vec in zip(got["ids"], got["embeddings"], strict=True):
                out[cid] = np.asarray(vec, dtype=np.float32)
        return out
