"""The run's changed articles through the model in overlapping batches: prepare, encode, write.

A batch is prepared (its articles chunked at sentence boundaries, tokens counted, keyword
bodies stemmed: Python work), encoded by the model, then written (Chroma upsert, then one
SQLite transaction; see pipeline.py for why that order is crash-safe). While batch i is
encoded, batch i+1 is chunked and batch i-1 written, so with a model several times slower
than the preparation only the first batch's chunking and the last batch's write are left
outside the encode. Both are kept short: the first batch and the last ones are smaller than
the rest (``SMALL_BATCH`` passages), so the model starts at once and little is left to write
after its last batch.

Batches are written in article order whatever their sizes, so what is stored — rows, chunk
ids, keyword-index rowids — does not depend on how the articles were cut into batches, nor
on whether the batches were prepared ahead (``stream=True``) or all before the first encode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from index.embed import Embedder
from index.ingest.chunking import chunk_text
from index.ingest.pending import Pending, chunk_id, passage_text
from index.storage.keywords import analyze
from index.storage.store import ArticleWrite

TITLE_TOKEN_CAP = 48
SMALL_BATCH = 16


@dataclass(slots=True)
class Batch:
    """Consecutive articles of the run, chunked, with what the model reads and the ids."""

    items: list[Pending]
    texts: list[str]
    ids: list[str]
    metas: list[dict[str, Any]]


def stemmed_bodies(batch: Batch) -> list[list[str]]:
    """Each article's keyword-index bodies (Snowball stems of headline + passage)."""
    return [
        [analyze(f"{p.article.title}\n{c.text}", p.article.lang) for c in p.chunks]
        for p in batch.items
    ]


def article_write(p: Pending, chunk_ids: list[str], bodies: list[str]) -> ArticleWrite:
    """The stored form of a pending article, once its duplicate checks are done."""
    embedded = p.dup_kind != "exact"
    return ArticleWrite(
        article=p.article,
        content_hash=p.content_hash,
        raw_hash=p.raw_hash,
        chunks=p.chunks if embedded else [],
        chunk_ids=chunk_ids,
        fts_bodies=bodies if embedded else [],
        band_keys=p.band_keys,
        signature=p.signature.tobytes() if p.signature is not None else None,
        canonical_id=p.canonical_id,
        dup_kind=p.dup_kind,
        similarity=p.similarity,
    )


def batch_writes(batch: Batch, bodies: list[list[str]]) -> list[ArticleWrite]:
    writes: list[ArticleWrite] = []
    n = 0
    for p, own in zip(batch.items, bodies, strict=True):
        writes.append(article_write(p, batch.ids[n : n + len(p.chunks)], own))
        n += len(p.chunks)
    return writes


class Batcher:
    """Chunks the run's articles in order and cuts them into batches of about ``target``
    passages; the first batch and the tail are cut smaller (module docstring). One call at
    a time, on a worker thread."""

    def __init__(
        self,
        pending: Sequence[Pending],
        embedder: Embedder,
        *,
        budget: int,
        overlap: int,
        target: int,
        small: int = SMALL_BATCH,
    ) -> None:
        self._pending = pending
        self._embedder = embedder
        self._budget = budget
        self._overlap = overlap
        self._target = max(1, target)
        self._small = max(1, min(small, self._target))
        self._next = 0
        self._chars_left = sum(_size(p) for p in pending)
        self._chars_done = 0
        self._passages = 0

    @property
    def done(self) -> bool:
        return self._next >= len(self._pending)

    def estimated_passages(self) -> int:
        """Passages of the whole run: exact once every article is chunked, else extrapolated
        from the text chunked so far."""
        if self._chars_done == 0:
            return 0
        return self._passages + round(self._passages * self._chars_left / self._chars_done)

    def next_batch(self) -> Batch | None:
        if self.done:
            return None
        target = self._batch_target()
        items: list[Pending] = []
        n = 0
        while not self.done and (n < target or not items):
            p = self._pending[self._next]
            self._next += 1
            self._chunk(p)
            items.append(p)
            n += len(p.chunks)
            self._chars_done += _size(p)
            self._chars_left -= _size(p)
            self._passages += len(p.chunks)
        return _batch(items)

    def _batch_target(self) -> int:
        if self._chars_done == 0:
            return self._small
        left = self._passages * self._chars_left / self._chars_done
        return int(min(self._target, max(self._small, left / 2)))

    def _chunk(self, p: Pending) -> None:
        title = p.article.title
        tt = self._embedder.count_tokens([title])[0] if title else 0
        # Room for the headline (+1 for the newline) unless it would crowd out the text.
        p.title_in_passage = bool(title) and tt <= TITLE_TOKEN_CAP
        limit = self._budget - (tt + 1 if p.title_in_passage else 0)
        p.chunks = chunk_text(
            p.article.id, p.article.text, self._embedder, max_tokens=limit,
            overlap_sentences=self._overlap,
        )


