"""Candidates from the stores on disk: Chroma for the dense side, SQLite FTS5 for keywords.

At 100k chunks Chroma's ``where=`` costs 150-300 ms and ``ids=`` 30-200 ms (slowest for
*small* id sets) against ~3 ms unfiltered (bench/query_bench.py). So a filtered question
never uses Chroma's own filters: few passing chunks are scored exactly from their vectors;
otherwise the unfiltered neighbours are over-fetched in proportion to how rare passing
chunks are and filtered in SQLite, which yields the exact top of the filtered ranking,
possibly fewer than asked for. Fetched vectors stay in memory, so a filter asked again is
scored exactly for ~1 ms.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from index.models import Filters
from index.search.candidates import Ranking, VectorLike, with_vector
from index.search.fusion import FusionParams
from index.storage.store import Store
from index.storage.vectors import VectorStore

__all__ = ["StoreCandidates", "top_rows"]

DENSE_EXACT_CHUNKS = 1200  # filters passing at most this many chunks are scored exactly
DENSE_FETCH_CHUNKS = 1500  # from their vectors when at most this many must be fetched, else ids=
DENSE_CACHE_VECTORS = 20000  # fetched chunk vectors kept in memory (~30 MB at 384 dims)
DENSE_OVERFETCH_FACTOR = 2.0  # else fetch this many x the candidates / passing fraction


@dataclass(slots=True)
class _DensePlan:
    """How the dense side of a filtered question will run: everything that needs only the
    filters (the SQL, and the matrix of passing vectors), made while the question is
    encoded."""

    kind: Literal["none", "exact", "ids", "overfetch"]
    n: int = 0  # neighbours to over-fetch
    ids: list[str] | None = None  # for Chroma ids=
    keys: list[str] | None = None  # rows of ``matrix``
    matrix: np.ndarray | None = None  # unit vectors, for exact scoring
    keep: set[str] | None = None  # the passing ids, when known


class StoreCandidates:
    """The store-backed :class:`~index.search.candidates.Candidates`; it keeps the chunk
    vectors it fetched ("last week" is asked again and again), so one lives as long as its
    retriever."""

    def __init__(self, store: Store, vectors: VectorStore, params: FusionParams) -> None:
        self.store = store
        self.vectors = vectors
        self.params = params
        # Chunk ids are content-addressed, so a cached vector never goes stale.
        self._vector_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vector_lock = threading.Lock()
        self._matrix_cache: OrderedDict[tuple[str, ...], tuple[list[str], np.ndarray]] = (
            OrderedDict()
        )
        self._matrix_rows = 0

    def invalidate(self) -> None:
        with self._vector_lock:
            self._vector_cache.clear()
            self._matrix_cache.clear()
            self._matrix_rows = 0

    # -- dense ------------------------------------------------------------------------------

    async def dense(self, vector: VectorLike, filters: Filters, n: int) -> Ranking:
        if filters.is_empty():
            vec = vector if isinstance(vector, np.ndarray) else await vector
            return await self.nearest(vec, n)
        vec, plan = await with_vector(vector, self._plan(filters, n))
        return await self._run(vec, plan, filters, n)

    async def nearest(self, vec: np.ndarray, n: int) -> Ranking:
        """The ``n`` nearest chunks, unfiltered (Chroma's own index)."""
        res = await asyncio.to_thread(self.vectors.query, vec.reshape(1, -1), n)
        return res[0]

    def overfetch(self, fraction: float, total: int, n: int) -> int:
        """Unfiltered neighbours to fetch so that about twice ``n`` pass a filter that
        passes ``fraction`` of ``total`` chunks."""
        p = self.params
        return min(total, p.overfetch, max(n, math.ceil(DENSE_OVERFETCH_FACTOR * n / fraction)))

    async def _plan(self, filters: Filters, k: int) -> _DensePlan:
        p = self.params
        fraction = await self.store.filter_fraction(filters)
        if fraction <= 0.0:
            return _DensePlan("none")
        total = await self.store.chunk_count()
        exact_limit = min(max(DENSE_EXACT_CHUNKS, k), p.filtered_exact_limit)
        n = self.overfetch(fraction, total, k)
        keep: set[str] | None = None
        id_limit = max(exact_limit, 4 * n)
        if fraction * total <= id_limit:  # an estimate: the list below is exact
            ids = await self.store.filtered_chunk_ids(filters, id_limit)
            if ids is not None:
                if not ids:
                    return _DensePlan("none")
                cache = self._vector_cache
                missing = sum(1 for i in ids if i not in cache)
                if len(ids) <= exact_limit or missing * 10 <= len(ids):
                    if missing <= DENSE_FETCH_CHUNKS:
                        keys, matrix = await asyncio.to_thread(self._matrix, ids)
                        return _DensePlan("exact", keys=keys, matrix=matrix)
                    return _DensePlan("ids", ids=ids)
                keep = set(ids)
        return _DensePlan("overfetch", n=n, keep=keep)

    async def _run(self, vec: np.ndarray, plan: _DensePlan, filters: Filters, k: int) -> Ranking:
        vecs = vec.reshape(1, -1)
        if plan.kind == "none":
            return []
        if plan.kind == "exact":
            assert plan.keys is not None and plan.matrix is not None
            return top_rows(plan.keys, plan.matrix, vec, k)
        if plan.kind == "ids":
            res = await asyncio.to_thread(self.vectors.query, vecs, k, plan.ids)
            return res[0]
        res = await asyncio.to_thread(self.vectors.query, vecs, plan.n)
        keep = plan.keep
        if keep is None:
            keep = await self.store.passing_chunk_ids([c for c, _ in res[0]], filters)
        return [(c, s) for c, s in res[0] if c in keep][:k]

    def score_ids(self, vec: np.ndarray, ids: Sequence[str], n: int) -> Ranking:
        """Exact cosine of ``vec`` against the stored vectors of ``ids``: the best ``n``."""
        keys, matrix = self._matrix(ids)
        return top_rows(keys, matrix, vec, n)

    def _matrix(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The unit-length vectors of ``ids`` (those that have one) as rows of one matrix.

        The same filter is asked again and again ("ieri", "last week"), so the stacked
        matrix of an id list is kept too (building it costs more than scoring it)."""
        key = tuple(ids)
        with self._vector_lock:
            hit = self._matrix_cache.get(key)
            if hit is not None:
                self._matrix_cache.move_to_end(key)
                return hit
        cache = self._vector_cache
        with self._vector_lock:
            got = {i: cache[i] for i in ids if i in cache}
            for i in got:
                cache.move_to_end(i)
        missing = [i for i in ids if i not in got]
        if missing:
            fetched = self.vectors.get_vectors(missing)
            got.update(fetched)
            if len(ids) <= DENSE_CACHE_VECTORS:
                with self._vector_lock:
                    cache.update(fetched)
                    while len(cache) > DENSE_CACHE_VECTORS:
                        cache.popitem(last=False)
        keys = list(got)
        if not keys:
            return [], np.zeros((0, 0), dtype=np.float32)
        mat = np.stack([got[k] for k in keys])
        mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
        out = (keys, mat)
        with self._vector_lock:
            self._matrix_cache[key] = out
            self._matrix_rows += len(keys)
            while self._matrix_rows > DENSE_CACHE_VECTORS or len(self._matrix_cache) > 32:
                _, (old, _) = self._matrix_cache.popitem(last=False)
                self._matrix_rows -= len(old)
        return out

    # -- keywords ---------------------------------------------------------------------------

    async def keyword(self, match: str, filters: Filters, n: int) -> Ranking:
        return await self.store.fts_search(match, n, filters)

    def keyword_in_process(self, match: str) -> bool:
        return False

    async def present_terms(self, terms: Iterable[str]) -> set[str]:
        wanted = sorted(set(terms))
        if not wanted:
            return set()
        return {t for t, d in (await self.store.doc_freqs(list(wanted))).items() if d > 0}

    async def doc_freqs(self, terms: Sequence[str]) -> dict[str, int]:
        return await self.store.doc_freqs(terms)


def top_rows(keys: Sequence[str], matrix: np.ndarray, vec: np.ndarray, n: int) -> Ranking:
    """The ``n`` rows (unit vectors) of ``matrix`` nearest to ``vec`` by cosine."""
    if not keys:
        return []
    sims = matrix @ (vec.reshape(-1) / max(float(np.linalg.norm(vec)), 1e-12))
    order = np.argsort(-sims, kind="stable")[:n]
    return [(keys[i], float(sims[i])) for i in order]
