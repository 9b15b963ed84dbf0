"""The backend named by the settings."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from index.embed.base import Embedder
from index.embed.e5 import E5_ALIASES, E5Embedder
from index.embed.hashing import HASHING_ALIASES, HashingEmbedder
from index.embed.sentence_transformer import SentenceTransformerEmbedder
from index.embed.use import USE_ALIASES, UseEmbedder

if TYPE_CHECKING:
    from index.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["make_embedder"]


def make_embedder(settings: Settings) -> Embedder:
    """The backend named by ``EMBEDDING_MODEL``; anything unknown is a sentence-transformers
    path or hub name."""
    name = settings.embedding_model.strip()
    key = name.lower()
    if key in HASHING_ALIASES or key.startswith("hashing:"):
        _, _, size = key.partition(":")
        return HashingEmbedder(int(size) if size else 64)
    if key in USE_ALIASES or key in E5_ALIASES:
        if settings.query_prompt or settings.passage_prompt:
            log.warning("%s uses its own query/passage handling: prompts are ignored", name)
        return UseEmbedder() if key in USE_ALIASES else E5Embedder()
    return SentenceTransformerEmbedder(
        name,
        query_prompt=settings.query_prompt,
        passage_prompt=settings.passage_prompt,
        batch_size=settings.embed_batch_size,
    )
