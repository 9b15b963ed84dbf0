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

import math
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["KeywordIndex"]

K1 = 1.2
B = 0.75
# unicode61's token characters: letters and digits (the bodies are folded already).
_TOKEN = re.compile(r"[^\W_]+")


class KeywordIndex:
    """Postings of every term: the rows holding it and their BM25 term-frequency parts."""

    def __init__(self, bodies: Sequence[str], order: np.ndarray | None = None) -> None:
        """``order``: per row, the key that orders equal scores (FTS5's rowid), else the row."""
        n = len(bodies)
        self.order = np.arange(n) if order is None else np.asarray(order)
        self.n_rows = n
        vocab: dict[str, int] = {}
        add = vocab.setdefault
        term_ids: list[int] = []
        lengths = np.zeros(n, dtype=np.int64)
        for i, body in enumerate(bodies):
            toks = _TOKEN.findall(body.lower())
            lengths[i] = len(toks)
            term_ids += [add(t, len(vocab)) for t in toks]
        self.vocab = vocab
        terms = np.asarray(term_ids, dtype=np.int64)
        docs = np.repeat(np.arange(n, dtype=np.int64), lengths)
        pairs, tf = np.unique(terms * max(n, 1) + docs, return_counts=True)
        pair_terms = pairs // max(n, 1)
        self.rows = (pairs % max(n, 1)).astype(np.int32)
        self.indptr = np.searchsorted(pair_terms, np.arange(len(vocab) + 1)).astype(np.int64)
        avgdl = float(lengths.sum()) / n if n else 1.0
        # Per posting only the term frequency is kept (1 byte, 2 for a term repeated over 255
        # times), not its float64 weight: 5 bytes a posting instead of 12 (~0.5 GB less at a
        # million chunks). The weight is computed again for the question's terms, with the
        # very operations that computed it here before, so scores stay bit for bit FTS5's.
        self.tf = tf.astype(np.uint8 if tf.size == 0 or tf.max() < 256 else np.uint16)
        self.length_norm = K1 * (1.0 - B + B * lengths.astype(np.float64) / max(avgdl, 1e-12))

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.tf.nbytes + self.indptr.nbytes
                   + self.length_norm.nbytes)  # fmt: skip

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
