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
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

__all__ = ["KeywordIndex"]

K1 = 1.2
B = 0.75
# unicode61's token characters: letters and digits (the bodies are folded already).
_TOKEN = re.compile(r"[^\W_]+")
BUILD_ROWS = 8192  # rows tokenized at a time while building


class KeywordIndex:
    """Postings of every term: the rows holding it and their BM25 term-frequency parts."""

    def __init__(self, bodies: Sequence[str], order: np.ndarray | None = None) -> None:
        """``order``: per row, the key that orders equal scores (FTS5's rowid), else the row."""
        n = len(bodies)
        self.order = np.arange(n) if order is None else np.asarray(order)
        self.n_rows = n
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
            ok = int(k.rows.min()) >= 0 and int(k.rows.max()) < n_rows
        if not ok:
            raise ValueError("keyword postings that do not fit together")
        return k

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.tf.nbytes + self.indptr.nbytes
                   + self.length_norm.nbytes)  # fmt: skip

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

    def top(
        self,
        terms: Sequence[str],
        limit: int,
        lo: int = 0,
        hi: int | None = None,
        mask: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``limit`` best rows (and their scores) for an OR of ``terms``, among rows
        ``[lo, hi)`` that ``mask`` (over that range) keeps."""
        hi = self.n_rows if hi is None else hi
        parts_rows: list[np.ndarray] = []
        parts_vals: list[np.ndarray] = []
        n = self.n_rows
        for t in terms:  # as FTS5 does, a term given twice counts twice
            j = self.vocab.get(t.lower())
            if j is None:
                continue
            a, b = int(self.indptr[j]), int(self.indptr[j + 1])
            hits = b - a
            idf = math.log((n - hits + 0.5) / (hits + 0.5))
            parts_rows.append(self.rows[a:b])
            parts_vals.append(self.weights(a, b) * (idf if idf > 0 else 1e-6))
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
        if not parts_rows or limit <= 0:
            return empty
        rows = np.concatenate(parts_rows)
        vals = np.concatenate(parts_vals)
        if lo > 0 or hi < n:
            keep = (rows >= lo) & (rows < hi)
            rows, vals = rows[keep], vals[keep]
        if mask is not None:
            keep = mask[rows - lo]
            rows, vals = rows[keep], vals[keep]
        if not len(rows):
            return empty
        scores = np.bincount(rows, weights=vals, minlength=n)
        cand = np.flatnonzero(scores > 0)  # a bool scan: ~5x faster than on the floats
        s = scores[cand]
        if limit < len(cand):
            # Every row tied with the last one kept, so ties are broken as FTS5 breaks them.
            cut = s[np.argpartition(-s, limit - 1)[limit - 1]]
            head = np.flatnonzero(s >= cut)
        else:
            head = np.arange(len(cand))
        order = head[np.lexsort((self.order[cand[head]], -s[head]))][:limit]
        return cand[order], s[order]
