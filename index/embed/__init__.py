"""One seam for every embedding model: vectors, and the token counts that size the chunks.

Each backend is a module of its own (sentence-transformers, USE v3, e5, hashing), all behind
the :class:`Embedder` protocol; :func:`make_embedder` picks one from the settings, and
``index.embed.process`` runs any of them in a child process.

Encoding is blocking and CPU-bound; callers run it in a worker thread while another thread
may be counting tokens. Each backend serialises encodes (torch models on one dedicated
thread, the others with a lock) and keeps its counting tokenizer apart from the model's, so
the two never contend for the same object.
"""

from index.embed.base import Embedder, Span, TokenCounter
from index.embed.e5 import E5Embedder
from index.embed.factory import make_embedder
from index.embed.hashing import HashingEmbedder
from index.embed.sentence_transformer import SentenceTransformerEmbedder
from index.embed.use import UseEmbedder

__all__ = [
    "E5Embedder",
    "Embedder",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "Span",
    "TokenCounter",
    "UseEmbedder",
    "make_embedder",
]
