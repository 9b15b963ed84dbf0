"""The in-memory BM25's pruned top (index/search/keyword_memory.py) returns exactly what
scoring every posting returns: the same rows, the same float64 scores bit for bit, the same
order of ties, over many random questions, filters and limits on a corpus shaped like news
text (a few very common words, a long tail of rare ones, words repeated within a passage,
passages repeated word for word so that scores tie)."""

from __future__ import annotations

import numpy as np
import pytest

from index.search.keyword_memory import KeywordIndex


def _corpus(rng: np.random.Generator, n: int, vocab: int) -> tuple[list[str], np.ndarray]:
    words = [f"w{i}" for i in range(vocab)]
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()
    bodies = []
    for _ in range(n):
        if bodies and rng.random() < 0.08:
            bodies.append(bodies[int(rng.integers(len(bodies)))])  # a tie, word for word
            continue
        length = int(rng.integers(0, 60))
        picked = rng.choice(vocab, size=length, p=p)
        if length and rng.random() < 0.2:
            picked = np.concatenate([picked, np.repeat(picked[:1], int(rng.integers(2, 9)))])
        bodies.append(" ".join(words[i] for i in picked))
    order = rng.permutation(n) * 3 + 7  # rowids in another order than the rows
    return bodies, order


def _terms(rng: np.random.Generator, vocab: int) -> list[str]:
    k = int(rng.integers(1, 12))
    common = rng.integers(0, 8, size=k)
    rare = rng.integers(0, vocab + 50, size=k)  # some beyond the vocabulary: unknown
    picked = np.where(rng.random(k) < 0.45, common, rare)
    terms = [f"w{i}" for i in picked]
    if rng.random() < 0.3:
        terms.append(terms[0])  # a term given twice counts twice
    if rng.random() < 0.2:
        terms[-1] = terms[-1].upper()
    return terms


def _assert_identical(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]):
    assert got[0].tolist() == want[0].tolist()
    # Bit for bit, not approximately.
    assert got[1].dtype == want[1].dtype == np.float64
    assert got[1].tobytes() == want[1].tobytes()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pruned_top_equals_every_posting_scored(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n, vocab = 4000, 3000
    bodies, order = _corpus(rng, n, vocab)
    k = KeywordIndex(bodies, order)
    full = 0  # calls that scored every row
    original = vars(KeywordIndex)["_top_all"]

    def counted(self, *args, **kwargs):
        nonlocal full
        full += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(KeywordIndex, "_top_all", counted)
    # Unfiltered questions score every row by default (measured no faster pruned): here
    # every shape goes through the pruning, which must equal the reference everywhere.
    monkeypatch.setattr(KeywordIndex, "prune_unmasked", True)
    pruned = 0
    for _ in range(400):
        terms = _terms(rng, vocab)
        limit = int(rng.choice([1, 2, 5, 10, 40, 100, 300, 5000]))
        lo, hi, mask = 0, None, None
        shape = rng.random()
        if shape < 0.3:
            lo = int(rng.integers(0, n))
            hi = int(rng.integers(lo, n + 1))
        if 0.2 < shape < 0.5:
            width = (hi if hi is not None else n) - lo
            mask = rng.random(width) < rng.choice([0.05, 0.3, 0.9])
        want = k.top(terms, limit, lo, hi, mask, exhaustive=True)
        before = full
        got = k.top(terms, limit, lo, hi, mask)
        pruned += full == before
        _assert_identical(got, want)
    # Most questions were answered by pruning, not by scoring every row.
    assert pruned > 200


def test_unfiltered_questions_score_every_row_by_default():
    rng = np.random.default_rng(3)
    bodies, order = _corpus(rng, 500, 300)
    k = KeywordIndex(bodies, order)
    terms = _terms(rng, 300)
    assert KeywordIndex.prune_unmasked is False
    _assert_identical(k.top(terms, 10), k.top(terms, 10, exhaustive=True))


@pytest.mark.parametrize("block", [7, 1 << 23])
def test_a_restored_index_whose_postings_do_not_ascend_is_refused(block, monkeypatch):
    import index.search.keyword_memory as km

    monkeypatch.setattr(km, "CHECK_BLOCK", block)
    rng = np.random.default_rng(5)
    bodies, order = _corpus(rng, 300, 200)
    k = KeywordIndex(bodies, order)
    arrays = {name: a.copy() for name, a in k.arrays().items()}
    again = KeywordIndex.restore(k.terms(), arrays, k.n_rows)  # as saved: accepted
    terms = _terms(rng, 200)
    _assert_identical(again.top(terms, 20, 10, 250), k.top(terms, 20, 10, 250))
    # A term with at least 3 postings gets two of them swapped: a damaged file whose sizes
    # all still fit together.
    lens = np.diff(arrays["indptr"])
    j = int(np.flatnonzero(lens >= 3)[0])
    a = int(arrays["indptr"][j])
    rows = arrays["rows"]
    rows[a + 1], rows[a + 2] = rows[a + 2], rows[a + 1]
    with pytest.raises(ValueError, match="do not fit together"):
        KeywordIndex.restore(k.terms(), arrays, k.n_rows)


@pytest.mark.parametrize("seed", [4, 5])
def test_kept_parts_and_sampled_contenders_give_every_posting_scored(seed, monkeypatch):
    """The range-scoring path keeps each run of postings' parts for the calls to come
    (a translated question's second search repeats its first's terms) and lists the head's
    contenders from a sample of rows: over repeated questions, date ranges cut from kept
    whole terms, an eviction bound a few terms wide, still bit for bit the reference."""
    import index.search.keyword_memory as km

    monkeypatch.setattr(km, "VALUES_CACHED", 4000)  # a few terms: evicted all along
    rng = np.random.default_rng(seed)
    n, vocab = 4000, 3000
    bodies, order = _corpus(rng, n, vocab)
    k = KeywordIndex(bodies, order)
    asked: list[list[str]] = []
    sizes = []
    for _ in range(300):
        if asked and rng.random() < 0.5:  # asked again, or with more words (a second pass)
            terms = list(asked[int(rng.integers(len(asked)))])
            if rng.random() < 0.5:
                terms += _terms(rng, vocab)
        else:
            terms = _terms(rng, vocab)
        asked.append(terms)
        limit = int(rng.choice([1, 2, 5, 10, 40, 100, 5000]))
        lo, hi = 0, None
        if rng.random() < 0.4:
            lo = int(rng.integers(0, n))
            hi = int(rng.integers(lo, n + 1))
        _assert_identical(k.top(terms, limit, lo, hi), k.top(terms, limit, lo, hi, exhaustive=True))
        sizes.append(k.kept_postings)
    assert max(sizes) <= 4000 and min(sizes[50:]) > 0
