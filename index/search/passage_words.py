"""The folded words of a passage and its headline, cached: the fusion's match fraction
(index/search/fusion.py) and the word translation's vocabulary (index/search/translation.py)
read the words of the same first candidates, and the same top passages come back for many
questions. ``tokens`` splits at the line break between headline and text, so the words are
those of each apart."""

from __future__ import annotations

from functools import lru_cache

from index.storage import keywords

__all__ = ["passage_words"]


@lru_cache(maxsize=4096)
def passage_words(title: str, text: str) -> frozenset[str]:
    return frozenset(keywords.tokens(f"{title}\n{text}"))
