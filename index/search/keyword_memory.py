"""BM25 over the keyword index, held in memory: the scores of SQLite FTS5's ``bm25()``.

An FTS5 query whose terms include common words walks their long posting lists and scores
every match: ~6 ms at 100k chunks, on the core the question's encoding would otherwise have
to itself (bench/query_bench.py). The same postings as numpy arrays score in ~1 ms. The
bodies are read from ``chunks_fts`` and split as its ``unicode61`` tokenizer splits them
(they are already folded stems; unicode61 still lowercases what folding leaves upper case,
such as styled mathematical capitals), and the formula is FTS5's (k1 = 1.2, b = 0.75, an IDF
floor of 1e-6), so both paths rank alike, ties included (in rowid order). Known difference:
a few dozen rare code points (e.g. New Tai Lue letters) that SQLite's older Unicode tables
treat as separators are letters here.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence

import numpy as np

__all__ = ["KeywordIndex"]

K1 = 1.2
B = 0.75
# unicode61's token characters: letters and digits (the bodies are folded already).
_TOKEN = re.compile(r"[^\W_]+")
BUILD_ROWS = 8192  # rows tokenized at a time while building
# Pruning walks the rarer terms' postings only while they are fewer than the rows over
# this: past that, scoring every row at once is as cheap (bench/bm25_bench.py).
PRUNE_ROWS_FRACTION = 8
# Relative slack on the pruning bounds, far above float64 sums' rounding error, so that a
# row is left out only when it scores below the head however the sums round.
PRUNE_MARGIN = 1e-9
# A commoner term's postings are looked up per candidate (binary search) when they outnumber
# the candidates this many times, else each posting is tested.
LOOKUP_RATIO = 32
# Postings checked at a time when a saved copy is read (its rows must ascend per term).
CHECK_BLOCK = 1 << 23
# The head's contenders are found from one row in this many at most (_contenders), sampled
# so as to hold ~this many postings per row wanted.
SAMPLE_STRIDE = 64
SAMPLE_PER_LIMIT = 16
# Postings whose BM25 parts are kept across calls (float64: 32 MiB): a question's translated
# second pass repeats every term of its first, and common words recur across questions.
VALUES_CACHED = 1 << 22
_EMPTY = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
for _a in _EMPTY:
    _a.flags.writeable = False


class KeywordIndex:
    """Postings of every term: the rows holding it and their BM25 term-frequency parts."""

    # Whether a question without an outlet's mask is pruned too (see top()); the tests
    # turn it on.
    prune_unmasked: bool = False

    def __init__(self, bodies: Sequence[str], order: np.ndarray | None = None) -> None:
        """``order``: per row, the key that orders equal scores (FTS5's rowid), else the row."""
        n = len(bodies)
        self.order = np.arange(n) if order is None else np.asarray(order)
        self.n_rows = n
        self._init_caches()
        # Term ids in order of first appearance; map() of a defaultdict's lookup runs in C.
        vocab: defaultdict[str, int] = defaultdict(itertools.count().__next__)
        term_id = vocab.__getitem__
        lengths = np.zeros(n, dtype=np.int64)
        # (term, row, tf) of every posting, a block of rows at a time, so that the per-token
        # arrays never exist for the whole corpus (~8 KB a row: 8 GB at a million rows).
        blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        width = max(n, 1)
        for start in range(0, n, BUILD_ROWS):
            end = min(n, start + BUILD_ROWS)
            ids: list[int] = []
            for i in range(start, end):
                toks = _TOKEN.findall(bodies[i].lower())
                lengths[i] = len(toks)
                ids.extend(map(term_id, toks))
            terms = np.asarray(ids, dtype=np.int64)
            docs = np.repeat(np.arange(start, end, dtype=np.int64), lengths[start:end])
            pairs, tf = np.unique(terms * width + docs, return_counts=True)
            blocks.append(((pairs // width).astype(np.int32), (pairs % width).astype(np.int32),
                           np.minimum(tf, 65535).astype(np.uint16)))  # fmt: skip
        self.vocab = dict(vocab)
        counts = np.zeros(len(vocab), dtype=np.int64)
        for t, _, _ in blocks:
            counts += np.bincount(t, minlength=len(vocab))
        self.indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.indptr[1:])
        total = int(self.indptr[-1])
        big = any(int(f.max()) > 255 for _, _, f in blocks if f.size)
        self.rows = np.empty(total, dtype=np.int32)
        tf_all = np.empty(total, dtype=np.uint16 if big else np.uint8)
        # Each block's postings go after the earlier blocks' postings of the same term, so
        # every term's rows stay in row order.
        cursor = self.indptr[:-1].copy()
        while blocks:
            t, d, f = blocks.pop(0)
            if not t.size:
                continue
            uniq, first, cnt = np.unique(t, return_index=True, return_counts=True)
            pos = cursor[t] + (np.arange(len(t)) - np.repeat(first, cnt))
            self.rows[pos] = d
            tf_all[pos] = f
            cursor[uniq] += cnt
        avgdl = float(lengths.sum()) / n if n else 1.0
        # Per posting only the term frequency is kept (1 byte, 2 for a term repeated over 255
        # times), not its float64 weight: 5 bytes a posting instead of 12 (~0.5 GB less at a
        # million chunks). The weight is computed again for the question's terms, with the
        # very operations that computed it here before, so scores stay bit for bit FTS5's.
        self.tf = tf_all
        self.length_norm = K1 * (1.0 - B + B * lengths.astype(np.float64) / max(avgdl, 1e-12))

    def _init_caches(self) -> None:
        self._max_weights: dict[int, float] = {}
        self._scratch = threading.local()
        # (first, end) of a run of postings -> their parts (IDF included), least recent first.
        self._kept: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._kept_size = 0
        self._kept_lock = threading.Lock()

    def arrays(self) -> dict[str, np.ndarray]:
        """The postings as arrays (the terms, in id order, are :meth:`terms`)."""
        return {"order": self.order, "indptr": self.indptr, "rows": self.rows, "tf": self.tf,
                "length_norm": self.length_norm}  # fmt: skip

    def terms(self) -> list[str]:
        """Every term, in term-id order."""
        return sorted(self.vocab, key=self.vocab.__getitem__)

    @classmethod
    def restore(cls, terms: list[str], arrays: dict[str, np.ndarray], n_rows: int) -> KeywordIndex:
        """The index :meth:`arrays` and :meth:`terms` described; ValueError if they do not
        fit together (a damaged snapshot)."""
        k = cls.__new__(cls)
        k.n_rows = n_rows
        k._init_caches()
        k.order, k.indptr, k.rows = arrays["order"], arrays["indptr"], arrays["rows"]
        k.tf, k.length_norm = arrays["tf"], arrays["length_norm"]
        k.vocab = {t: i for i, t in enumerate(terms)}
        ok = (len(k.vocab) == len(terms) and len(k.indptr) == len(terms) + 1
              and len(k.order) == n_rows and len(k.length_norm) == n_rows
              and k.indptr.dtype == np.int64 and k.rows.dtype == np.int32
              and k.tf.dtype in (np.uint8, np.uint16) and k.length_norm.dtype == np.float64
              and int(k.indptr[0]) == 0 and int(k.indptr[-1]) == len(k.rows) == len(k.tf)
              and not bool(np.any(np.diff(k.indptr) < 0)))  # fmt: skip
        if ok and len(k.rows):
            ok = (int(k.rows.min()) >= 0 and int(k.rows.max()) < n_rows
                  and _ascending_per_term(k.rows, k.indptr))
        if not ok:
            raise ValueError("keyword postings that do not fit together")
        return k

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.tf.nbytes + self.indptr.nbytes
                   + self.length_norm.nbytes)  # fmt: skip

    @property
    def kept_postings(self) -> int:
        """Postings whose parts are kept for the calls to come (at most ``VALUES_CACHED``)."""
        return self._kept_size

    def doc_freqs(self, terms: Sequence[str]) -> dict[str, int]:
        """How many rows hold each term (as FTS5's ``fts5vocab`` counts them); 0 if none."""
        out = {}
        for t in terms:
            j = self.vocab.get(t)
            out[t] = 0 if j is None else int(self.indptr[j + 1] - self.indptr[j])
        return out

    def weights(self, a: int, b: int) -> np.ndarray:
        """BM25 term-frequency parts of postings ``[a, b)``."""
        tf = self.tf[a:b].astype(np.float64)
        return tf * (K1 + 1.0) / (tf + self.length_norm[self.rows[a:b]])

    def _slots(self, terms: Sequence[str]) -> list[tuple[int, float]]:
        """Each known term of the question (a term given twice counts twice, as in FTS5),
        in question order: its id and its IDF."""
        n = self.n_rows
        out = []
        for t in terms:
            j = self.vocab.get(t.lower())
            if j is None:
                continue
            hits = int(self.indptr[j + 1] - self.indptr[j])
            idf = math.log((n - hits + 0.5) / (hits + 0.5))
            out.append((j, idf if idf > 0 else 1e-6))
        return out

    def _max_weight(self, j: int) -> float:
        """The largest term-frequency part of term ``j``'s postings (computed once a term)."""
        w = self._max_weights.get(j)
        if w is None:
            a, b = int(self.indptr[j]), int(self.indptr[j + 1])
            w = float(self.weights(a, b).max()) if b > a else 0.0
            self._max_weights[j] = w
        return w

    def top(
        self,
        terms: Sequence[str],
        limit: int,
        lo: int = 0,
        hi: int | None = None,
        mask: np.ndarray | None = None,
        *,
        exhaustive: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``limit`` best rows (and their scores) for an OR of ``terms``, among rows
        ``[lo, hi)`` that ``mask`` (over that range) keeps: exactly the rows, scores and order
        of scoring every posting (``exhaustive``, the reference the faster paths must
        equal), without its pass over every row."""
        hi = self.n_rows if hi is None else hi
        slots = self._slots(terms)
        if not slots or limit <= 0:
            return _EMPTY
        if exhaustive:
            return self._top_all(slots, limit, lo, hi, mask)
        if mask is not None or self.prune_unmasked:
            # An outlet's scattered rows: the pruning's lookups of the commoner terms for a
            # few candidates beat testing their every posting against the mask (1.2 vs 1.9
            # ms at 1M, docs/benchmarks.md). A date range or every row: scoring the range's
            # postings measured faster at 100k and 1M (1.4-3.6x, a better p95), as a
            # question's terms are mostly mid-frequency and few can be set aside.
            got = self._top_pruned(slots, limit, lo, hi, mask)
            if got is not None:
                return got
        return self._top_span(slots, limit, lo, hi, mask)

    def _top_all(
        self, slots: list[tuple[int, float]], limit: int, lo: int, hi: int,
        mask: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        n = self.n_rows
        parts_rows: list[np.ndarray] = []
        parts_vals: list[np.ndarray] = []
        for j, idf in slots:
            a, b = int(self.indptr[j]), int(self.indptr[j + 1])
            parts_rows.append(self.rows[a:b])
            parts_vals.append(self.weights(a, b) * idf)
        rows = np.concatenate(parts_rows)
        vals = np.concatenate(parts_vals)
        if lo > 0 or hi < n:
            keep = (rows >= lo) & (rows < hi)
            rows, vals = rows[keep], vals[keep]
        if mask is not None:
            keep = mask[rows - lo]
            rows, vals = rows[keep], vals[keep]
        if not len(rows):
            return _EMPTY
        # bincount adds each row's parts in question order: the sums _top_pruned repeats.
        scores = np.bincount(rows, weights=vals, minlength=n)
        cand = np.flatnonzero(scores > 0)  # a bool scan: ~5x faster than on the floats
        return self._head(cand, scores[cand], limit)

    def _top_span(
        self, slots: list[tuple[int, float]], limit: int, lo: int, hi: int,
        mask: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """:meth:`_top_all`'s answer from the postings inside ``[lo, hi)`` alone (each term's
        found by binary search) and scores counted over that range only; the parts of a
        run of postings are kept for the next call (:meth:`_values`). The same postings in
        the same order are summed from 0.0 as there: the same float64 scores."""
        parts_rows: list[np.ndarray] = []
        parts_vals: list[np.ndarray] = []
        for j, idf in slots:
            a, b = self._span(j, lo, hi)
            if a == b:
                continue
            r = self.rows[a:b]
            if mask is None:
                vals = self._values(j, idf, a, b)
            else:
                keep = mask[r - lo]
                r = r[keep]
                held = self._held(j, a, b)
                # Kept parts masked, else only the kept postings' parts computed.
                vals = held[keep] if held is not None else self._parts(a, b, idf, keep)
            parts_rows.append(r)
            parts_vals.append(vals)
        rows = np.concatenate(parts_rows) if parts_rows else _EMPTY[0]
        if not len(rows):
            return _EMPTY
        vals = np.concatenate(parts_vals)
        if lo > 0:
            rows = rows - lo
        # bincount adds each row's parts in question order: the sums _top_all takes.
        scores = np.bincount(rows, weights=vals, minlength=hi - lo)
        cand = _contenders(scores, len(rows), limit)
        s = scores[cand]
        if lo > 0:
            cand += lo
        return self._head(cand, s, limit)

    def _span(self, j: int, lo: int, hi: int) -> tuple[int, int]:
        """The first and end postings of term ``j`` whose rows are inside ``[lo, hi)``."""
        a, b = int(self.indptr[j]), int(self.indptr[j + 1])
        if lo > 0:
            a += int(np.searchsorted(self.rows[a:b], lo))
        if hi < self.n_rows:
            b = a + int(np.searchsorted(self.rows[a:b], hi))
        return a, b

    def _parts(self, a: int, b: int, idf: float, keep: np.ndarray | None = None) -> np.ndarray:
        """The BM25 parts of postings ``[a, b)`` (those ``keep`` keeps) of a term of IDF
        ``idf``: :meth:`weights` times ``idf``, element by element the same operations."""
        tf, r = self.tf[a:b], self.rows[a:b]
        if keep is not None:
            tf, r = tf[keep], r[keep]
        f = tf.astype(np.float64)
        return f * (K1 + 1.0) / (f + self.length_norm[r]) * idf

    def _held(self, j: int, a: int, b: int) -> np.ndarray | None:
        """The kept parts of postings ``[a, b)`` of term ``j``: kept for that run, or cut
        from the term's whole run; None if neither is kept."""
        with self._kept_lock:
            got = self._kept.get((a, b))
            if got is not None:
                self._kept.move_to_end((a, b))
                return got
            first = int(self.indptr[j])
            whole = self._kept.get((first, int(self.indptr[j + 1])))
        return None if whole is None else whole[a - first : b - first]

    def _values(self, j: int, idf: float, a: int, b: int) -> np.ndarray:
        """:meth:`_parts` of postings ``[a, b)`` of term ``j``, kept (least recently used
        dropped first) for the calls to come: the second keyword search of a translated
        question repeats every term of its first."""
        got = self._held(j, a, b)
        if got is not None:
            return got
        got = self._parts(a, b, idf)
        got.flags.writeable = False
        if len(got) <= VALUES_CACHED // 4:
            with self._kept_lock:
                if (a, b) not in self._kept:
                    self._kept[(a, b)] = got
                    self._kept_size += len(got)
                while self._kept_size > VALUES_CACHED:
                    _, old = self._kept.popitem(last=False)
                    self._kept_size -= len(old)
        return got

    def _head(
        self, cand: np.ndarray, s: np.ndarray, limit: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``limit`` best of rows ``cand`` (ascending) scoring ``s``."""
        if limit < len(cand):
            # Every row tied with the last one kept, so ties are broken as FTS5 breaks them.
            # The limit-th best score (a value, whatever the algorithm that finds it).
            cut = np.partition(s, len(s) - limit)[len(s) - limit]
            head = np.flatnonzero(s >= cut)
        else:
            head = np.arange(len(cand))
        order = head[np.lexsort((self.order[cand[head]], -s[head]))][:limit]
        return cand[order].astype(np.int64, copy=False), s[order]

    def _top_pruned(
        self, slots: list[tuple[int, float]], limit: int, lo: int, hi: int,
        mask: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
        """:meth:`_top_all`'s answer from the rows of the rarer terms only (MaxScore): once
        the ``limit``-th best partial score of those rows beats everything the commoner
        terms can add up to, a row holding only commoner terms cannot reach the head, and
        the commoner terms are looked up for the candidates alone. None when the postings
        to walk are too many for this to pay (then every row is scored)."""
        mult: dict[int, int] = {}
        idf_of: dict[int, float] = {}
        for j, idf in slots:
            mult[j] = mult.get(j, 0) + 1
            idf_of[j] = idf
        span = {j: self._span(j, lo, hi) for j in mult}  # each term's postings in [lo, hi)
        # What each term can add to one row's score at most (a term given twice, twice).
        bound = {j: mult[j] * idf_of[j] * self._max_weight(j) for j in mult}
        ranked = sorted(mult, key=lambda j: (-bound[j], span[j][1] - span[j][0]))
        budget = max(self.n_rows // PRUNE_ROWS_FRACTION, 1)
        rest = sum(bound.values())
        reach = 0.0
        walked = 0
        parts: list[tuple[int, np.ndarray, np.ndarray]] = []  # (term, rows, values)
        cand: np.ndarray | None = None
        for j in ranked:
            a, b = span[j]
            walked += b - a
            if walked > budget:
                return None
            r = self.rows[a:b]
            keep = None if mask is None else mask[r - lo]
            parts.append((j, r if keep is None else r[keep], self._parts(a, b, idf_of[j], keep)))
            cand = None
            rest -= bound[j]
            reach += bound[j]
            if len(parts) == len(ranked):
                break
            if rest * (1 + PRUNE_MARGIN) >= reach:
                continue  # the partial scores cannot beat what the rest may add
            cand = _union([p[1] for p in parts])
            if len(cand) < limit:
                continue
            where = self._positions(cand)
            partial = np.zeros(len(cand), dtype=np.float64)
            for _, r, vals in parts:
                partial[where[r]] += vals  # each row once per term
            theta = float(np.partition(partial, len(cand) - limit)[len(cand) - limit])
            if rest * (1 + PRUNE_MARGIN) < theta * (1 - PRUNE_MARGIN):
                break
        if cand is None:
            cand = _union([p[1] for p in parts])
        if not len(cand):
            return _EMPTY
        where = self._positions(cand)
        # Each term's part of every candidate's score (0 where it does not hold the term).
        contrib: dict[int, np.ndarray] = {}
        for j, r, vals in parts:
            c = np.zeros(len(cand), dtype=np.float64)
            c[where[r]] = vals
            contrib[j] = c
        for j in ranked[len(parts) :]:
            a, b = span[j]
            r = self.rows[a:b]
            c = np.zeros(len(cand), dtype=np.float64)
            if len(r) > LOOKUP_RATIO * len(cand):  # few candidates: look each up
                pos = np.searchsorted(r, cand)
                pos[pos == len(r)] = 0
                hit = np.flatnonzero(r[pos] == cand)
                p = a + pos[hit]
            else:  # else test every posting: ``where`` holds stale places elsewhere
                w = np.minimum(where[r].view(np.uint32), len(cand) - 1)
                held = cand[w] == r
                p = a + np.flatnonzero(held)
                hit = w[held]
            tf = self.tf[p].astype(np.float64)
            c[hit] = tf * (K1 + 1.0) / (tf + self.length_norm[self.rows[p]]) * idf_of[j]
            contrib[j] = c
        # Summed in question order from 0.0, as bincount sums: the same float64 scores.
        scores = np.zeros(len(cand), dtype=np.float64)
        for j, _ in slots:
            scores += contrib[j]
        return self._head(cand, scores, limit)

    def _positions(self, cand: np.ndarray) -> np.ndarray:
        """Per row, its place in ``cand``; only ``cand``'s rows are set, the others hold
        whatever an earlier call left. One array per thread, kept: a fresh one costs a page
        fault every 4 KB (~1 ms at a million rows)."""
        where: np.ndarray | None = getattr(self._scratch, "where", None)
        if where is None or len(where) != self.n_rows:
            where = self._scratch.where = np.zeros(self.n_rows, dtype=np.int32)
        where[cand] = np.arange(len(cand), dtype=np.int32)
        return where


def _ascending_per_term(rows: np.ndarray, indptr: np.ndarray) -> bool:
    """Whether each term's rows ascend strictly, as built: the pruned ``top``'s binary
    searches rely on it. In blocks, so a million chunks' 100M postings never need a
    second full-size array."""
    starts = indptr[1:-1]  # where a term's postings begin: the one place rows may fall
    block = CHECK_BLOCK
    for a in range(1, len(rows), block):
        b = min(a + block, len(rows))
        drop = np.flatnonzero(rows[a:b] <= rows[a - 1 : b - 1]) + a
        if len(drop) and not np.isin(drop, starts).all():
            return False
    return True


def _contenders(scores: np.ndarray, postings: int, limit: int) -> np.ndarray:
    """The rows (ascending) of ``scores`` that may be among its ``limit`` best: every row
    scoring at least the ``limit``-th best of a strided sample of rows (no lower than the
    ``limit``-th best of all), else every row scoring. Listing every scoring row costs a
    branch mispredicted per row; the sample's few contenders cost ~40% less
    (bench/bm25_bench.py)."""
    stride = min(postings // (SAMPLE_PER_LIMIT * limit), SAMPLE_STRIDE)
    if stride > 1:
        sample = scores[::stride]
        scoring = sample[sample > 0]
        if len(scoring) >= limit:
            bound = np.partition(scoring, len(scoring) - limit)[len(scoring) - limit]
            return np.flatnonzero(scores >= bound)
    return np.flatnonzero(scores > 0)  # a bool scan: ~5x faster than on the floats


def _union(parts: list[np.ndarray]) -> np.ndarray:
    """The rows of ascending row arrays, ascending, each once."""
    if len(parts) == 1:
        return parts[0]
    s = np.sort(np.concatenate(parts))
    if not len(s):
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]
