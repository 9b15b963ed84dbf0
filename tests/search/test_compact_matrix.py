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
