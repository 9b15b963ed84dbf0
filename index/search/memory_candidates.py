"""Candidates from the in-memory copy of the corpus (index/search/chunk_matrix.py), for a
long-running process that keeps one (index/search/corpus_copy.py).

A filtered question is scored exactly from the matrix while that costs less than
over-fetching from Chroma, both counted in contiguous matrix rows (bench/query_bench.py at
100k chunks: a Chroma query ~50k rows, each neighbour ~100 more); else Chroma's unfiltered
neighbours are filtered by the matrix, not SQLite. BM25 runs over the copy's postings. An
unfiltered dense question and a match expression the postings cannot run go to the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import numpy as np

from index.models import Filters
from index.search.candidates import Ranking, VectorLike, with_vector
from index.search.chunk_matrix import ChunkMatrix, Selection
from index.search.store_candidates import StoreCandidates
from index.storage.store import or_terms

__all__ = ["MemoryCandidates"]

MATRIX_ROWS_PER_QUERY = 50_000
MATRIX_ROWS_PER_NEIGHBOUR = 100
MATRIX_THREAD_ROWS = 10_000  # larger products run off the event loop


class MemoryCandidates:
    """The in-memory :class:`~index.search.candidates.Candidates` over one copy (made per
    question: the copy in use may be replaced between questions)."""

    def __init__(self, matrix: ChunkMatrix, store: StoreCandidates) -> None:
        self.matrix = matrix
        self.store = store

    async def dense(self, vector: VectorLike, filters: Filters, n: int) -> Ranking:
        if filters.is_empty():
            return await self.store.dense(vector, filters, n)  # Chroma's index is as exact
        vec, sel = await with_vector(vector, self._select(filters))
        m = self.matrix
        if sel.count == 0:
            return []
        over = self.store.overfetch(sel.count / len(m), len(m), n)
        if sel.cost <= MATRIX_ROWS_PER_QUERY + MATRIX_ROWS_PER_NEIGHBOUR * over:
            if sel.cost > MATRIX_THREAD_ROWS or m.rescores:
                return await asyncio.to_thread(m.top, vec, sel, n)
            return m.top(vec, sel, n)
        found = await self.store.nearest(np.asarray(vec), over)
        return [(c, s) for c, s in found if m.keeps(sel, c)][:n]

    async def _select(self, filters: Filters) -> Selection:
        return self.matrix.select(filters)

    async def keyword(self, match: str, filters: Filters, n: int) -> Ranking:
        terms = self._terms(match)
        if terms is None:
            return await self.store.keyword(match, filters, n)
        sel = None if filters.is_empty() else self.matrix.select(filters)
        return self.matrix.keyword_top(terms, n, sel)

    def keyword_in_process(self, match: str) -> bool:
        return self._terms(match) is not None

    def _terms(self, match: str) -> list[str] | None:
        return or_terms(match) if self.matrix.keywords is not None else None

    async def present_terms(self, terms: Iterable[str]) -> set[str]:
        return await self.store.present_terms(terms)

    async def doc_freqs(self, terms: Sequence[str]) -> dict[str, int]:
        # The copy's postings hold the rows of FTS5's vocabulary: no query (~0.7 ms at 100k
        # chunks for a question's new words; bench/query_bench.py).
        k = self.matrix.keywords
        return k.doc_freqs(terms) if k is not None else await self.store.doc_freqs(terms)
