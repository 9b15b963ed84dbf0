"""Which passages after the first earn their place in a reply.

A ranking always has a next item; a reply should not. A reader shown three passages where
only the first is about the question ("Meloni" → the right article, then ants and Moldova)
learns to distrust the first too. So a later passage is kept only when it is relevant on its
own terms: scored close to the first (``MIN_SCORE_RATIO`` of its fused score), or quoting at
least as many of the question's words as the first does. The first passage is the relevance
gate's business (``Retriever.is_relevant``), not this one's.

Measured on eval/squad-it-dev (docs/retrieval.md): the share of shown passages from a gold
article rises from 0.35 to 0.43 (Italian) and 0.31 to 0.35 (English→Italian), hit@3 within
0.002.
"""

from __future__ import annotations

from collections.abc import Sequence

from index.models import Hit
from index.storage import keywords

MIN_SCORE_RATIO = 0.6


def _coverage(groups: Sequence[frozenset[str]], text: str) -> float:
    if not groups:
        return 0.0
    words: set[str] = set()
    for w in keywords.tokens(text):
        words |= keywords.query_variants(w)
    return sum(1 for g in groups if g & words) / len(groups)


def earned(hits: Sequence[Hit], query: str, *, min_ratio: float = MIN_SCORE_RATIO) -> list[Hit]:
    """``hits`` without the later passages that are only next in line."""
    if len(hits) <= 1:
        return list(hits)
    top = hits[0]
    groups = [frozenset(g) for g in keywords.query_terms(query)]
    top_cov = _coverage(groups, top.quote)
    kept = [top]
    for hit in hits[1:]:
        close = top.score <= 0 or hit.score >= min_ratio * top.score
        if close or (top_cov > 0 and _coverage(groups, hit.quote) >= top_cov):
            kept.append(hit)
    return kept
