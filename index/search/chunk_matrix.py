"""Every chunk vector in memory, in time order, for the dense side of filtered questions.

Chroma's own metadata filters cost 100-300 ms at 100k vectors, and over-fetching unfiltered
neighbours to filter them afterwards costs ~13 ms when a filter keeps one chunk in twenty
(bench/query_bench.py). With the rows sorted by time, any date range is one contiguous
slice that a single matrix-vector product scores (30k rows of 384 dims: ~1.7 ms on one
core); outlet and language filters pick rows inside it.

Held as float32 the copy costs ``dim * 4`` bytes a chunk: 2 GB for a million chunks of 512
dims. So the bot holds it as int8 with one float32 scale per row (``dim + 4`` bytes: 0.5 GB
a million), or float16, and scores in float32 blocks small enough to stay in the cache. The
rounding moves a cosine by ~3e-4 (int8), enough to swap near-ties, so the rows that could
belong in the asked-for top are scored again exactly from their float32 vectors: read by row
from the file written beside the copy's snapshot (index/search/exact_rows.py, ~0.1 ms), or
else fetched by id from the source the copy was read from (Chroma, ~3.5 ms for ~120 vectors).
``DENSE_MATRIX_PRECISION`` chooses; ``DENSE_MATRIX_MAX_CHUNKS`` bounds the copy.

The filters mean exactly what ``index.storage.filters.filter_sql`` makes them mean in SQL, so either path
gives the same passing chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from index.models import Filters
from index.search.exact_rows import ExactRows, ExactRowsWriter, write_rows
from index.search.keyword_memory import KeywordIndex
from index.search.row_selection import GATHER_COST, WIDENED_GATHER_COST, Selection, like
from index.storage.store import Facets, to_ts

log = logging.getLogger(__name__)

__all__ = ["GATHER_COST", "PRECISIONS", "ChunkMatrix", "Precision", "Selection", "VectorSource"]

Precision = Literal["int8", "float16", "float32"]
PRECISIONS: tuple[Precision, ...] = ("int8", "float16", "float32")
# Fetches the float32 vectors of chunk ids (those that have one), e.g. VectorStore.get_vectors.
VectorSource = Callable[[Sequence[str]], Mapping[str, np.ndarray]]
LOAD_BATCH = 5000  # vectors read at a time while loading (over HTTP: ~80 MB of Python floats)
BLOCK_ROWS = 512  # rounded rows widened to float32 at a time: 1 MB at 512 dims, in the cache
# Re-scoring takes every row whose rounded score is within this many standard deviations of
# a score's rounding error (a sum of ``dim`` independent roundings, so near-normal) of the
# n-th best rounded score: at least 2n rows, at most RESCORE_MAX_FACTOR * n.
RESCORE_MARGIN = 8.0
RESCORE_MAX_FACTOR = 8


def _as_source(vectors: Mapping[str, np.ndarray] | VectorSource) -> VectorSource:
    if isinstance(vectors, Mapping):
        return lambda ids: {i: vectors[i] for i in ids if i in vectors}
    return vectors


class ChunkMatrix:
    """Unit-length chunk vectors as the rows of one matrix, sorted by time, with the
    columns filters read and, when given the bodies, the keyword index over the same rows.
    Immutable: a changed corpus gets a new matrix (``stamp`` tells).

    ``vectors`` maps chunk ids to vectors, or is a function fetching them by id (read in
    batches, so a load never holds two copies). Rows are held as ``precision``; unless that
    is float32, :meth:`top` re-scores its candidates from ``vectors``, so a function (not a
    mapping kept alive) is what saves memory."""

    def __init__(
        self,
        facets: Sequence[Facets],
        vectors: Mapping[str, np.ndarray] | VectorSource,
        bodies: Mapping[int, str] | None = None,
        stamp: Hashable = None,
        *,
        precision: Precision = "float32",
        reuse: ChunkMatrix | None = None,
        exact_file: Path | None = None,
    ) -> None:
        """``reuse``: an earlier copy of the same vectors (same collection and model, so a
        chunk id, content-addressed, still has the vector it had): the rows of chunks it holds
        are copied from it, and only the other chunks' vectors are read.

        ``exact_file``: where to keep the float32 vectors for re-scoring instead of fetching
        them again (index/search/exact_rows.py; rounded precisions only). They are written
        beside the rows, to a temporary file that :attr:`exact_writer` commits or drops;
        with ``reuse``, its rows come from ``reuse``'s file (one without a file is not
        reused, so the new file is whole)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        kept = sorted(facets, key=lambda f: f.ts)
        self.stamp = stamp
        self.precision = precision
        self.ids = [f.chunk_id for f in kept]
        self.ts = np.fromiter((f.ts for f in kept), dtype=np.int64, count=len(kept))
        self.source_keys = sorted({f.source_key for f in kept}, key=lambda s: s or "")
        code = {s: i for i, s in enumerate(self.source_keys)}
        self.source_code = np.fromiter((code[f.source_key] for f in kept), np.int32, len(kept))
        self.langs = sorted({f.lang for f in kept}, key=lambda s: s or "")
        lcode = {s: i for i, s in enumerate(self.langs)}
        self.lang_code = np.fromiter((lcode[f.lang] for f in kept), np.int32, len(kept))
        source = _as_source(vectors)
        # Where re-scoring reads exact vectors (float32 rows are exact already).
        self._exact: VectorSource | None = None if precision == "float32" else source
        self.matrix: np.ndarray = np.zeros((len(kept), 0), dtype=np.dtype(precision))
        self.scale: np.ndarray | None = None  # per row, int8 only
        self._exact_to = exact_file if precision != "float32" else None
        self.exact_writer: ExactRowsWriter | None = None  # the file being written, until kept
        self.exact_rows: ExactRows | None = None  # where re-scoring reads, when not _exact
        # A chunk whose vector a killed run never wrote is still found by its keywords.
        self.has_vector = np.zeros(len(kept), dtype=bool)
        if reuse is not None and (reuse.precision != precision or not reuse.matrix.shape[1]):
            reuse = None
        if reuse is not None and self._exact_to is not None and reuse.exact_rows is None:
            reuse = None
        if reuse is not None:
            self._allocate(reuse.matrix.shape[1])
        self.reused = 0  # rows copied from ``reuse``
        try:
            for a in range(0, len(self.ids), LOAD_BATCH):
                part = self.ids[a : a + LOAD_BATCH]
                at = np.arange(a, a + len(part))
                if reuse is not None:
                    part, at = self._copy_rows(part, at, reuse)
                if part:
                    self._fill(at, part, source(part))
            if self.exact_writer is not None:
                self.exact_rows = self.exact_writer.reader()
        except BaseException:
            self.drop_exact_file()
            raise
        self.keywords: KeywordIndex | None = None
        if bodies is not None:
            self.keywords = KeywordIndex(
                [bodies.get(f.rowid, "") for f in kept],
                np.fromiter((f.rowid for f in kept), np.int64, len(kept)),
            )
        self._derive()

    def _derive(self) -> None:
        """What follows from the rows (after building them or reading them back)."""
        self.row_of = {cid: i for i, cid in enumerate(self.ids)}
        # Each outlet's rows, ascending (the rows in outlet order), so that an outlet filter
        # lists its rows without testing every row's outlet.
        self._outlet_rows = np.argsort(self.source_code, kind="stable").astype(np.int32)
        self._outlet_at = np.zeros(len(self.source_keys) + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.source_code, minlength=len(self.source_keys)),
                  out=self._outlet_at[1:])  # fmt: skip
        self.missing_vectors = len(self.ids) - int(np.count_nonzero(self.has_vector))
        # Largest rounding error of one coordinate of a unit row (for re-scoring's margin).
        self._rounding = 0.0
        if self.scale is not None and len(self.scale):
            self._rounding = float(self.scale.max()) / 2
        elif self.precision == "float16" and self.matrix.size:
            self._rounding = float(np.abs(self.matrix).max()) * 2.0**-11

    # -- what a snapshot on disk holds (index/search/copy_snapshot.py) ----------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array the copy is made of (the keyword index's under ``kw_``)."""
        out: dict[str, np.ndarray] = {
            "ts": self.ts, "source_code": self.source_code, "lang_code": self.lang_code,
            "matrix": self.matrix, "has_vector": self.has_vector,
        }  # fmt: skip
        if self.scale is not None:
            out["scale"] = self.scale
        if self.keywords is not None:
            out |= {f"kw_{k}": v for k, v in self.keywords.arrays().items()}
        return out

    @classmethod
    def restore(
        cls,
        ids: list[str],
        source_keys: list[str | None],
        langs: list[str | None],
        arrays: Mapping[str, np.ndarray],
        vectors: VectorSource,
        *,
        precision: Precision,
        vocab: list[str] | None,
        stamp: Hashable = None,
        exact: ExactRows | None = None,
    ) -> ChunkMatrix:
        """The copy :meth:`arrays` described, re-scoring from ``exact`` (its float32 rows)
        or else ``vectors``. Raises ValueError when the parts do not fit together (a damaged
        snapshot)."""
        m = cls.__new__(cls)
        n = len(ids)
        m.stamp, m.precision, m.ids = stamp, precision, ids
        m.source_keys, m.langs = source_keys, langs
        m.ts, m.source_code = arrays["ts"], arrays["source_code"]
        m.lang_code, m.matrix = arrays["lang_code"], arrays["matrix"]
        m.has_vector = arrays["has_vector"].astype(bool, copy=False)
        m.scale = arrays.get("scale")
        m.reused = 0
        m._exact = None if precision == "float32" else vectors
        m._exact_to, m.exact_writer = None, None
        m.exact_rows = exact if precision != "float32" else None
        sizes = {len(m.ts), len(m.source_code), len(m.lang_code), len(m.has_vector),
                 m.matrix.shape[0]} | ({len(m.scale)} if m.scale is not None else set())  # fmt: skip
        if sizes != {n} or m.matrix.ndim != 2 or m.matrix.dtype != np.dtype(precision):
            raise ValueError(f"arrays of {sorted(sizes)} rows for {n} chunk ids")
        if (precision == "int8") != (m.scale is not None):
            raise ValueError("int8 rows need their scales, and only they")
        if n and (int(m.source_code.max()) >= len(source_keys) or int(m.lang_code.max())
                  >= len(langs) or int(min(m.source_code.min(), m.lang_code.min())) < 0):
            raise ValueError("outlet or language codes out of range")  # fmt: skip
        if n > 1 and bool(np.any(np.diff(m.ts) < 0)):
            raise ValueError("rows not in time order")
        m.keywords = None
        if vocab is not None:
            kw = {k[3:]: v for k, v in arrays.items() if k.startswith("kw_")}
            m.keywords = KeywordIndex.restore(vocab, kw, n)
        m._derive()
        return m

    def _allocate(self, dim: int) -> None:
        self.matrix = np.zeros((len(self.ids), dim), dtype=np.dtype(self.precision))
        if self.precision == "int8":
            self.scale = np.zeros(len(self.ids), dtype=np.float32)
        if self._exact_to is not None:
            self.exact_writer = ExactRowsWriter(self._exact_to, len(self.ids), dim)

    def write_exact_file(self, path: Path, vectors: VectorSource) -> None:
        """Write the float32 rows file of a copy that has none (its rows' vectors read from
        ``vectors`` in batches), then re-score from it; :attr:`exact_writer` keeps or drops
        it. Blocking: run it off the event loop."""
        if self.precision != "float32" and self.matrix.shape[1]:
            writer = write_rows(path, self.ids, self.matrix.shape[1], vectors, LOAD_BATCH)
            self.exact_rows, self.exact_writer = writer.reader(), writer

    def drop_exact_file(self) -> None:
        """Give up the float32 file being written (re-scoring keeps reading what it holds)."""
        writer, self.exact_writer = self.exact_writer, None
        if writer is not None:
            writer.drop()

    def _copy_rows(
        self, part: list[str], at: np.ndarray, reuse: ChunkMatrix
    ) -> tuple[list[str], np.ndarray]:
        """The rows ``at`` of ``part`` that ``reuse`` holds, copied from it; the ids it does
        not hold are returned with their rows, for :meth:`_fill`."""
        old = np.fromiter((reuse.row_of.get(c, -1) for c in part), np.int64, len(part))
        held = old >= 0
        held[held] = reuse.has_vector[old[held]]
        rows = at[held]
        self.matrix[rows] = reuse.matrix[old[held]]
        if self.scale is not None and reuse.scale is not None:
            self.scale[rows] = reuse.scale[old[held]]
        if self.exact_writer is not None and reuse.exact_rows is not None and len(rows):
            self.exact_writer.write(rows, reuse.exact_rows.read(old[held]))
        self.has_vector[rows] = True
        self.reused += len(rows)
        rest = np.flatnonzero(~held)
        return [part[i] for i in rest.tolist()], at[rest]

    def _fill(self, at: np.ndarray, part: Sequence[str], got: Mapping[str, np.ndarray]) -> None:
        """Rows ``at`` from the vectors of ``part`` (unit length, then rounded)."""
        if not got:
            return
        if self.matrix.shape[1] == 0:
            self._allocate(len(next(iter(got.values()))))
        rows = np.zeros((len(part), self.matrix.shape[1]), dtype=np.float32)
        for i, cid in enumerate(part):
            v = got.get(cid)
            if v is not None:
                rows[i] = v
                self.has_vector[at[i]] = True
        if self.exact_writer is not None:
            self.exact_writer.write(at, rows)  # as fetched: re-scoring normalises them alike
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        if self.scale is None:
            self.matrix[at] = rows
            return
        scale = np.abs(rows).max(axis=1) / 127.0
        codes = rows / np.where(scale > 0, scale, 1.0)[:, None]
        self.matrix[at] = np.rint(codes).astype(np.int8)
        self.scale[at] = scale

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        return self.vector_nbytes + (self.keywords.nbytes if self.keywords else 0)

    @property
    def rescores(self) -> bool:
        """Whether :meth:`top` fetches vectors from the vector store (so callers run it off
        the event loop); reading them from :attr:`exact_rows` is not fetching."""
        return self._exact is not None and self.exact_rows is None

    @property
    def vector_nbytes(self) -> int:
        """The vectors' share: ``dim + 4`` bytes a row as int8, ``2 * dim`` as float16."""
        scale = int(self.scale.nbytes) if self.scale is not None else 0
        return int(self.matrix.nbytes) + scale

    def select(self, filters: Filters) -> Selection:
        lo, hi = 0, len(self.ids)
        start, end = to_ts(filters.date_from), to_ts(filters.date_to)
        if start is not None:
            lo = int(np.searchsorted(self.ts, start, side="left"))
        if end is not None:
            hi = int(np.searchsorted(self.ts, end, side="left"))
        hi = max(lo, hi)
        mask: np.ndarray | None = None
        rows: np.ndarray | None = None
        if filters.sources:
            patterns = [like(s.lower()) for s in filters.sources]
            codes = [i for i, key in enumerate(self.source_keys)
                     if key is not None and any(p.fullmatch(key) for p in patterns)]  # fmt: skip
            at = self._outlet_at
            parts = [self._outlet_rows[at[c] : at[c + 1]] for c in codes]
            rows = (np.sort(np.concatenate(parts)) if len(parts) > 1 else parts[0] if parts
                    else np.zeros(0, dtype=np.int32))  # fmt: skip
            rows = rows[np.searchsorted(rows, lo) : np.searchsorted(rows, hi)]
        if filters.langs:
            codes = [i for i, lang in enumerate(self.langs) if lang in filters.langs]
            if rows is not None:
                rows = rows[np.isin(self.lang_code[rows], codes)]
            else:
                mask = np.isin(self.lang_code[lo:hi], codes)
        if rows is not None:
            mask = np.zeros(hi - lo, dtype=bool)
            mask[rows - lo] = True
        count = hi - lo if mask is None else len(rows) if rows is not None else int(
            np.count_nonzero(mask))  # fmt: skip
        if mask is not None and count == hi - lo:
            mask, rows = None, None
        return Selection(lo, hi, mask, count, rows)

    def keeps(self, selection: Selection, chunk_id: str) -> bool:
        row = self.row_of.get(chunk_id)
        if row is None or not selection.lo <= row < selection.hi:
            return False
        return selection.mask is None or bool(selection.mask[row - selection.lo])

    def top(self, vec: np.ndarray, selection: Selection, n: int) -> list[tuple[str, float]]:
        """The ``n`` selected rows nearest to ``vec`` by cosine, best first."""
        if selection.count == 0 or n <= 0 or self.matrix.shape[1] == 0:
            return []
        q = np.asarray(vec, dtype=np.float32).reshape(-1)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        lo, hi, mask = selection.lo, selection.hi, selection.mask
        if mask is None:
            rows = None
            sims = self._scores(q, lo, hi)
        else:
            rows = selection.rows if selection.rows is not None else lo + np.flatnonzero(mask)
            cost = GATHER_COST if self.matrix.dtype == np.float32 else WIDENED_GATHER_COST
            if cost * selection.count < hi - lo:
                sims = self._scores(q, rows=rows)
            else:
                sims = self._scores(q, lo, hi)[mask]
        if self.missing_vectors:
            has = self.has_vector[lo:hi] if rows is None else self.has_vector[rows]
            sims = np.where(has, sims, -np.inf)
            n = min(n, int(np.count_nonzero(has)))
            if n == 0:
                return []
        if self._exact is not None:
            return self._rescored(q, sims, rows, lo, n)
        if n < len(sims):
            head = np.argpartition(-sims, n - 1)[:n]
            order = head[np.argsort(-sims[head], kind="stable")]
        else:
            order = np.argsort(-sims, kind="stable")
        picked = (lo + order) if rows is None else rows[order]
        scores = sims[order].tolist()
        return [(self.ids[r], s) for r, s in zip(picked.tolist(), scores, strict=True)]

    def _scores(
        self, q: np.ndarray, lo: int = 0, hi: int = 0, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Cosines of rows ``[lo, hi)`` (or ``rows``) with the unit vector ``q``, as rounded."""
        m = self.matrix
        if m.dtype == np.float32:
            return m[lo:hi] @ q if rows is None else m[rows] @ q
        # numpy has no fast int8 or float16 product: widen a block at a time, then BLAS.
        count = hi - lo if rows is None else len(rows)
        out = np.empty(count, dtype=np.float32)
        buf = np.empty((min(BLOCK_ROWS, count), m.shape[1]), dtype=np.float32)
        for a in range(0, count, BLOCK_ROWS):
            b = min(a + BLOCK_ROWS, count)
            wide = buf[: b - a]
            wide[...] = m[lo + a : lo + b] if rows is None else m[rows[a:b]]
            np.dot(wide, q, out=out[a:b])
        if self.scale is not None:
            out *= self.scale[lo:hi] if rows is None else self.scale[rows]
        return out

    def _rescored(
        self, q: np.ndarray, sims: np.ndarray, rows: np.ndarray | None, lo: int, n: int
    ) -> list[tuple[str, float]]:
        """The best ``n`` by exact cosine among the rows whose rounded score could make it."""
        assert self._exact is not None
        total = len(sims)
        if n < total:
            nth = float(-np.partition(-sims, n - 1)[n - 1])
            margin = RESCORE_MARGIN * self._rounding / np.sqrt(3.0)
            close = int(np.count_nonzero(sims >= nth - margin))
            k = min(total, max(close, 2 * n), RESCORE_MAX_FACTOR * n)
        else:
            k = total
        cand = np.argpartition(-sims, k - 1)[:k] if k < total else np.arange(total)
        cand = np.sort(cand[np.isfinite(sims[cand])])  # row order: ties break as float32's
        at = (lo + cand) if rows is None else rows[cand]
        ids = [self.ids[r] for r in at.tolist()]
        scores = sims[cand].astype(np.float32)
        from_file = self._from_file(q, at, scores)
        if from_file is not None:
            scores = from_file
        else:
            try:
                got = self._exact(ids)
            except Exception:  # noqa: BLE001 - the rounded scores still rank well
                log.warning("could not fetch vectors to re-score; rounded scores used",
                            exc_info=True)  # fmt: skip
                got = {}
            exact = [i for i, cid in enumerate(ids) if cid in got]
            if exact:
                mat = np.stack([np.asarray(got[ids[i]], dtype=np.float32) for i in exact])
                scores[exact] = self._exact_scores(q, mat)
        order = np.argsort(-scores, kind="stable")[:n]
        return [(ids[i], float(scores[i])) for i in order.tolist()]

    @staticmethod
    def _exact_scores(q: np.ndarray, mat: np.ndarray) -> np.ndarray:
        """Cosines of the float32 vectors ``mat`` (as fetched: normalised here) with ``q``."""
        mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
        out: np.ndarray = mat @ q
        return out

    def _from_file(self, q: np.ndarray, at: np.ndarray, rounded: np.ndarray) -> np.ndarray | None:
        """Exact scores of rows ``at`` from :attr:`exact_rows`, or None without a file that
        reads back rows rounding to the copy's (then the file is dropped, once, with a log
        line, and re-scoring fetches vectors from then on)."""
        source = self.exact_rows
        if source is None:
            return None
        try:
            exact = self._exact_scores(q, source.read(at))
            # Each exact cosine is within the rows' rounding of the rounded one (plus float32
            # sums' error): a file row that is not the copy's row breaks that.
            bound = self._rounding * float(np.abs(q).sum()) + 1e-4
            if not bool(np.all(np.abs(exact - rounded) <= bound)):
                raise ValueError("a row does not round to the in-memory copy's row")
        except (OSError, ValueError, IndexError) as exc:
            # Not closed here: a re-score in another thread may still be reading it (the
            # descriptor closes when the last reference goes).
            self.exact_rows = None
            log.warning("the float32 rows file of the in-memory copy is damaged: re-scoring "
                        "fetches vectors from the vector store instead",
                        extra={"kv": {"error": f"{type(exc).__name__}: {exc}"[:300]}})  # fmt: skip
            return None
        return exact

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