def _size(p: Pending) -> int:
    return len(p.article.text) + 1


def _batch(items: list[Pending]) -> Batch:
    texts: list[str] = []
    ids: list[str] = []
    metas: list[dict[str, Any]] = []
    for p in items:
        a = p.article
        meta = {
            "article_id": a.id,
            "ts": int(a.published.timestamp()) if a.published else 0,
            "source": (a.source or "").lower(),
            "lang": a.lang or "",
        }
        title = a.title if p.title_in_passage else ""
        for c in p.chunks:
            texts.append(passage_text(title, c.text))
            ids.append(chunk_id(a.id, p.content_hash, c.ord))
            metas.append(meta)
    return Batch(items, texts, ids, metas)


WriteBatch = Callable[[Batch, np.ndarray, list[ArticleWrite]], Awaitable[None]]


async def encode_and_write(
    batcher: Batcher,
    embedder: Embedder,
    write: WriteBatch,
    *,
    before_first_write: Callable[[], Awaitable[None]],
    on_written: Callable[[Batch], None],
    stream: bool = True,
) -> None:
    """Encode every batch of ``batcher`` and ``write`` them in order, each stage overlapping
    the next batch's encode; ``before_first_write`` is awaited before anything is written
    (the run's duplicate checks read the store as it was before the run), even when there
    is nothing to encode. ``stream=False`` prepares every batch before the first encode."""
    tasks: list[asyncio.Future[Any]] = []
    writing: asyncio.Future[Any] | None = None

    def start(coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        tasks.append(task)
        return task

    try:
        ready: list[Batch] = []
        if not stream:
            while (b := await asyncio.to_thread(batcher.next_batch)) is not None:
                ready.append(b)

        async def prepare() -> Batch | None:
            return ready.pop(0) if ready else await asyncio.to_thread(batcher.next_batch)

        settled = start(before_first_write())
        batch = await prepare()
        while batch is not None:
            encoding = start(asyncio.to_thread(embedder.embed_passages, batch.texts))
            stemming = start(asyncio.to_thread(stemmed_bodies, batch))
            following = start(prepare())
            if writing is not None:
                await writing  # the previous batch, written while this one is encoded
            vecs = await encoding
            bodies = await stemming
            await settled
            writes = batch_writes(batch, bodies)
            writing = asyncio.ensure_future(_write_then_report(write, batch, vecs, writes, on_written))
            batch = await following
        await settled
        if writing is not None:
            await writing
    finally:
        # What is still being prepared or encoded is dropped; a write under way is let finish
        # (stopping it half-way would be safe too, but would only leave work for the next run).
        others = [t for t in tasks if not t.done()]
        for t in others:
            t.cancel()
        await asyncio.gather(*others, *([writing] if writing else []), return_exceptions=True)


async def _write_then_report(
    write: WriteBatch,
    batch: Batch,
    vecs: np.ndarray,
    writes: list[ArticleWrite],
    on_written: Callable[[Batch], None],
) -> None:
    await write(batch, vecs, writes)
    on_written(batch)
