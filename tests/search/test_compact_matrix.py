"""The compact in-memory copy (int8 or float16 rows, candidates re-scored exactly) ranks as
the float32 one, on real vectors of the packaged default model, in a quarter (or half) of
the memory."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from index.embed import make_embedder
from index.models import Filters
from index.search.chunk_matrix import RESCORE_MAX_FACTOR, ChunkMatrix
from index.settings import Settings
from index.storage.store import Facets

DEV = Path(__file__).resolve().parents[2] / "eval" / "squad-it-dev"
START = datetime(2025, 1, 1, tzinfo=UTC)
OUTLETS = ["ansa", "corriere", "reuters", "ilpost", "bbc"]


def _passages(n: int) -> list[str]:
    """Runs of two sentences of the dev-set articles (Italian Wikipedia)."""
    out: list[str] = []
    for line in (DEV / "articles.jsonl").read_text(encoding="utf-8").splitlines():
        sents = [s.strip() for s in json.loads(line)["text"].split(". ") if s.strip()]
        out += [". ".join(sents[i : i + 2]) for i in range(0, len(sents), 2)]
        if len(out) >= n:
            break
    return out[:n]


def _questions(name: str, n: int) -> list[str]:
    lines = (DEV / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(x)["question"] for x in lines[:: max(1, len(lines) // n)][:n]]


@pytest.fixture(scope="module")
def real_vectors() -> tuple[list[Facets], dict[str, np.ndarray], np.ndarray]:
    emb = make_embedder(Settings(_env_file=None))  # type: ignore[call-arg]
    texts = _passages(900)
    vecs = emb.embed_passages(texts)
    ids = [f"c{i}" for i in range(len(texts))]
    facets = [
        Facets(cid, i + 1, int((START + timedelta(hours=7 * i)).timestamp()),
               OUTLETS[(i * 7) % len(OUTLETS)], "it")
        for i, cid in enumerate(ids)
    ]  # fmt: skip
    queries = emb.embed_queries(
        [*_questions("questions-it.jsonl", 40), *_questions("questions-en.jsonl", 20)]
    )
    return facets, dict(zip(ids, np.asarray(vecs, dtype=np.float32), strict=True)), queries


class Fetcher:
    """The float32 vectors by id, as VectorStore.get_vectors returns them; counts the ids."""

    def __init__(self, vectors: Mapping[str, np.ndarray]) -> None:
        self.vectors = vectors
        self.asked: list[int] = []

    def __call__(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        self.asked.append(len(ids))
        return {i: self.vectors[i] for i in ids if i in self.vectors}


def _filters() -> list[Filters]:
    day = timedelta(days=1)
    return [
        Filters(),
        Filters(date_from=START + 30 * day, date_to=START + 150 * day),  # a slice
        Filters(sources=["ansa", "bbc"]),  # a mask over every row
        Filters(date_from=START + 60 * day, sources=["reuters"]),
    ]


@pytest.mark.parametrize(("precision", "row_bytes"), [("int8", 512 + 4), ("float16", 1024)])
def test_compact_rows_rank_as_float32(real_vectors, precision, row_bytes):
    facets, vectors, queries = real_vectors
    dim = len(next(iter(vectors.values())))
    assert dim == 512  # the packaged default model
    full = ChunkMatrix(facets, vectors)
    fetch = Fetcher(vectors)
    compact = ChunkMatrix(facets, fetch, precision=precision)
    assert compact.missing_vectors == 0 and compact.rescores and not full.rescores
    assert full.vector_nbytes == len(facets) * dim * 4
    assert compact.vector_nbytes == len(facets) * row_bytes
    assert compact.matrix.dtype == np.dtype(precision)
    fetch.asked.clear()
    compared = 0
    for f in _filters():
        sel_full, sel = full.select(f), compact.select(f)
        assert (sel.lo, sel.hi, sel.count) == (sel_full.lo, sel_full.hi, sel_full.count)
        for q in queries:
            for n in (10, 60):
                want = full.top(q, sel_full, n)
                got = compact.top(q, sel, n)
                assert [c for c, _ in got] == [c for c, _ in want]
                assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-6)
                compared += 1
    # Every call re-scored a bounded number of rows, never the whole selection.
    assert fetch.asked and max(fetch.asked) <= RESCORE_MAX_FACTOR * 60
    assert compared == len(_filters()) * len(queries) * 2


def test_rounded_scores_are_close_and_used_when_chroma_fails(real_vectors):
    facets, vectors, queries = real_vectors
    full = ChunkMatrix(facets, vectors)
    fetch = Fetcher(vectors)
    compact = ChunkMatrix(facets, fetch, precision="int8")
    everything = compact.select(Filters())
    q = queries[0] / np.linalg.norm(queries[0])
    rounded = compact._scores(q.astype(np.float32), 0, len(compact))
    exact = full._scores(q.astype(np.float32), 0, len(full))
    assert np.abs(rounded - exact).max() < 0.01

    def broken(ids: Sequence[str]) -> dict[str, np.ndarray]:
        raise RuntimeError("chroma is down")

    compact._exact = broken
    got = compact.top(queries[0], everything, 20)
    want = full.top(queries[0], full.select(Filters()), 20)
    assert len(got) == 20
    assert len({c for c, _ in got} & {c for c, _ in want}) >= 16
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=0.01)


def test_precision_is_checked(real_vectors):
    facets, vectors, _ = real_vectors
    with pytest.raises(ValueError, match="precision"):
        ChunkMatrix(facets, vectors, precision="int4")  # type: ignore[arg-type]


def test_outlet_rows_select_what_a_mask_over_every_row_selects(real_vectors):
    facets, vectors, queries = real_vectors
    # Both languages, so outlet and language filters combine.
    mixed = [Facets(f.chunk_id, f.rowid, f.ts, f.source_key, "it" if i % 3 else "en")
             for i, f in enumerate(facets)]  # fmt: skip
    compact = ChunkMatrix(mixed, Fetcher(vectors), precision="int8")
    full = ChunkMatrix(mixed, vectors)
    day = timedelta(days=1)
    cases = [
        Filters(sources=["ansa"]),
        Filters(sources=["bbc", "reuters", "nowhere"]),
        Filters(sources=["nowhere"]),
        Filters(sources=["r%"], date_from=START + 40 * day, date_to=START + 90 * day),
        Filters(sources=["corriere"], langs=["en"]),
        Filters(sources=["ilpost", "bbc"], langs=["it", "en"]),
        Filters(langs=["en"], date_from=START + 10 * day),
    ]
    for f in cases:
        sel = compact.select(f)
        lo, hi = sel.lo, sel.hi
        keep = np.ones(hi - lo, dtype=bool)
        if f.sources:
            ok = [i for i, k in enumerate(compact.source_keys)
                  if any(s.strip("%") in k for s in f.sources)]  # fmt: skip
            keep &= np.isin(compact.source_code[lo:hi], ok)
        if f.langs:
            keep &= np.isin(compact.lang_code[lo:hi], [compact.langs.index(x) for x in f.langs])
        assert sel.count == int(np.count_nonzero(keep)), f
        if sel.mask is None:
            assert sel.count == hi - lo and sel.rows is None
            continue
        assert np.array_equal(sel.mask, keep), f
        if sel.rows is not None:
            assert np.array_equal(sel.rows, lo + np.flatnonzero(keep)), f
        for q in queries[:10]:
            got, want = compact.top(q, sel, 10), full.top(q, full.select(f), 10)
            assert [c for c, _ in got] == [c for c, _ in want], f
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-6)
    assert compact.select(Filters(sources=["nowhere"])).count == 0


@pytest.mark.parametrize("precision", ["int8", "float16"])
def test_rescoring_from_the_rows_file_is_fetching_by_id(real_vectors, tmp_path, precision):
    facets, vectors, queries = real_vectors
    full = ChunkMatrix(facets, vectors)
    fetched = ChunkMatrix(facets, Fetcher(vectors), precision=precision)
    fetch = Fetcher(vectors)
    filed = ChunkMatrix(facets, fetch, precision=precision, exact_file=tmp_path / "rows.f32")
    assert filed.exact_rows is not None and filed.exact_writer is not None
    assert fetched.rescores and not filed.rescores
    fetch.asked.clear()
    for f in _filters()[1:]:
        for q in queries:
            got = filed.top(q, filed.select(f), 60)
            assert got == fetched.top(q, fetched.select(f), 60)  # bit for bit
            want = full.top(q, full.select(f), 60)
            assert [c for c, _ in got] == [c for c, _ in want]
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-6)
    assert fetch.asked == []  # nothing asked of the vector store
    filed.exact_writer.commit()
    assert (tmp_path / "rows.f32").exists() and not list(tmp_path.glob("*.tmp"))
    filed.drop_exact_file()  # after commit: nothing left to drop
    assert (tmp_path / "rows.f32").exists()
