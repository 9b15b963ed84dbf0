"""Which articles of a period are about a digest's topic, judged as a question's search would."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from index.digest.grouping import GroupingParams
from index.digest.period import candidate_ids, lead_vectors
from index.models import Filters
from index.storage import keywords
from index.storage.store import Store

__all__ = [
    "article_lead",
    "lead_words",
    "topic_article_ids",
    "topic_scores",
]


TOPIC_MIN_MATCH = 0.5  # rarity-weighted share of the topic's words an article must hold
LEAD_SENTENCES = 2  # what a story is about: its headline and its text's first sentences
LEAD_MAX_CHARS = 600
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»”)]*\s+|\n\s*\n")


def article_lead(title: str, text: str) -> str:
    """Headline and the first sentences: where a story says what it is about. A word further
    down ("… during the wave of bad weather …") is a passing mention, not the subject."""
    body = text.strip()
    cut = 0
    for _ in range(LEAD_SENTENCES):
        m = _SENTENCE_END.search(body, cut)
        if m is None:
            cut = len(body)
            break
        cut = m.end()
    return f"{title}\n{body[: min(cut or len(body), LEAD_MAX_CHARS)]}"


@dataclass(slots=True)
class TopicScore:
    """How an article relates to a topic: its best chunk's dense similarity and the
    rarity-weighted fraction of the topic's words it contains."""

    dense: float = 0.0
    match: float = 0.0
    word: float = 0.0  # the topic's best cosine with one word of the lead (lead_only)


async def topic_scores(
    retriever: Any,
    topic: str,
    since: datetime,
    until: datetime,
    n_chunks: int,
    *,
    lead_only: bool = True,
    article_ids: Sequence[str] | None = None,
    with_words: bool = False,
) -> tuple[dict[str, TopicScore], float]:
    """Every article of the period with its scores, and the retrieval's keyword bar.

    With ``lead_only`` (the digests' and alerts' gate) both scores read only what the
    article is about: the keywords are looked for in its headline and first sentences
    (:func:`article_lead`), and the dense score is the topic's cosine with the stored vector
    of its first chunk, so a hospital report that mentions the bad weather in its fifth
    paragraph is not a "maltempo" story. ``article_ids`` are the
    period's articles when the caller has them (else they are looked up). Without
    ``lead_only``, the old gate: every chunk the topic's hybrid search reaches counts.
    ``with_words`` (lead_only) also scores each lead's words (:func:`_word_scores`).
    """
    if lead_only:
        return await _lead_scores(retriever, topic, since, until, article_ids, with_words)
    from index.search.retrieval import Retriever

    base: Retriever = retriever
    wide = max(base.params.dense_candidates, min(n_chunks, base.params.filtered_exact_limit))
    params = replace(base.params, dense_candidates=wide, bm25_candidates=wide)
    r = base.with_params(params)
    search = await r.search(topic, Filters(date_from=since, date_to=until))
    await r.load_records(search, [x.chunk_id for x in search.ranked])
    groups = keywords.query_terms(topic)
    weights = await term_weights(base.store, groups)
    total = sum(weights) or 1.0
    out: dict[str, TopicScore] = {}
    for ranked in search.ranked:
        rec = search.records.get(ranked.chunk_id)
        if rec is None:
            continue
        score = out.setdefault(rec.article_id, TopicScore())
        score.dense = max(score.dense, ranked.dense or 0.0)
        if groups and score.match < 1.0:
            stems = stem_variants(f"{rec.title}\n{rec.text}", rec.lang)
            matched = sum(w for g, w in zip(groups, weights, strict=True) if g & stems)
            score.match = max(score.match, matched / total)
    return out, params.min_match


async def _lead_scores(
    retriever: Any,
    topic: str,
    since: datetime,
    until: datetime,
    article_ids: Sequence[str] | None,
    with_words: bool = False,
) -> tuple[dict[str, TopicScore], float]:
    store: Store = retriever.store
    ids = list(article_ids) if article_ids is not None else await candidate_ids(
        store, since, until, limit=20000
    )
    out: dict[str, TopicScore] = {}
    if not ids:
        return out, retriever.params.min_match
    records = await store.articles(ids)
    ids = [i for i in ids if i in records]
    vecs = await lead_vectors(store, retriever.vectors, ids)
    q = np.asarray(await retriever.encoder.encode(topic), dtype=np.float32).reshape(-1)
    dense = np.zeros(len(ids), dtype=np.float32)
    if vecs.shape[1] == q.shape[0]:
        norms = np.linalg.norm(vecs, axis=1) * max(float(np.linalg.norm(q)), 1e-9)
        dense = (vecs @ q) / np.maximum(norms, 1e-9)
    groups = keywords.query_terms(topic)
    weights = await term_weights(store, groups)
    total = sum(weights) or 1.0
    leads = {aid: article_lead(records[aid].title, records[aid].text) for aid in ids}
    word = await _word_scores(retriever, topic, q, leads) if with_words else {}
    def score_all() -> None:  # stemming every lead of a week: off the event loop
        for i, aid in enumerate(ids):
            match = 0.0
            if groups:
                stems = stem_variants(leads[aid], records[aid].lang)
                match = sum(w for g, w in zip(groups, weights, strict=True) if g & stems)
                match /= total
            out[aid] = TopicScore(dense=float(dense[i]), match=match, word=word.get(aid, 0.0))

    await asyncio.to_thread(score_all)
    return out, retriever.params.min_match


