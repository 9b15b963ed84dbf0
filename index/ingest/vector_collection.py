"""Opening the vector collection for the embedder in use: vectors of two models are never mixed."""

from __future__ import annotations

import asyncio
import logging

from index.embed import Embedder
from index.settings import Settings
from index.storage.store import Store
from index.storage.vectors import VectorStore

log = logging.getLogger(__name__)


async def open_vectors_checked(
    settings: Settings, store: Store, embedder: Embedder
) -> tuple[VectorStore, str | None]:
    """Open the vector collection, re-embedding everything if the model changed.

    Vectors of two models are never mixed: a different model id or dimension drops the
    collection and queues every article for re-embedding, and says so.
    """
    from index.storage.vectors import EmbeddingMismatch

    wanted = f"{embedder.model_id}|{embedder.dim}"
    stored = await store.get_meta("embedding_model")
    notice = None
    if stored is not None and stored != wanted:
        notice = (
            f"embedding model changed ({stored} → {wanted}): "
            "all articles will be re-embedded"
        )
        log.warning(notice)
        await store.mark_all_for_reembed()
        vectors = await asyncio.to_thread(
            VectorStore.recreate, settings, embedder.model_id, embedder.dim
        )
    else:
        try:
            vectors = await asyncio.to_thread(
                VectorStore.open, settings, embedder.model_id, embedder.dim
            )
        except EmbeddingMismatch as exc:
            notice = f"{exc}: all articles will be re-embedded"
            log.warning(notice)
            await store.mark_all_for_reembed()
            vectors = await asyncio.to_thread(
                VectorStore.recreate, settings, embedder.model_id, embedder.dim
            )
    await store.set_meta("embedding_model", wanted)
    return vectors, notice


async def open_vectors(settings: Settings, store: Store, embedder: Embedder) -> VectorStore:
    vectors, _ = await open_vectors_checked(settings, store, embedder)
    return vectors
