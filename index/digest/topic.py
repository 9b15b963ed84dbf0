"""Which articles of a period are about a digest's topic, judged as a question's search would."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from index.digest.grouping import GroupingParams
from index.models import Filters
from index.storage import keywords
from index.storage.store import Store

__all__ = [
    "topic_scores",
]


TOPIC_MIN_MATCH = 0.5  # rarity-weighted share of the topic's words an article must hold


@dataclass(slots=True)
class TopicScore:
    """How an article relates to a topic: its best chunk's dense similarity and the
    rarity-weighted fraction of the topic's words it contains."""

    dense: float = 0.0
    match: float = 0.0


async def topic_scores(
    retriever: Any, topic: str, since: datetime, until: datetime, n_chunks: int
) -> tuple[dict[str, TopicScore], float]:
    """Every article of the period that the topic's search reaches, with its scores, and the
    retrieval's own keyword bar (``min_match``)."""
    from index.search.retrieval import Retriever

    base: Retriever = retriever
    wide = max(base.params.dense_candidates, min(n_chunks, base.params.filtered_exact_limit))
    params = replace(base.params, dense_candidates=wide, bm25_candidates=wide)
    r = base.with_params(params)
    search = await r.search(topic, Filters(date_from=since, date_to=until))
    await r.load_records(search, [x.chunk_id for x in search.ranked])
    groups = keywords.query_terms(topic)
    weights = await _term_weights(base.store, groups)
    total = sum(weights) or 1.0
    out: dict[str, TopicScore] = {}
    for ranked in search.ranked:
        rec = search.records.get(ranked.chunk_id)
        if rec is None:
            continue
        score = out.setdefault(rec.article_id, TopicScore())
        score.dense = max(score.dense, ranked.dense or 0.0)
        if groups and score.match < 1.0:
            stems = _stem_variants(f"{rec.title}\n{rec.text}", rec.lang)
            matched = sum(w for g, w in zip(groups, weights, strict=True) if g & stems)
            score.match = max(score.match, matched / total)
    return out, params.min_match


async def topic_article_ids(
    retriever: Any,
    topic: str,
    since: datetime,
    until: datetime,
    n_chunks: int,
    topic_min_dense: float = GroupingParams().topic_min_dense,
) -> set[str]:
    """Articles of the period that the retrieval would call relevant to ``topic``.

    The same hybrid search as a question (same encoder, keyword analysis and date filter),
    restricted to the period, with every chunk of the period as a candidate. The retrieval's
    relevance bar is meant for the *best* hit of a question; a filter judges every article,
    so two things are stricter here:

    - keywords: the topic's words must reach the retrieval's ``min_match`` fraction
      *weighted by their rarity* in the index (BM25's IDF), so "war" alone does not make a
      Gaza report match "Ukraine war", while "Gaza Ukraine" still matches either;
    - dense: ``topic_min_dense`` (per model, see ``GROUPING_PARAMS``) instead of the
      question's ``min_dense``, because one-word topics give cosines little spread (with
      MiniLM a Colombian cult story scores 0.35 against "Gaza hostages").
    """
    scores, min_match = await topic_scores(retriever, topic, since, until, n_chunks)
    # The question gate favours answering (a refusal costs more than a weak hit); a topic
    # filter judges every article of the period, so it keeps a bar of its own.
    min_match = max(min_match, TOPIC_MIN_MATCH)
    min_dense = max(retriever.params.min_dense, topic_min_dense)
    return {a for a, s in scores.items() if s.dense >= min_dense or s.match >= min_match}


def _stem_variants(text: str, lang: str | None) -> set[str]:
    """Words and their stems in the text's and the query languages, as retrieval matches."""
    words = set(keywords.tokens(text))
    stems = set(words)
    for code in {lang or "", *keywords.QUERY_LANGS}:
        stems.update(keywords.stem_words(list(words), code))
    return stems


async def _term_weights(store: Store, groups: list[set[str]]) -> list[float]:
    """BM25's IDF of each query word (its most frequent stem variant) over the indexed chunks.

    A word absent from the index gets the highest weight: it is as specific as words get.
    """
    if not groups:
        return []
    terms = sorted({t for g in groups for t in g})
    freqs = await store.doc_freqs(terms)
    df = {t: d for t, d in freqs.items() if d > 0}
    n = await store.chunk_count()

    def idf(d: int) -> float:
        return math.log(1.0 + (n - d + 0.5) / (d + 0.5))

    top = idf(0)
    return [idf(max(df.get(t, 0) for t in g)) if any(t in df for t in g) else top for g in groups]
