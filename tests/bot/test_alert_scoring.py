"""The follows' keyword shares, counted with numpy, against the loop they replaced.

:meth:`FollowIndex.scores` used to walk the inverted index one (chunk, follow, group) hit at
a time in Python. The loop below is that walk as it was written; on the built-in sample's
articles (split into chunks) and follows made from its story names, the counted shares
must be the same numbers, and so the same alerts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bot.alerts.matching import Bars, Batch, FollowIndex, lead_words
from bot.alerts.store import Follow
from index.digest.topic import stem_variants
from index.storage import keywords
from index.storage.store import ArticleRecord

SAMPLE = Path(__file__).parents[2] / "index" / "sample" / "current-events-2025q4.jsonl"


def reference_match(index: FollowIndex, batch: Batch) -> np.ndarray:
    match = np.zeros((len(index.follows), len(batch.articles)), dtype=np.float64)
    for c, stems in enumerate(batch.chunk_stems):
        hit: dict[int, set[int]] = {}
        for term in stems & index.vocab:
            for f, g in index.postings[term]:
                hit.setdefault(f, set()).add(g)
        a = int(batch.chunk_article[c])
        for f, groups in hit.items():
            w = index.weights[f]
            share = sum(w[g] for g in groups) / index.totals[f]
            if share > match[f, a]:
                match[f, a] = share
    return match


def sample_rows() -> list[dict[str, str]]:
    rows = [json.loads(line) for line in SAMPLE.open(encoding="utf-8") if line.strip()]
    rows.sort(key=lambda r: (r["published"], r["id"]))
    return rows


def test_keyword_shares_of_a_batch_are_the_per_hit_loops() -> None:
    rows = sample_rows()
    rng = np.random.default_rng(5)
    names = list(dict.fromkeys(n.strip() for r in rows for n in (r.get("story") or "").split(",")
                               if n.strip()))
    follows = []
    for i, text in enumerate([*names, "Gaza war ceasefire talks", "alluvione Emilia"]):
        groups = [sorted(g) for g in keywords.query_terms(text)]
        follows.append(Follow(
            id=i + 1, chat_id=i + 1, chat_type="private", title="", query=text, words=text,
            sources=[], langs=[], lang="en", model_id="m",
            vector=rng.normal(size=4).astype(np.float32), terms=groups,
            weights=[float(x) for x in rng.uniform(0.2, 5.0, size=len(groups))]))
    index = FollowIndex.build(follows)
    batch_rows = rows[-120:]
    arts, chunk_article, stems = [], [], []
    for i, r in enumerate(batch_rows):
        arts.append(ArticleRecord(r["id"], r.get("title") or "", r["text"], None, None,
                                  r.get("source"), r.get("lang"), None, None,
                                  datetime(2025, 12, 3, tzinfo=UTC)))
        words = r["text"].split()
        for part in (words[:len(words) // 2], words[len(words) // 2:]) if i % 3 else (words,):
            chunk_article.append(i)
            stems.append(frozenset(stem_variants(" ".join(part), r.get("lang"))))
    batch = Batch(arts, np.asarray(chunk_article, dtype=np.int64),
                  rng.normal(size=(len(stems), 4)).astype(np.float32), stems,
                  [lead_words(a.title, a.text) for a in arts])
    dense, match = index.scores(batch)
    want = reference_match(index, batch)
    assert (want > 0.5).sum() > 50  # the sample's names do hit its articles
    np.testing.assert_allclose(match, want, rtol=1e-12, atol=0)
    bars = Bars(min_dense=0.99, min_match=0.5)
    passing = (dense >= bars.min_dense) | (want >= bars.min_match - 1e-9)
    assert sorted(index.match(batch, bars).items()) == sorted(
        (f, [int(a) for a in np.flatnonzero(passing[f])]) for f in range(len(follows))
        if passing[f].any())