_WORD_CACHE: dict[tuple[str, str], np.ndarray] = {}
_WORD_CACHE_MAX = 30000


def lead_words(lead: str, topic_words: set[str]) -> set[str]:
    """Content words of a lead; fragments of the topic's own words ("tempo" in "maltempo")
    are left out: they are spelling, not meaning."""
    out = set()
    for w in keywords.tokens(lead):
        f = keywords.fold(w)
        if len(f) < 4 or f.isdigit() or f in keywords.STOPWORDS:
            continue
        if any(f in t or t in f for t in topic_words):
            continue
        out.add(f)
    return out


async def _word_scores(
    retriever: Any, topic: str, q: np.ndarray, leads: dict[str, str]
) -> dict[str, float]:
    """Each lead's best cosine between the topic and one of its words.

    With the default USE v3 a one-word topic and a whole lead have cosines near zero
    whatever they say ("maltempo" and a snow alert: 0.04); word against word the model
    knows translations and close variants ("Ucraina" for "Ukraine"), and at its bar (0.70,
    bench/story_eval.py --topic-gates) that adds recall without losing precision. Looser
    kin ("maltempo" ~ "nevicate" 0.50) sits among chance neighbours ("orari" 0.47), so it
    is not reached. Word vectors are cached per model: a period's leads share most words.
    """
    embedder = retriever.embedder
    model = str(getattr(embedder, "model_id", ""))
    topic_words = {f for w in keywords.tokens(topic) if len(f := keywords.fold(w)) >= 4}
    per_lead = {aid: lead_words(text, topic_words) for aid, text in leads.items()}
    vocab = sorted({w for ws in per_lead.values() for w in ws})
    missing = [w for w in vocab if (model, w) not in _WORD_CACHE]
    if missing:
        vecs = await asyncio.to_thread(embedder.embed_passages, missing)
        if len(_WORD_CACHE) + len(missing) > _WORD_CACHE_MAX:
            _WORD_CACHE.clear()
        for w, v in zip(missing, np.asarray(vecs, dtype=np.float32), strict=True):
            _WORD_CACHE[(model, w)] = (v / max(float(np.linalg.norm(v)), 1e-9)).astype(
                np.float16
            )
    qn = q / max(float(np.linalg.norm(q)), 1e-9)
    sims = {
        w: float(_WORD_CACHE[(model, w)].astype(np.float32) @ qn)
        for w in vocab if (model, w) in _WORD_CACHE
    }
    return {aid: max((sims.get(w, 0.0) for w in ws), default=0.0) for aid, ws in per_lead.items()}


async def topic_article_ids(
    retriever: Any,
    topic: str,
    since: datetime,
    until: datetime,
    n_chunks: int,
    topic_min_dense: float = GroupingParams().topic_min_dense,
    *,
    lead_only: bool = True,
    article_ids: Sequence[str] | None = None,
    topic_min_word: float | None = None,
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
    with_words = lead_only and topic_min_word is not None and topic_min_word <= 1.0
    scores, min_match = await topic_scores(
        retriever, topic, since, until, n_chunks, lead_only=lead_only, article_ids=article_ids,
        with_words=with_words,
    )
    # The question gate favours answering (a refusal costs more than a weak hit); a topic
    # filter judges every article of the period, so it keeps a bar of its own.
    min_match = max(min_match, TOPIC_MIN_MATCH)
    min_dense = max(retriever.params.min_dense, topic_min_dense)
    min_word = topic_min_word if with_words and topic_min_word is not None else 2.0
    return {
        a for a, s in scores.items()
        if s.dense >= min_dense or s.match >= min_match or s.word >= min_word
    }


def stem_variants(text: str, lang: str | None) -> set[str]:
    """Words and their stems in the text's and the query languages, as retrieval matches."""
    words = set(keywords.tokens(text))
    stems = set(words)
    for code in {lang or "", *keywords.QUERY_LANGS}:
        stems.update(keywords.stem_words(list(words), code))
    return stems


async def term_weights(store: Store, groups: list[set[str]]) -> list[float]:
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
