"""What every embedding backend is: the protocols and the vector/offset helpers they share.

Chunks must be measured with the tokenizer of the model that will read them, otherwise a
"256-token" chunk is silently truncated by the model and its tail is never searchable. So
each backend exposes its own ``count_tokens``/``token_spans`` next to its encoders.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["Embedder", "Span", "TokenCounter", "approx_spans", "unit_rows"]

Span = tuple[int, int]


class TokenCounter(Protocol):
    """What the chunker needs: the model's own token arithmetic, no weights.

    Not ``runtime_checkable`` on purpose: on Python 3.11 an ``isinstance`` check reads every
    member, and reading ``max_tokens`` may load a tokenizer or a model.
    """

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def token_spans(self, text: str) -> list[Span]: ...


class Embedder(TokenCounter, Protocol):
    """A text embedding model.

    ``model_id`` is recorded with the vectors: two embedders with the same id must produce
    interchangeable vectors. ``max_tokens`` counts what the model really reads of a passage,
    i.e. after its special tokens and passage prompt are taken out of the window.
    ``count_tokens`` never includes special tokens or prompts. Outputs are float32, (n, dim),
    L2-normalised.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...



_WORD = re.compile(r"\S+")


def unit_rows(vectors: Any, dim: int) -> np.ndarray:
    """float32, C-contiguous, unit rows: what Chroma's cosine space and our tests assume."""
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return arr / norms


def approx_spans(
    text: str, count: Callable[[Sequence[str]], list[int]],
    pieces: Callable[[str], list[str]] | None = None,
) -> list[Span]:
    """Token offsets for tokenizers without an offset mapping.

    Sentencepiece never merges across whitespace, so a word's tokens are the tokens of the
    word alone. Where the pieces spell the word back exactly their offsets are exact;
    otherwise (normalised characters) the word is cut into as many equal parts as it has
    tokens. Callers verify the count of whatever they cut, so approximate is safe.
    """
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    counts = count([text[a:b] for a, b in words])
    out: list[Span] = []
    for (a, b), k in zip(words, counts, strict=True):
        if k <= 1:
            out.append((a, b))
            continue
        if pieces is not None:
            parts = pieces(text[a:b])
            if len(parts) == k and "".join(parts) == text[a:b]:
                pos = a
                for p in parts:
                    out.append((pos, pos + len(p)))
                    pos += len(p)
                continue
        n = min(k, b - a)
        out.extend((a + i * (b - a) // n, a + (i + 1) * (b - a) // n) for i in range(n))
    return out

