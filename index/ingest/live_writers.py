"""How the live indexer gets a writing ``Services`` for each run: a fresh index connection per
run (the bot), or one long-lived one (``newsbot index --watch``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from index.embed import Embedder
from index.runtime import Services, open_services
from index.settings import Settings
from index.storage.vectors import VectorStore

Writer = Callable[[], AbstractAsyncContextManager[Services]]


def services_writer(
    settings: Settings, embedder: Embedder, vectors: VectorStore | None = None
) -> Writer:
    """A fresh index connection for each write run (as ``/reindex`` has), sharing the
    process's embedder and, in the bot, the answering side's Chroma client."""

    @asynccontextmanager
    async def writer() -> AsyncIterator[Services]:
        services = await open_services(settings, embedder=embedder, vectors=vectors)
        try:
            yield services
        finally:
            await services.close()

    return writer


def shared_writer(services: Services) -> Writer:
    """Every run through one long-lived ``Services`` (``newsbot index --watch``)."""

    @asynccontextmanager
    async def writer() -> AsyncIterator[Services]:
        yield services

    return writer
