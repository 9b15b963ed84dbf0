"""A deterministic embedder with no model, for tests of the store mechanics."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from index.embed.base import Span, unit_rows

__all__ = ["HASHING_ALIASES", "HashingEmbedder"]

HASHING_ALIASES = frozenset({"hashing", "hash"})

_HASH_TOKEN = re.compile(r"\w+|[^\w\s]")


class HashingEmbedder:
    """Feature hashing of word unigrams and bigrams: deterministic, instant, no model.

    For tests of the store mechanics, where what matters is that equal texts give equal
    vectors and different texts different ones, not semantics. Hashes use blake2b, not
    ``hash()``, so vectors are identical across processes.
    """

    def __init__(self, dim: int = 64, max_tokens: int = 256) -> None:
        if dim < 2:
            raise ValueError("dim must be at least 2")
        self.dim = dim
        self.max_tokens = max_tokens
        self.model_id = f"hashing:{dim}"

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_HASH_TOKEN.findall(t)) for t in texts]

    def token_spans(self, text: str) -> list[Span]:
        return [m.span() for m in _HASH_TOKEN.finditer(text)]

    def _bucket(self, feature: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest())
        return h % self.dim, (1.0 if (h >> 32) & 1 else -1.0)

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        words = [w.lower() for w in re.findall(r"\w+", text)]
        feats = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for f in feats:
            i, sign = self._bucket(f)
            v[i] += sign
        if not v.any():  # empty text: a fixed unit vector rather than NaNs
            v[0] = 1.0
        return v

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return unit_rows(np.stack([self._one(t) for t in texts]), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_passages(texts)

