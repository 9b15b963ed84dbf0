"""Every chunk vector in memory, in time order, for the dense side of filtered questions.

Chroma's own metadata filters cost 100-300 ms at 100k vectors, and over-fetching unfiltered
neighbours to filter them afterwards costs ~13 ms when a filter keeps one chunk in twenty
(bench/query_bench.py). With the rows sorted by time, any date range is one contiguous
slice that a single matrix-vector product scores (30k rows of 384 dims: ~1.7 ms on one
core); outlet and language filters pick rows inside it. The copy costs ``dim * 4`` bytes a
chunk (150 MB for 100k chunks of 384 dims), so the retriever bounds it by
``DENSE_MATRIX_MAX_CHUNKS``.

The filters mean exactly what ``index.storage.filters.filter_sql`` makes them mean in SQL, so either path
gives the same passing chunks.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from index.models import Filters
from index.search.keyword_memory import KeywordIndex
from index.storage.store import Facets, to_ts

__all__ = ["GATHER_COST", "ChunkMatrix", "Selection"]

# Scoring rows picked out of the middle of the matrix costs this many times a contiguous
# row (the copy dominates: bench/query_bench.py, "matrix" pieces).
GATHER_COST = 5


@dataclass(frozen=True, slots=True)
class Selection:
    """The rows passing a filter: ``[lo, hi)`` of the time-sorted matrix, narrowed by
    ``mask`` (over that slice) when outlets or languages are filtered too."""

    lo: int
    hi: int
    mask: np.ndarray | None
    count: int

    @property
    def cost(self) -> int:
        """Scoring cost in contiguous-row equivalents (the cheaper of the two ways)."""
        if self.mask is None:
            return self.hi - self.lo
        return min(self.hi - self.lo, GATHER_COST * self.count)


@lru_cache(maxsize=256)
def _like(source: str) -> re.Pattern[str]:
    """SQLite's ``source_key LIKE '%source%'``: ``%`` any run, ``_`` one character, and
    case folded for ASCII letters only (SQLite's default)."""
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in source)
    return re.compile(f".*{body}.*", re.IGNORECASE | re.ASCII | re.DOTALL)


class ChunkMatrix:
    """Unit-length chunk vectors as the rows of one float32 matrix, sorted by time, with the
    columns filters read and, when given the bodies, the keyword index over the same rows.
    Immutable: a changed corpus gets a new matrix (``stamp`` tells)."""

    def __init__(
        self,
        facets: Sequence[Facets],
        vectors: Mapping[str, np.ndarray],
        bodies: Mapping[int, str] | None = None,
        stamp: Hashable = None,
    ) -> None:
        kept = sorted(facets, key=lambda f: f.ts)
        self.stamp = stamp
        self.ids = [f.chunk_id for f in kept]
        self.row_of = {cid: i for i, cid in enumerate(self.ids)}
        self.ts = np.fromiter((f.ts for f in kept), dtype=np.int64, count=len(kept))
        self.source_keys = sorted({f.source_key for f in kept}, key=lambda s: s or "")
        code = {s: i for i, s in enumerate(self.source_keys)}
        self.source_code = np.fromiter((code[f.source_key] for f in kept), np.int32, len(kept))
        self.langs = sorted({f.lang for f in kept}, key=lambda s: s or "")
        lcode = {s: i for i, s in enumerate(self.langs)}
        self.lang_code = np.fromiter((lcode[f.lang] for f in kept), np.int32, len(kept))
        dim = len(next(iter(vectors.values()))) if vectors else 0
        mat = np.zeros((len(kept), dim), dtype=np.float32)
        # A chunk whose vector a killed run never wrote is still found by its keywords.
        self.has_vector = np.fromiter((c in vectors for c in self.ids), bool, len(kept))
        self.missing_vectors = len(kept) - int(np.count_nonzero(self.has_vector))
        for i, cid in enumerate(self.ids):
            v = vectors.get(cid)
            if v is not None:
                mat[i] = v
        mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
        self.matrix = mat
        self.keywords: KeywordIndex | None = None
        if bodies is not None:
            self.keywords = KeywordIndex(
                [bodies.get(f.rowid, "") for f in kept],
                np.fromiter((f.rowid for f in kept), np.int64, len(kept)),
            )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes) + (self.keywords.nbytes if self.keywords else 0)

    def select(self, filters: Filters) -> Selection:
        lo, hi = 0, len(self.ids)
        start, end = to_ts(filters.date_from), to_ts(filters.date_to)
        if start is not None:
            lo = int(np.searchsorted(self.ts, start, side="left"))
        if end is not None:
            hi = int(np.searchsorted(self.ts, end, side="left"))
        hi = max(lo, hi)
        mask: np.ndarray | None = None
        if filters.sources:
            patterns = [_like(s.lower()) for s in filters.sources]
            codes = [i for i, key in enumerate(self.source_keys)
                     if key is not None and any(p.fullmatch(key) for p in patterns)]  # fmt: skip
            mask = np.isin(self.source_code[lo:hi], codes)
        if filters.langs:
            codes = [i for i, lang in enumerate(self.langs) if lang in filters.langs]
            by_lang = np.isin(self.lang_code[lo:hi], codes)
            mask = by_lang if mask is None else mask & by_lang
        count = hi - lo if mask is None else int(np.count_nonzero(mask))
        if mask is not None and count == hi - lo:
            mask = None
        return Selection(lo, hi, mask, count)

    def keeps(self, selection: Selection, chunk_id: str) -> bool:
        row = self.row_of.get(chunk_id)
        if row is None or not selection.lo <= row < selection.hi:
            return False
        return selection.mask is None or bool(selection.mask[row - selection.lo])

    def top(self, vec: np.ndarray, selection: Selection, n: int) -> list[tuple[str, float]]:
        """The ``n`` selected rows nearest to ``vec`` by cosine, best first."""
        if selection.count == 0 or n <= 0:
            return []
        q = np.asarray(vec, dtype=np.float32).reshape(-1)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        lo, hi, mask = selection.lo, selection.hi, selection.mask
        if mask is None:
            rows = None
            sims = self.matrix[lo:hi] @ q
        elif GATHER_COST * selection.count < hi - lo:
            rows = lo + np.flatnonzero(mask)
            sims = self.matrix[rows] @ q
        else:
            rows = lo + np.flatnonzero(mask)
            sims = (self.matrix[lo:hi] @ q)[mask]
        if self.missing_vectors:
            has = self.has_vector[lo:hi] if rows is None else self.has_vector[rows]
            sims = np.where(has, sims, -np.inf)
            n = min(n, int(np.count_nonzero(has)))
            if n == 0:
                return []
        if n < len(sims):
            head = np.argpartition(-sims, n - 1)[:n]
            order = head[np.argsort(-sims[head], kind="stable")]
        else:
            order = np.argsort(-sims, kind="stable")
        picked = (lo + order) if rows is None else rows[order]
        scores = sims[order].tolist()
        return [(self.ids[r], s) for r, s in zip(picked.tolist(), scores, strict=True)]

    def keyword_top(
        self, terms: Sequence[str], n: int, selection: Selection | None = None
    ) -> list[tuple[str, float]]:
        """BM25's best ``n`` rows for an OR of ``terms`` (see index/search/keyword_memory.py)."""
        assert self.keywords is not None
        if selection is None:
            rows, scores = self.keywords.top(terms, n)
        else:
            if selection.count == 0:
                return []
            rows, scores = self.keywords.top(
                terms, n, selection.lo, selection.hi, selection.mask
            )
        ids = self.ids
        return [(ids[r], s) for r, s in zip(rows.tolist(), scores.tolist(), strict=True)]
