"""Opening and closing the indexer's services in one place, for the CLI, the bot and tests;
the one place a :class:`~index.search.retrieval.Retriever` is assembled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from index.embed import Embedder, make_embedder
from index.ingest.loaders import Target
from index.ingest.pipeline import Indexer
from index.ingest.report import IndexReport, ProgressFn
from index.ingest.vector_collection import open_vectors
from index.sample import paths as sample_paths
from index.search.fusion import FusionParams
from index.search.retrieval import Retriever
from index.settings import Settings
from index.storage.store import Store
from index.storage.vectors import VectorStore, forget_cached_client
from index.storage.write_lock import WriteLock

log = logging.getLogger(__name__)


NO_SAMPLE = "no-sample"  # meta "corpus" once the sample was dropped: never re-added by itself


def sample_article_ids() -> list[str]:
    """The ids the built-in sample's articles get (the loader assigns them)."""
    from index.ingest.loaders import iter_articles
    from index.models import Article

    return [a.id for a in iter_articles(sample_paths()) if isinstance(a, Article)]


def build_retriever(
    settings: Settings,
    store: Store,
    embedder: Embedder,
    vectors: VectorStore,
    *,
    tz: ZoneInfo | None = None,
    params: FusionParams | None = None,
) -> Retriever:
    """A retriever over an open store and vector store: ``tz`` defaults to the settings'
    zone (what "oggi" means), ``params`` to the embedding model's tuned fusion."""
    return Retriever(settings, store, embedder, vectors, params=params, tz=tz)


class NothingToIndex(ValueError):
    """No paths were given, no sources are configured and the store is not the sample's."""


@dataclass
class Services:
    settings: Settings
    store: Store
    embedder: Embedder
    _vectors: VectorStore | None = None
    _retriever: Retriever | None = field(default=None, repr=False)

    async def vectors(self) -> VectorStore:
        if self._vectors is None:
            self._vectors = await open_vectors(self.settings, self.store, self.embedder)
        return self._vectors

    async def retriever(self) -> Retriever:
        """This process's retriever over the store, built on first use (one-shot commands:
        ``newsbot ask``, ``eval``, ``digest``)."""
        if self._retriever is None:
            vectors = await self.vectors()
            self._retriever = build_retriever(self.settings, self.store, self.embedder, vectors)
        return self._retriever

    async def close(self) -> None:
        if self._retriever is not None:
            await self._retriever.aclose()
        await self.store.close()

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Hold the data dir's write lock (index/storage/write_lock.py), so another
        process's run waits and long-running readers know to reopen; whatever this process
        read before may be stale, so the run writes through a fresh client."""
        lock = WriteLock(self.settings.data_dir)
        await lock.acquire_async(self.settings.write_lock_timeout)
        try:
            if self._vectors is not None:
                await asyncio.to_thread(self._vectors.reopen, "write run starting")
            else:
                forget_cached_client(self.settings)
            yield
        finally:
            lock.release()

    async def index(
        self,
        paths: Sequence[Target] | None = None,
        *,
        prune: bool = False,
        progress: ProgressFn | None = None,
    ) -> IndexReport:
        """One write run (see :meth:`writing`)."""
        async with self.writing():
            targets = await self.resolve_targets(paths)
            indexer = Indexer(self.settings, self.store, self.embedder, self._vectors, progress)
            report = await indexer.run(targets, prune=prune)
            self._vectors = await indexer.vectors()
            return report

    async def drop_sample(self) -> int:
        """Remove the built-in sample's articles (a newsroom's own archive replaces it) and
        remember it, so an empty store is not filled with the sample again."""
        async with self.writing():
            ids = await asyncio.to_thread(sample_article_ids)
            indexer = Indexer(self.settings, self.store, self.embedder, self._vectors)
            removed = await indexer.remove(ids)
            self._vectors = await indexer.vectors()
            await self.store.set_meta("corpus", NO_SAMPLE)
            return removed

    async def resolve_targets(self, paths: Sequence[Target] | None) -> list[Target]:
        """What a bare ``newsbot index`` means: configured sources, else the sample."""
        if paths:
            await self.store.set_meta("corpus", "custom")
            return list(paths)
        if self.settings.sources:
            await self.store.set_meta("corpus", "sources")
            return list(self.settings.sources.values())
        corpus = await self.store.get_meta("corpus")
        counts = await self.store.counts()
        if (counts["articles"] == 0 and corpus != NO_SAMPLE) or corpus == "sample":
            await self.store.set_meta("corpus", "sample")
            return list(sample_paths())
        raise NothingToIndex(
            "name the files, folders or feed URLs to index, or set NEWSBOT_SOURCES"
        )

    async def is_empty(self) -> bool:
        return (await self.store.counts())["articles"] == 0


async def open_services(
    settings: Settings, embedder: Embedder | None = None, vectors: VectorStore | None = None
) -> Services:
    """``vectors``: a vector store this process already has open (the bot's), so that its
    own write runs and its answers share one client."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await Store.open(settings.sqlite_path)
    return Services(settings, store, embedder or make_embedder(settings), vectors)
