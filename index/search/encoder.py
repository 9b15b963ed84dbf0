"""Question vectors, encoded in batches: the model call and the unfiltered Chroma query of
questions arriving together share one worker-thread hop."""

from __future__ import annotations

import asyncio

import numpy as np

from index.embed import Embedder
from index.storage.vectors import VectorStore

__all__ = ["Nearest", "QueryEncoder"]

Nearest = tuple[np.ndarray, list[tuple[str, float]]]


class QueryEncoder:
    """Encodes concurrent questions in one batch: 64 queries batch ~6x faster than one by one.

    Callers await :meth:`encode` (a vector) or :meth:`nearest` (a vector and its unfiltered
    neighbours); the first caller of a burst becomes the batch's runner after yielding once
    to the event loop, so questions arriving together share one model call and one Chroma
    query, in one worker-thread hop.
    """

    def __init__(
        self, embedder: Embedder, vectors: VectorStore | None = None, max_batch: int = 64
    ) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.max_batch = max_batch
        self._pending: list[tuple[str, int, asyncio.Future[Nearest]]] = []
        self._scheduled = False

    async def encode(self, text: str) -> np.ndarray:
        vec, _ = await self._submit(text, 0)
        return vec

    async def nearest(self, text: str, n: int) -> Nearest:
        """The question's vector and its ``n`` nearest chunks, unfiltered."""
        if self.vectors is None:
            raise RuntimeError("QueryEncoder.nearest needs a vector store")
        return await self._submit(text, n)

    def _submit(self, text: str, n: int) -> asyncio.Future[Nearest]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Nearest] = loop.create_future()
        self._pending.append((text, n, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.create_task(self._run())
        return fut

    def _work(self, texts: list[str], ns: list[int]) -> list[Nearest]:
        vecs = self.embedder.embed_queries(texts)
        found: list[list[tuple[str, float]]] = [[] for _ in texts]
        rows = [i for i, n in enumerate(ns) if n > 0]
        if rows and self.vectors is not None:
            res = self.vectors.query(vecs[rows], max(ns[i] for i in rows))
            for i, got in zip(rows, res, strict=True):
                found[i] = got[: ns[i]]
        return [(vecs[i], found[i]) for i in range(len(texts))]

    async def _run(self) -> None:
        await asyncio.sleep(0)
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                out = await asyncio.to_thread(
                    self._work, [t for t, _, _ in batch], [n for _, n, _ in batch]
                )
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, _, fut), got in zip(batch, out, strict=True):
                if not fut.done():
                    fut.set_result(got)
        self._scheduled = False
