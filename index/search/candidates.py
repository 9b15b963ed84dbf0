"""Where a question's candidate chunks come from: one interface, two implementations.

The store-backed one (index/search/store_candidates.py) asks Chroma and SQLite FTS5; the
in-memory one (index/search/memory_candidates.py) scores the copy of the corpus a
long-running process keeps (index/search/corpus_copy.py). The retriever picks one per
question and never looks behind it; both filter alike, which
tests/search/test_candidates_parity.py holds them to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Protocol, TypeVar

import numpy as np

from index.models import Filters

__all__ = ["Candidates", "Ranking", "VectorLike", "with_vector"]

Ranking = list[tuple[str, float]]  # (chunk id, score), best first
# A question's vector, or the encoding that will yield it: what needs only the filters runs
# while the question is encoded.
VectorLike = np.ndarray | Awaitable[np.ndarray]

T = TypeVar("T")


class Candidates(Protocol):
    async def dense(self, vector: VectorLike, filters: Filters, n: int) -> Ranking:
        """The ``n`` chunks passing ``filters`` nearest to ``vector`` by cosine (possibly
        fewer when the filtered ranking is reached by over-fetching)."""
        ...

    async def keyword(self, match: str, filters: Filters, n: int) -> Ranking:
        """The ``n`` best BM25 chunks passing ``filters`` for an FTS5 ``match`` expression
        (index/storage/keywords.py builds it)."""
        ...

    def keyword_in_process(self, match: str) -> bool:
        """Whether :meth:`keyword` is CPU work in this process (well under a millisecond)
        rather than a wait on SQLite: then it runs after the encoding, not beside it."""
        ...

    async def present_terms(self, terms: Iterable[str]) -> set[str]:
        """Which (analysed) terms occur anywhere in the keyword index."""
        ...

    async def doc_freqs(self, terms: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each (analysed) term; 0 for a term none holds."""
        ...


async def with_vector(vector: VectorLike, prepare: Awaitable[T]) -> tuple[np.ndarray, T]:
    """``vector`` and ``prepare``'s result, ``prepare`` running while the vector is
    computed."""
    if isinstance(vector, np.ndarray):
        return vector, await prepare
    task = asyncio.ensure_future(prepare)
    try:
        vec = await vector
    except BaseException:
        task.cancel()
        raise
    return vec, await task
