"""The keyword side of the alerts' gate for a whole batch: each follow's share of its
keyword groups that each chunk holds, weighted by the words' rarity (the digests' keyword
bar, :func:`index.digest.topic.topic_article_ids`).

The follows' inverted index (stem → (follow, group)) finds tens of thousands of
(chunk, follow, group) hits in a batch of 100 articles against 1,000 follows; they are
deduplicated and summed with numpy rather than one by one in Python (docs/alerts.md, "Cost").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def keyword_shares(
    chunk_stems: Sequence[frozenset[str]],
    postings: Mapping[str, Sequence[tuple[int, int]]],
    vocab: frozenset[str],
    weights: Sequence[Sequence[float]],
    totals: np.ndarray,
) -> np.ndarray:
    """chunks × follows: the summed weight of the follow's groups (``weights[f][g]``) any of
    whose stems the chunk holds, over the follow's total (``totals[f]``)."""
    n_f = len(weights)
    width = max((len(w) for w in weights), default=0) or 1
    span = n_f * width  # a group's number: its follow's row × width + its own index
    group_weight = np.zeros(span, dtype=np.float64)
    for f, w in enumerate(weights):
        group_weight[f * width:f * width + len(w)] = w
    numbered: dict[str, np.ndarray] = {}
    parts: list[np.ndarray] = []
    chunk_of: list[int] = []
    for c, stems in enumerate(chunk_stems):
        for term in stems & vocab:
            if (got := numbered.get(term)) is None:
                pairs = np.asarray(postings[term], dtype=np.int64).reshape(-1, 2)
                got = numbered[term] = pairs[:, 0] * width + pairs[:, 1]
            parts.append(got)
            chunk_of.append(c)
    shares: np.ndarray = np.zeros(len(chunk_stems) * n_f, dtype=np.float64)
    if parts:
        lens = [len(p) for p in parts]
        keys = np.unique(np.repeat(np.asarray(chunk_of, dtype=np.int64), lens) * span
                         + np.concatenate(parts))  # sorted: a follow's groups in order
        chunk, group = np.divmod(keys, span)
        shares = np.bincount(chunk * n_f + group // width, weights=group_weight[group],
                             minlength=len(shares))
    return shares.reshape(len(chunk_stems), n_f) / totals
