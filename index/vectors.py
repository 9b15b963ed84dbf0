"""Chunk vectors in Chroma: embedded ``PersistentClient`` by default, ``HttpClient`` at scale.

We always pass vectors ourselves: Chroma's default embedding function downloads a model,
which fails offline. Calls are blocking; async callers run them in a thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from index.settings import Settings

log = logging.getLogger(__name__)

MAX_BATCH = 5000  # Chroma refuses adds above 5461 records


class EmbeddingMismatch(RuntimeError):
    """The collection holds vectors of another model; mixing them would be meaningless."""


class VectorStore:
    def __init__(self, collection: Any, client: Any, description: str) -> None:
        self.collection = collection
        self.client = client
        self.description = description

    @classmethod
    def open(cls, settings: Settings, model_id: str, dim: int) -> VectorStore:
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if settings.chroma_host:
            client = chromadb.HttpClient(
                host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
            )
            description = f"chroma server http://{settings.chroma_host}:{settings.chroma_port}"
        else:
            settings.chroma_path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(
                path=str(settings.chroma_path), settings=chroma_settings
            )
            description = f"embedded chroma at {settings.chroma_path}"
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
        return cls(collection, client, description)

    @classmethod
    def recreate(cls, settings: Settings, model_id: str, dim: int) -> VectorStore:
        """Drop the collection (after a model change) and start an empty one."""
        client = cls._client_only(settings)
        try:
            client.delete_collection(settings.chroma_collection)
        except Exception:  # noqa: BLE001 - an absent collection is fine
            log.debug("no collection %s to delete", settings.chroma_collection)
        return cls.open(settings, model_id, dim)

    @staticmethod
    def _client_only(settings: Settings) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if settings.chroma_host:
            return chromadb.HttpClient(
                host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
            )
        return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)

    def count(self) -> int:
        return int(self.collection.count())

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadatas: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        for i in range(0, len(ids), MAX_BATCH):
            self.collection.upsert(
                ids=list(ids[i : i + MAX_BATCH]),
                embeddings=vectors[i : i + MAX_BATCH],
                metadatas=list(metadatas[i : i + MAX_BATCH]) if metadatas else None,
            )

    def delete(self, ids: Sequence[str]) -> None:
        for i in range(0, len(ids), MAX_BATCH):
            self.collection.delete(ids=list(ids[i : i + MAX_BATCH]))

    def all_ids(self) -> set[str]:
        out: set[str] = set()
        offset = 0
        page = 20000
        while True:
            got = self.collection.get(include=[], limit=page, offset=offset)
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
        res = self.collection.query(
            query_embeddings=vectors, n_results=n, include=["distances"], **kwargs
        )
        out = []
        for id_list, dist_list in zip(res["ids"], res["distances"] or [], strict=False):
            out.append([(i, 1.0 - float(d)) for i, d in zip(id_list, dist_list, strict=True)])
        return out

    def get_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(ids), MAX_BATCH):
            got = self.collection.get(ids=list(ids[i : i + MAX_BATCH]), include=["embeddings"])
            for cid, vec in zip(got["ids"], got["embeddings"], strict=True):
                out[cid] = np.asarray(vec, dtype=np.float32)
        return out
