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
from collections.abc import Sequence
from typing import Any

import numpy as np

from index.embed import Embedder
from index.ingest import dedup
from index.ingest.chunking import chunk_text
from index.ingest.cleaning import clean_article
from index.ingest.loaders import Target, iter_articles
from index.ingest.outlet_boilerplate import strip_outlet_boilerplate
from index.ingest.pending import Pending, chunk_id, passage_text, raw_hash, source_origin
from index.ingest.report import IndexReport, Progress, ProgressFn
from index.ingest.vector_collection import open_vectors, open_vectors_checked
from index.models import LoadError
from index.settings import Settings
from index.storage.keywords import analyze
from index.storage.store import ArticleWrite, Store, StoredState
from index.storage.vectors import VectorStore

log = logging.getLogger(__name__)

TITLE_TOKEN_CAP = 48
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
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self._vectors = vectors
        self.progress = progress or (lambda p: None)

    # -- setup ------------------------------------------------------------------------------

    async def vectors(self) -> VectorStore:
        if self._vectors is None:
            self._vectors = await open_vectors(self.settings, self.store, self.embedder)
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
            await self.store.mark_all_for_reembed()
            vectors = await self.vectors()
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
                self._vectors, notice = await open_vectors_checked(
                    self.settings, self.store, self.embedder
                )
                if notice:
                    report.notices.append(notice)
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

        await dedup.find_duplicates(self.store, pending, report)
        to_embed = [p for p in pending if p.dup_kind != "exact"]
        exact = [p for p in pending if p.dup_kind == "exact"]
        if exact:
            await self.store.write_articles([self._write(p, []) for p in exact], run_id)
        for p in exact:
            if p.state:
                report.updated += 1
            else:
                report.added += 1

        await asyncio.to_thread(self._chunk_all, to_embed)
        await self._embed_and_write(to_embed, report, run_id, t0)
        for p in to_embed:
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

    def _chunk_all(self, pending: list[Pending]) -> None:
        budget = self.chunk_budget()
        overlap = self.settings.chunk_overlap_sentences
        titles = [p.article.title for p in pending]
        title_tokens = self.embedder.count_tokens(titles) if titles else []
        for p, tt in zip(pending, title_tokens, strict=True):
            # Room for the headline (+1 for the newline) unless it would crowd out the text.
            p.title_in_passage = bool(p.article.title) and tt <= TITLE_TOKEN_CAP
            limit = budget - (tt + 1 if p.title_in_passage else 0)
            p.chunks = chunk_text(
                p.article.id, p.article.text, self.embedder, max_tokens=limit,
                overlap_sentences=overlap,
            )

    def _write(self, p: Pending, vectors_ids: list[str]) -> ArticleWrite:
        lang = p.article.lang
        return ArticleWrite(
            article=p.article,
            content_hash=p.content_hash,
            raw_hash=p.raw_hash,
            chunks=p.chunks if p.dup_kind != "exact" else [],
            chunk_ids=vectors_ids,
            fts_bodies=[analyze(f"{p.article.title}\n{c.text}", lang) for c in p.chunks]
            if p.dup_kind != "exact" else [],
            band_keys=p.band_keys,
            signature=p.signature.tobytes() if p.signature is not None else None,
            canonical_id=p.canonical_id,
            dup_kind=p.dup_kind,
            similarity=p.similarity,
        )

    def _batches(self, pending: list[Pending]) -> list[list[Pending]]:
        target = max(64, self.settings.embed_batch_size * 4)
        batches: list[list[Pending]] = []
        cur: list[Pending] = []
        n = 0
        for p in pending:
            cur.append(p)
            n += len(p.chunks)
            if n >= target:
                batches.append(cur)
                cur, n = [], 0
        if cur:
            batches.append(cur)
        return batches

    async def _embed_and_write(
        self, pending: list[Pending], report: IndexReport, run_id: int, t0: float
    ) -> None:
        if not pending:
            return
        vectors = await self.vectors()
        batches = self._batches(pending)
        total_chunks = sum(len(p.chunks) for p in pending)
        done_articles = 0
        done_chunks = 0

        def texts_of(batch: list[Pending]) -> list[str]:
            return [
                passage_text(p.article.title if p.title_in_passage else "", c.text)
                for p in batch
                for c in p.chunks
            ]

        self.progress(
            Progress("embedding", 0, len(pending), 0, total_chunks, time.perf_counter() - t0)
        )
        # Encoding batch i+1 overlaps with writing batch i: the writes then cost ~nothing.
        next_task: asyncio.Task[np.ndarray] | None = asyncio.create_task(
            asyncio.to_thread(self.embedder.embed_passages, texts_of(batches[0]))
        )
        for i, batch in enumerate(batches):
            assert next_task is not None
            vecs = await next_task
            next_task = (
                asyncio.create_task(
                    asyncio.to_thread(self.embedder.embed_passages, texts_of(batches[i + 1]))
                )
                if i + 1 < len(batches)
                else None
            )
            try:
                await self._write_batch(batch, vecs, vectors, run_id)
            except BaseException:
                if next_task is not None:
                    next_task.cancel()
                raise
            done_articles += len(batch)
            done_chunks += len(vecs)
            report.chunks_embedded += len(vecs)
            self.progress(
                Progress(
                    "embedding", done_articles, len(pending), done_chunks, total_chunks,
                    time.perf_counter() - t0,
                )
            )

    async def _write_batch(
        self, batch: list[Pending], vecs: np.ndarray, vectors: VectorStore, run_id: int
    ) -> None:
        ids: list[str] = []
        metas: list[dict[str, Any]] = []
        writes: list[ArticleWrite] = []
        for p in batch:
            a = p.article
            cids = [chunk_id(a.id, p.content_hash, c.ord) for c in p.chunks]
            ids.extend(cids)
            meta = {
                "article_id": a.id,
                "ts": int(a.published.timestamp()) if a.published else 0,
                "source": (a.source or "").lower(),
                "lang": a.lang or "",
            }
            metas.extend(meta for _ in cids)
            writes.append(self._write(p, cids))
        if ids:
            await asyncio.to_thread(vectors.upsert, ids, vecs, metas)
        await self.store.write_articles(writes, run_id)
        await self._flush_stale()

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
        n_vec = await asyncio.to_thread(vectors.count)
        n_sql = (await self.store.counts())["chunks"]
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
