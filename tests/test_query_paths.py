"""The fast paths of filtered and keyword search give the results of the plain ones.

A synthetic store written directly (hashing embedder, no model): thresholds are lowered so
the candidate and over-fetch paths, meant for 100k chunks, run on a few hundred.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import index.retrieval as retrieval_mod
import index.store as store_mod
from index import keywords
from index.embedding import HashingEmbedder
from index.models import Article, Chunk, Filters
from index.retrieval import Retriever
from index.settings import Settings
from index.store import ArticleWrite, Store, _candidate_match, _or_terms
from index.vectors import VectorStore

WORDS = [
    "governo", "riforma", "giustizia", "parlamento", "elezioni", "mercati", "borsa",
    "inflazione", "energia", "gas", "ospedale", "scuola", "sindaco", "regione", "ministro",
    "guerra", "pace", "accordo", "vertice", "europa", "banca", "tribunale", "sciopero", "treni",
    "porto", "neve", "alluvione", "incendio", "calcio", "campionato", "festival",
]  # fmt: skip
OUTLETS = ["ansa", "corriere", "reuters", "ilpost"]
START = datetime(2025, 1, 1, tzinfo=UTC)


def _settings(tmp: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp / "data")  # type: ignore[call-arg]


@pytest.fixture
async def setup(tmp_path):
    emb = HashingEmbedder(32)
    settings = _settings(tmp_path)
    store = await Store.open(settings.sqlite_path)
    vectors = VectorStore.open(settings, emb.model_id, emb.dim)
    rng = random.Random(3)
    run_id, _ = await store.begin_run()
    writes: list[ArticleWrite] = []
    ids: list[str] = []
    texts: list[str] = []
    for a in range(120):
        chunks: list[Chunk] = []
        text = ""
        for o in range(4):
            words = [rng.choice(WORDS[: 8 + (a % 20)]) for _ in range(25)]
            sent = " ".join(words).capitalize() + "."
            if text:
                text += "\n"
            chunks.append(Chunk(f"a{a}", o, len(text), len(text) + len(sent), sent))
            text += sent
        art = Article(
            id=f"a{a}", text=text, title=f"Titolo {a}", url=f"https://x.example/{a}",
            published=START + timedelta(days=a), source=OUTLETS[a % len(OUTLETS)], lang="it",
        )
        cids = [f"a{a}::h::{c.ord}" for c in chunks]
        writes.append(
            ArticleWrite(
                article=art, content_hash=f"h{a}", raw_hash=None, chunks=chunks, chunk_ids=cids,
                fts_bodies=[keywords.analyze(f"{art.title}\n{c.text}", "it") for c in chunks],
                band_keys=[],
            )
        )
        ids.extend(cids)
        texts.extend(c.text for c in chunks)
    await store.write_articles(writes, run_id)
    vectors.upsert(ids, emb.embed_passages(texts))
    r = Retriever(settings, store, emb, vectors)
    yield r
    await store.close()


def test_or_terms_parses_only_plain_or_expressions():
    assert _or_terms('"a" OR "b""c"') is None  # a quote inside: not a plain token
    assert _or_terms('"governo" OR "govern"') == ["governo", "govern"]
    assert _or_terms('"a b"') is None
    assert _or_terms('"a" AND "b"') is None
    assert _or_terms("") is None


def test_candidate_match_pairs_common_words():
    terms = ["rara", "governo", "govern", "borsa", "mercati", "mercat"]
    df = {"rara": 3, "governo": 1500, "govern": 1600, "borsa": 1700, "mercati": 1900,
          "mercat": 1950}  # fmt: skip
    expr = _candidate_match(terms, df)
    assert expr.startswith('("rara")')
    # Words by total frequency; a word's stem variants stay together.
    assert '(("borsa") AND ("governo" OR "govern"))' in expr
    assert expr.count(" AND ") == 3


async def test_fts_candidates_keep_the_top_and_filters_hold(setup, monkeypatch):
    r = setup
    store = r.store
    query = "governo riforma giustizia sindaco treni"
    match = keywords.fts_match(query)
    exact = await store.fts_search(match, 20)
    monkeypatch.setattr(store_mod, "FTS_EXACT_ROWS", 10)
    monkeypatch.setattr(store_mod, "FTS_RARE_ROWS", 30)
    fast = await store.fts_search(match, 20)
    assert fast and fast[0] == exact[0]
    assert len({c for c, _ in fast[:5]} & {c for c, _ in exact[:5]}) >= 4
    got = {c: s for c, s in exact}
    for c, s in fast:  # a candidate's score is its exact bm25
        if c in got:
            assert s == pytest.approx(got[c])
    f = Filters(date_from=START + timedelta(days=30), date_to=START + timedelta(days=60))
    monkeypatch.setattr(store_mod, "FTS_EXACT_ROWS", 10**9)
    as_set = await store.fts_search(match, 20, f)
    monkeypatch.setattr(store_mod, "FTS_FILTER_SET_ROWS", 0)
    per_row = await store.fts_search(match, 20, f)
    assert as_set == per_row and as_set
    passing = set(await store.filtered_chunk_ids(f, 10**6) or [])
    assert {c for c, _ in as_set} <= passing


async def test_dense_paths_agree_with_brute_force(setup, monkeypatch):
    r = setup
    vec = r.embedder.embed_queries(["governo riforma giustizia"])[0]
    f = Filters(sources=["ansa"])
    ids = await r.store.filtered_chunk_ids(f, 10**6)
    assert ids
    got = r.vectors.get_vectors(ids)
    truth = sorted(((c, float(v @ vec)) for c, v in got.items()), key=lambda x: -x[1])

    exact = await r._dense(vec, f)  # 120 passing chunks: scored exactly
    assert [s for _, s in exact] == pytest.approx([s for _, s in truth[: len(exact)]], abs=1e-5)

    calls: list[list[str]] = []
    fetch = r.vectors.get_vectors

    def counting(ids: list[str]) -> dict[str, np.ndarray]:
        calls.append(ids)
        return fetch(ids)

    monkeypatch.setattr(r.vectors, "get_vectors", counting)
    again = await r._dense(vec, f)  # vectors now in memory: nothing fetched
    assert again == exact and not calls

    r.invalidate()
    monkeypatch.setattr(retrieval_mod, "DENSE_EXACT_CHUNKS", 10)
    over = await r._dense(vec, f)  # over-fetched and post-filtered
    assert over and {c for c, _ in over} <= set(ids)
    assert [s for _, s in over] == sorted((s for _, s in over), reverse=True)
    assert [s for _, s in over[:5]] == pytest.approx([s for _, s in truth[:5]], abs=1e-5)


async def test_stats_follow_writes(setup):
    store = setup.store
    assert (await store.doc_freqs(["zebra"]))["zebra"] == 0
    n = await store.chunk_count()
    run_id, _ = await store.begin_run()
    art = Article(id="z", text="Una zebra.", title="Zebra", lang="it", published=START)
    await store.write_articles(
        [ArticleWrite(art, "hz", None, [Chunk("z", 0, 0, 10, "Una zebra.")], ["z::h::0"],
                      [keywords.analyze("Zebra\nUna zebra.", "it")], [])],  # fmt: skip
        run_id,
    )
    assert (await store.doc_freqs(["zebr"]))["zebr"] == 1
    assert await store.chunk_count() == n + 1


def test_vector_query_on_an_empty_collection(tmp_path):
    emb = HashingEmbedder(8)
    vs = VectorStore.open(_settings(tmp_path), emb.model_id, emb.dim)
    assert vs.query(np.ones((1, 8), dtype=np.float32), 5) == [[]]
