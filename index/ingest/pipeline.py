"""The indexing run: load → clean → deduplicate → chunk → embed → store, incrementally.

Crash safety comes from ordering, not from a distributed transaction:
1. new vectors are upserted into Chroma under fresh chunk ids (content-addressed),
2. one SQLite transaction swaps the article's rows and queues its old chunk ids as stale,
3. stale vectors are deleted from Chroma and dequeued.
A kill between 1 and 2 leaves orphan vectors that queries ignore (they are not in SQLite)
and that the next run removes: a run that finds the previous one still marked ``running``
reconciles the two stores before doing anything else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from index.embed import Embedder
from index.ingest import dedup
from index.ingest.cleaning import clean_article
from index.ingest.loaders import Target, iter_articles
from index.ingest.outlet_boilerplate import strip_outlet_boilerplate
from index.ingest.pending import Pending, raw_hash, source_origin
from index.ingest.report import IndexReport, Progress, ProgressFn
from index.ingest.stream import Batch, Batcher, article_write, encode_and_write
from index.ingest.vector_collection import open_vectors_checked
from index.models import LoadError
from index.settings import Settings
from index.storage.store import ArticleWrite, Store, StoredState
from index.storage.vectors import VectorStore

log = logging.getLogger(__name__)

CHUNKING_VERSION = "title-prefix-1"


class Indexer:
    """One indexing run over a set of paths; dependencies are passed in, not looked up."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        embedder: Embedder,
        vectors: VectorStore | None = None,
        progress: ProgressFn | None = None,
        *,
        stream: bool = True,
    ) -> None:
        """``stream=False`` chunks every article before the first encode (index/ingest/stream.py:
        the same index, for comparisons)."""
        self.stream = stream
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self._vectors = vectors
        self._opening: asyncio.Future[tuple[VectorStore, str | None]] | None = None
        # Set when opening the collection found another model's vectors and so queued every
        # article for re-embedding.
        self._open_notice: str | None = None
        self.progress = progress or (lambda p: None)

    # -- setup ------------------------------------------------------------------------------

    async def vectors(self) -> VectorStore:
        """The collection, opened on first use; :meth:`run` starts opening it beside the
        loading (an embedded Chroma takes ~0.1 s to open)."""
        if self._vectors is None:
            if self._opening is None:
                self._opening = asyncio.ensure_future(
                    open_vectors_checked(self.settings, self.store, self.embedder)
                )
            vectors, notice = await self._opening
            if self._vectors is None:
                self._vectors, self._open_notice = vectors, notice
        return self._vectors

    def chunk_budget(self) -> int:
        limit = self.embedder.max_tokens
        if self.settings.chunk_max_tokens > 0:
            limit = min(limit, self.settings.chunk_max_tokens)
        return limit

    async def _check_chunking(self, report: IndexReport) -> None:
        signature = f"{CHUNKING_VERSION}|{self.chunk_budget()}|{self.settings.chunk_overlap_sentences}"
        stored = await self.store.get_meta("chunking")
        if stored is not None and stored != signature:
            report.notices.append(
                f"chunking changed ({stored} → {signature}): every article is re-chunked"
            )
            vectors = await self.vectors()  # first: opening it may mark everything too
            await self.store.mark_all_for_reembed()
            await asyncio.to_thread(vectors.delete, list(await asyncio.to_thread(vectors.all_ids)))
        await self.store.set_meta("chunking", signature)

    # -- the run ----------------------------------------------------------------------------

    async def run(self, paths: Sequence[Target], *, prune: bool = False) -> IndexReport:
        report = IndexReport()
        t0 = time.perf_counter()
        run_id, interrupted = await self.store.begin_run()
        status = "failed"
        try:
            if self._vectors is None:
                self._opening = asyncio.ensure_future(
                    open_vectors_checked(self.settings, self.store, self.embedder)
                )
            await self._check_chunking(report)
            if interrupted:
                report.reconciled = await self.reconcile()
                if report.reconciled:
                    report.notices.append(
                        f"previous run was interrupted: repaired {report.reconciled} vectors"
                    )
            await self._flush_stale()
            await self._run(paths, prune, report, run_id, t0)
            if await self._count_mismatch():
                report.reconciled += await self.reconcile()
                # Articles whose vectors went missing are re-embedded right away.
                await self._run(paths, False, IndexReport(), run_id, t0)
            status = "done"
        finally:
            if self._opening is not None and not self._opening.done():
                self._opening.cancel()
                await asyncio.gather(self._opening, return_exceptions=True)
            if self._open_notice:
                report.notices.insert(0, self._open_notice)
                self._open_notice = None
            report.seconds = time.perf_counter() - t0
            await self.store.finish_run(run_id, report.as_dict(), status=status)
        self.progress(Progress("done", elapsed=report.seconds))
        return report

    async def _run(
        self,
        paths: Sequence[Target],
        prune: bool,
        report: IndexReport,
        run_id: int,
        t0: float,
    ) -> None:
        self.progress(Progress("loading", elapsed=time.perf_counter() - t0))
        opened = self._vectors is not None
        states = await self.store.article_states()
        loaded, errors = await asyncio.to_thread(self._load, paths, states)
        await self.vectors()
        if not opened and self._open_notice:
            # Opening the collection queued every article for re-embedding meanwhile.
            states = await self.store.article_states()
            loaded, errors = await asyncio.to_thread(self._load, paths, states)
        outlets = await strip_outlet_boilerplate(self.store, loaded)
        loaded, errors = outlets.kept, [*errors, *outlets.failed]
        report.notices.extend(outlets.notices)
        report.failed.extend(errors)
        for err in errors:
            log.warning("skipped %s: %s", err.origin, err.reason)

        seen: set[str] = set()
        pending: list[Pending] = []
        for item in loaded:
            if item.article.id in seen:
                report.failed.append(
                    LoadError(item.article.origin, f"duplicate id {item.article.id!r} in input")
                )
                continue
            seen.add(item.article.id)
            if item.state and item.state.content_hash == item.content_hash:
                report.unchanged += 1
                continue
            pending.append(item)
        # Indexed articles that carried a newly learned boilerplate line: re-chunked only them.
        pending += [Pending(a, rh, ch, states.get(a.id)) for a, rh, ch in outlets.reapplied]

        await dedup.mark_exact_duplicates(self.store, pending, report)
        to_embed = [p for p in pending if p.dup_kind != "exact"]
        exact = [p for p in pending if p.dup_kind == "exact"]

        async def before_first_write() -> None:
            # Near duplicates are judged against the store as it was before this run, while
            # the first batches are chunked and encoded; exact ones are written with them.
            await dedup.mark_near_duplicates(self.store, to_embed, report)
            if exact:
                await self.store.write_articles([article_write(p, [], []) for p in exact], run_id)

        await self._embed_and_write(to_embed, before_first_write, report, run_id, t0)
        for p in pending:
            if p.state:
                report.updated += 1
            else:
                report.added += 1

        if prune:
            failed_sources = {source_origin(e.origin) for e in errors}
            stored_origins = await self.store.article_origins()
            gone = [
                aid for aid in states
                if aid not in seen and source_origin(stored_origins.get(aid, "")) not in failed_sources
            ]
            if gone:
                self.progress(Progress("pruning", elapsed=time.perf_counter() - t0))
                await self.store.remove_articles(gone)
                await self._flush_stale()
                report.removed += len(gone)

    # -- stages -----------------------------------------------------------------------------

    def _load(
        self, paths: Sequence[Target], states: dict[str, StoredState]
    ) -> tuple[list[Pending], list[LoadError]]:
        max_bytes = int(self.settings.max_file_mb * 1_000_000)
        out: list[Pending] = []
        errors: list[LoadError] = []
        for item in iter_articles(paths, max_file_bytes=max_bytes):
            if isinstance(item, LoadError):
                errors.append(item)
                continue
            rh = raw_hash(item)
            state = states.get(item.id)
            if state and state.raw_hash == rh and state.content_hash:
                out.append(Pending(item, rh, state.content_hash, state))
                continue
            cleaned = clean_article(item)
            if isinstance(cleaned, LoadError):
                errors.append(cleaned)
                continue
            ch = dedup.content_hash(cleaned.title, cleaned.text)
            out.append(Pending(cleaned, rh, ch, state))
        return out, errors

    async def _embed_and_write(
        self,
        pending: list[Pending],
        before_first_write: Callable[[], Awaitable[None]],
        report: IndexReport,
        run_id: int,
        t0: float,
    ) -> None:
        batcher = Batcher(
            pending, self.embedder, budget=self.chunk_budget(),
            overlap=self.settings.chunk_overlap_sentences,
            target=max(64, self.settings.embed_batch_size * 4),
        )
        done_articles = 0

        def on_written(batch: Batch) -> None:
            nonlocal done_articles
            done_articles += len(batch.items)
            report.chunks_embedded += len(batch.ids)
            self.progress(
                Progress(
                    "embedding", done_articles, len(pending), report.chunks_embedded,
                    batcher.estimated_passages(), time.perf_counter() - t0,
                )
            )

        if pending:
            self.progress(Progress("embedding", 0, len(pending), 0, 0, time.perf_counter() - t0))
        async def write(batch: Batch, vecs: np.ndarray, writes: list[ArticleWrite]) -> None:
            if batch.ids:
                vectors = await self.vectors()
                await asyncio.to_thread(vectors.upsert, batch.ids, vecs, batch.metas)
            await self.store.write_articles(writes, run_id)
            await self._flush_stale()

        await encode_and_write(
            batcher, self.embedder, write,
            before_first_write=before_first_write, on_written=on_written, stream=self.stream,
        )

    async def remove(self, article_ids: Sequence[str]) -> int:
        """Remove these articles (rows, passages, vectors); how many were stored."""
        states = await self.store.article_states()
        ids = [i for i in dict.fromkeys(article_ids) if i in states]
        if ids:
            await self.store.remove_articles(ids)
            await self._flush_stale()
        return len(ids)

    async def _flush_stale(self) -> None:
        stale = await self.store.stale_vector_ids()
        if stale:
            vectors = await self.vectors()
            await asyncio.to_thread(vectors.delete, stale)
            await self.store.clear_stale(stale)

    async def _count_mismatch(self) -> bool:
        vectors = await self.vectors()
        n_vec, n_sql = await asyncio.gather(
            asyncio.to_thread(vectors.count), self.store.chunk_count()
        )
        if n_vec != n_sql:
            log.warning("chroma holds %d vectors but sqlite %d chunks: reconciling", n_vec, n_sql)
        return n_vec != n_sql

    async def reconcile(self) -> int:
        """Make Chroma mirror SQLite: drop orphan vectors, re-embed chunks whose vector is lost."""
        vectors = await self.vectors()
        in_chroma = await asyncio.to_thread(vectors.all_ids)
        in_sql = await self.store.chunk_ids_with_articles()
        orphans = [i for i in in_chroma if i not in in_sql]
        missing_articles = {aid for cid, aid in in_sql.items() if cid not in in_chroma}
        if orphans:
            await asyncio.to_thread(vectors.delete, orphans)
        if missing_articles:
            await self.store.mark_for_reembed(missing_articles)
        await self.store.clear_stale(await self.store.stale_vector_ids())
        return len(orphans) + len(missing_articles)
