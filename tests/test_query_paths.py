"""The fast paths of filtered and keyword search give the results of the plain ones.

A synthetic store written directly (hashing embedder, no model): thresholds are lowered so
the candidate and over-fetch paths, meant for 100k chunks, run on a few hundred.
"""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import index.search.chunk_matrix as chunk_matrix_mod
import index.search.corpus_copy as corpus_copy
import index.search.memory_candidates as memory_candidates_mod
import index.search.store_candidates as store_candidates_mod
import index.storage.fulltext as fulltext
from index.embed import HashingEmbedder
from index.models import Answer, Article, Chunk, Filters
from index.runtime import build_retriever
from index.search.chunk_matrix import ChunkMatrix, Selection
from index.search.memory_candidates import MemoryCandidates
from index.search.retrieval import Retriever
from index.search.store_candidates import StoreCandidates
from index.settings import Settings
from index.storage import keywords
from index.storage.store import ArticleWrite, Store, candidate_match, or_terms
from index.storage.vectors import VectorStore

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
    r = build_retriever(settings, store, emb, vectors)
    yield r
    await store.close()


def test_or_terms_parses_only_plain_or_expressions():
    assert or_terms('"a" OR "b""c"') is None  # a quote inside: not a plain token
    assert or_terms('"governo" OR "govern"') == ["governo", "govern"]
    assert or_terms('"a b"') is None
    assert or_terms('"a" AND "b"') is None
    assert or_terms("") is None


def test_candidate_match_pairs_common_words():
    terms = ["rara", "governo", "govern", "borsa", "mercati", "mercat"]
    df = {"rara": 3, "governo": 1500, "govern": 1600, "borsa": 1700, "mercati": 1900,
          "mercat": 1950}  # fmt: skip
    expr = candidate_match(terms, df)
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
    monkeypatch.setattr(fulltext, "FTS_EXACT_ROWS", 10)
    monkeypatch.setattr(fulltext, "FTS_RARE_ROWS", 30)
    fast = await store.fts_search(match, 20)
    assert fast and fast[0] == exact[0]
    assert len({c for c, _ in fast[:5]} & {c for c, _ in exact[:5]}) >= 4
    got = {c: s for c, s in exact}
    for c, s in fast:  # a candidate's score is its exact bm25
        if c in got:
            assert s == pytest.approx(got[c])
    f = Filters(date_from=START + timedelta(days=30), date_to=START + timedelta(days=60))
    monkeypatch.setattr(fulltext, "FTS_EXACT_ROWS", 10**9)
    as_set = await store.fts_search(match, 20, f)
    monkeypatch.setattr(fulltext, "FTS_FILTER_SET_ROWS", 0)
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

    k = r.params.dense_candidates
    exact = await r.store_candidates.dense(vec, f, k)  # 120 passing chunks: scored exactly
    assert [s for _, s in exact] == pytest.approx([s for _, s in truth[: len(exact)]], abs=1e-5)

    calls: list[list[str]] = []
    fetch = r.vectors.get_vectors

    def counting(ids: list[str]) -> dict[str, np.ndarray]:
        calls.append(ids)
        return fetch(ids)

    monkeypatch.setattr(r.vectors, "get_vectors", counting)
    again = await r.store_candidates.dense(vec, f, k)  # vectors now in memory: nothing fetched
    assert again == exact and not calls

    r.invalidate()
    monkeypatch.setattr(store_candidates_mod, "DENSE_EXACT_CHUNKS", 10)
    over = await r.store_candidates.dense(vec, f, k)  # over-fetched and post-filtered
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


# -- every vector in memory (index/search/chunk_matrix.py, index/search/keyword_memory.py) ----------------

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def _art(
    aid: str, title: str, days: float | None, source: str | None = "ansa", lang: str | None = "it"
) -> Article:
    """An article published ``days`` after START (None: undated); _add gives its text."""
    when = None if days is None else START + timedelta(days=days)
    return Article(id=aid, text="", title=title, published=when, source=source, lang=lang)


async def _add(
    r: Retriever,
    arts: list[tuple[Article, list[str]]],
    dup_kind: str | None = None,
    canonical_id: str | None = None,
) -> list[str]:
    """Write articles (each with its chunk texts) as the fixture does, and their vectors."""
    run_id, _ = await r.store.begin_run()
    writes: list[ArticleWrite] = []
    ids: list[str] = []
    texts: list[str] = []
    for art, sents in arts:
        chunks: list[Chunk] = []
        for o, sent in enumerate(sents):
            start = sum(len(s) + 1 for s in sents[:o])
            chunks.append(Chunk(art.id, o, start, start + len(sent), sent))
        art.text = "\n".join(sents)
        cids = [f"{art.id}::h::{c.ord}" for c in chunks]
        bodies = [keywords.analyze(f"{art.title}\n{c.text}", art.lang) for c in chunks]
        writes.append(
            ArticleWrite(
                art, f"h{art.id}", None, chunks, cids, bodies, [],
                dup_kind=dup_kind, canonical_id=canonical_id,
            )
        )  # fmt: skip
        ids.extend(cids)
        texts.extend(sents)
    await r.store.write_articles(writes, run_id)
    if ids:
        r.vectors.upsert(ids, r.embedder.embed_passages(texts))
    return ids


def _selected(m: ChunkMatrix, sel: Selection) -> set[str]:
    rows = range(sel.lo, sel.hi)
    return {m.ids[i] for i in rows if sel.mask is None or sel.mask[i - sel.lo]}


def _filters() -> list[Filters]:
    day = timedelta(days=1)
    return [
        Filters(),
        Filters(date_from=START + 30 * day),
        Filters(date_from=START + 30 * day + timedelta(seconds=1)),  # a30 itself is out
        Filters(date_from=START + 30 * day - timedelta(seconds=1)),
        Filters(date_to=START + 10 * day),  # exclusive: a0..a9
        Filters(date_to=START + 10 * day + timedelta(seconds=1)),
        Filters(date_to=START - day),
        Filters(date_from=START + 20 * day, date_to=START + 50 * day),
        Filters(date_from=START + 50 * day, date_to=START + 40 * day),  # reversed: nothing
        Filters(date_from=START + 400 * day),  # after everything
        Filters(date_from=START + 5 * day, date_to=START + 5 * day),  # empty range
        Filters(sources=["ansa"]),
        Filters(sources=["ANSA"]),
        Filters(sources=["il_ost"]),  # "_": any one character
        Filters(sources=["r%s"]),  # "%": any run
        Filters(sources=["r_e"]),
        Filters(sources=["l_p"]),
        Filters(sources=["post.it"]),  # "." is no wildcard
        Filters(sources=[".*"]),
        Filters(sources=["città"]),
        Filters(sources=["CITTÀ"]),
        Filters(sources=[""]),  # any outlet, but not a missing one
        Filters(sources=["nomatch"]),
        Filters(sources=["ansa", "reuters"]),
        Filters(sources=["nomatch", "CORRIERE"]),
        Filters(langs=["it"]),
        Filters(langs=["en"]),
        Filters(langs=["IT"]),  # languages are compared exactly
        Filters(langs=["it", "en"]),
        Filters(langs=["de"]),
        Filters(sources=["ansa"], langs=["it"]),
        Filters(sources=["ansa"], langs=["en"]),
        Filters(sources=["post"], langs=["en"]),
        Filters(date_from=START + 3 * day, date_to=START + 80 * day, sources=["reuters"]),
        Filters(date_from=START + 3 * day, date_to=START + 80 * day, langs=["it"]),
        Filters(date_from=START + 3 * day, sources=["ansa"], langs=["it"]),
        Filters(date_to=START + 6 * day, sources=["ansa"]),
        Filters(date_from=NOW - timedelta(days=3650)),  # the undated article: indexed now
    ]


async def _extra_articles(r: Retriever) -> None:
    """Articles at the edges of the filters: undated, no outlet, no language, another
    language, outlets with "_", "." and non-ASCII letters, a near duplicate, an exact one."""
    await _add(r, [
        (_art("x0", "Senza data", None, None, None), ["Governo senza data né fonte."]),
        (_art("x1", "Post", 5.5, "Il_Post.it", "en"), ["Government reform.", "Gas prices."]),
        (_art("x2", "Città", 70, "Città News"), ["Riforma della scuola in città."]),
        (_art("x3", "Eco", 5, "ANSA Europa"), ["Governo e riforma, vertice a Bruxelles."]),
    ])  # fmt: skip
    await _add(r, [(_art("x4", "Copia", 0), [])], dup_kind="exact", canonical_id="a0")
    # A passage copied by an earlier article, written later: its keyword scores tie with the
    # original's, and FTS5 orders ties by rowid, not by time.
    rec = (await r.store.chunk_records(["a60::h::2"]))["a60::h::2"]
    copy = _art("x5", rec.title, -2, "reuters")
    await _add(r, [(copy, [rec.text])], dup_kind="near", canonical_id="a60")


async def test_matrix_selects_what_sql_filters(setup):
    r = setup
    await _extra_articles(r)
    m = await r.vectors_in_memory()
    assert m is not None and len(m) == 120 * 4 + 6
    assert list(m.ts) == sorted(m.ts)
    everything = set(m.ids)
    seen_sizes = set()
    for f in _filters():
        sel = m.select(f)
        want = set(await r.store.filtered_chunk_ids(f, 10**9) or [])
        got = _selected(m, sel)
        assert got == want, f
        assert sel.count == len(want), f
        assert 0 <= sel.lo <= sel.hi <= len(m)
        assert sel.mask is None or len(sel.mask) == sel.hi - sel.lo
        assert [c for c in m.ids if m.keeps(sel, c)] == [c for c in m.ids if c in want], f
        assert not m.keeps(sel, "no-such-chunk")
        seen_sizes.add(len(want))
        assert await r.store.filter_fraction(f) > 0 or not want
    # The filters above are not all trivial: empty, partial and full selections.
    assert 0 in seen_sizes and len(everything) in seen_sizes and len(seen_sizes) > 10


def _brute_top(
    vectors: dict[str, np.ndarray], ids: set[str], vec: np.ndarray, n: int
) -> list[tuple[str, float]]:
    q = vec / np.linalg.norm(vec)
    scored = [(c, float(v @ q / np.linalg.norm(v))) for c, v in vectors.items() if c in ids]
    return sorted(scored, key=lambda x: -x[1])[:n]


def _assert_same_ranking(
    got: list[tuple[str, float]], want: list[tuple[str, float]], full: list[tuple[str, float]]
) -> None:
    """The same scores, and at each rank the same chunk or one tied with it (equal texts
    hash to equal vectors) anywhere in the ``full`` ranking."""
    assert len(got) == len(want) and len({c for c, _ in got}) == len(got)
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
    for (c, _), (w, t) in zip(got, want, strict=True):
        assert c == w or c in {x for x, u in full if abs(u - t) <= 1e-5}, (c, w)


async def test_matrix_top_is_exact_cosine(setup, monkeypatch):
    r = setup
    await _extra_articles(r)
    m = await r.vectors_in_memory()
    assert m is not None and m.missing_vectors == 0
    everything = r.vectors.get_vectors(m.ids)
    rng = np.random.default_rng(5)
    queries = [
        *r.embedder.embed_queries(["governo riforma giustizia", "calcio campionato festival"]),
        3.0 * rng.standard_normal(32).astype(np.float32),  # not unit length
    ]
    day = timedelta(days=1)
    filters = [
        Filters(),
        Filters(sources=["ansa"]),
        Filters(date_from=START + 10 * day, date_to=START + 40 * day),
        Filters(date_from=START + 10 * day, sources=["reuters", "post"]),
        Filters(langs=["en"]),
        Filters(sources=["nomatch"]),
    ]
    for gather in (1, 100):  # rows picked out of the slice, or the slice scored and masked
        monkeypatch.setattr(chunk_matrix_mod, "GATHER_COST", gather)
        for f in filters:
            sel = m.select(f)
            ids = _selected(m, sel)
            for vec in queries:
                for n in (1, 10, 10**6):
                    got = m.top(vec, sel, n)
                    full = _brute_top(everything, ids, vec, len(ids))
                    _assert_same_ranking(got, full[:n], full)
    assert m.top(queries[0], m.select(Filters()), 0) == []

    # Vectors of any length are scored by cosine.
    scale = {c: float(x) for c, x in zip(m.ids, rng.uniform(0.1, 10.0, len(m)), strict=True)}
    scaled_vectors = {c: v * scale[c] for c, v in everything.items()}
    scaled = ChunkMatrix(await r.store.chunk_facets(), scaled_vectors)
    for f in filters:
        sel = scaled.select(f)
        full = _brute_top(everything, _selected(scaled, sel), queries[2], 10**6)
        _assert_same_ranking(scaled.top(queries[2], sel, 10), full[:10], full)


def _exact_fts(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite scores every match, as the in-memory index does (no candidate pruning)."""
    monkeypatch.setattr(fulltext, "FTS_EXACT_ROWS", 10**12)


QUESTIONS = [
    "governo riforma",
    "governo riforma giustizia sindaco treni",
    "calcio",
    "festival campionato neve alluvione",
    "parlamento elezioni",
    "borsa mercati inflazione energia gas",
    "la riforma del governo",
    "Titolo 7",
    "zebra",
]


async def test_keywords_in_memory_score_as_fts5(setup, monkeypatch):
    r = setup
    await _extra_articles(r)
    _exact_fts(monkeypatch)
    m = await r.vectors_in_memory()
    assert m is not None and m.keywords is not None
    day = timedelta(days=1)
    filters: list[Filters | None] = [
        None,
        Filters(date_from=START + 30 * day, date_to=START + 60 * day),
        Filters(sources=["ansa"]),
        Filters(date_to=START + 90 * day, sources=["reuters", "il_post"]),
        Filters(langs=["en"]),
        Filters(sources=["nomatch"]),
    ]
    compared = 0
    # A term given twice counts twice, in FTS5 as in memory.
    for match in [*map(keywords.fts_match, QUESTIONS), '"govern" OR "riform" OR "govern"']:
        terms = or_terms(match)
        assert terms is not None, match
        for f in filters:
            for n in (5, 20, 10**4):
                want = await r.store.fts_search(match, n, f)
                sel = None if f is None else m.select(f)
                got = m.keyword_top(terms, n, sel)
                assert [c for c, _ in got] == [c for c, _ in want], (match, f, n)
                assert all(abs(a - b) <= 1e-9 for (_, a), (_, b) in zip(got, want, strict=True))
                compared += len(want)
    assert compared > 1000


def _hits(answer: Answer) -> list[tuple[str, float]]:
    return [(h.chunk_id, h.score) for h in answer.hits]


ASKED = [
    "governo riforma",
    "source:ansa elezioni",
    "after:2025-03-01 energia gas",
    "before:2025-02-01 calcio campionato",
    "source:reuters after:2025-02-01 before:2025-04-01 borsa mercati",
    "lang:en governo",
    "source:nessuno governo",
    "scuola sindaco regione",
]


async def test_answers_are_the_same_with_vectors_in_memory(setup, monkeypatch):
    r = setup
    _exact_fts(monkeypatch)
    plain = build_retriever(r.settings, r.store, r.embedder, r.vectors)
    before = [await r.answer(q, now=NOW) for q in ASKED]
    assert await r.vectors_in_memory() is not None
    with monkeypatch.context() as mp:  # with the matrix, neither SQLite BM25 nor Chroma's ids=
        mp.setattr(r.store, "fts_search", None)
        mp.setattr(r.store, "filtered_chunk_ids", None)
        mp.setattr(r.store, "passing_chunk_ids", None)
        after = [await r.answer(q, now=NOW) for q in ASKED]
    again = [await plain.answer(q, now=NOW) for q in ASKED]
    assert sum(bool(a.hits) for a in before) >= 5
    assert sum(bool(a.hits) and not a.filters.is_empty() for a in before) >= 3
    for q, b, a, p in zip(ASKED, before, after, again, strict=True):
        assert a.filters == b.filters, q
        assert [c for c, _ in _hits(a)] == [c for c, _ in _hits(b)], q
        assert [s for _, s in _hits(a)] == pytest.approx([s for _, s in _hits(b)], abs=1e-6)
        assert _hits(p) == _hits(b), q
    await r.aclose()


def _chroma_queries(r: Retriever, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ``n`` of every Chroma query from now on."""
    calls: list[int] = []
    query = r.vectors.query

    def counting(vecs: np.ndarray, n: int, ids: object = None) -> list[list[tuple[str, float]]]:
        calls.append(n)
        return query(vecs, n, ids)  # type: ignore[arg-type]

    monkeypatch.setattr(r.vectors, "query", counting)
    return calls


async def test_dense_candidates_with_vectors_in_memory(setup, monkeypatch):
    r = setup
    m = await r.vectors_in_memory()
    assert m is not None
    cands = await r.candidates()
    assert isinstance(cands, MemoryCandidates)
    k = r.params.dense_candidates
    vec = r.embedder.embed_queries(["governo riforma giustizia"])[0]
    f = Filters(sources=["ansa"], date_from=START + timedelta(days=20))
    passing = set(await r.store.filtered_chunk_ids(f, 10**6) or [])
    queried = _chroma_queries(r, monkeypatch)
    exact = await cands.dense(vec, f, k)  # scored from the matrix: Chroma is not asked
    assert not queried
    assert exact == m.top(vec, m.select(f), len(exact)) and len(exact) >= 10
    assert await cands.dense(vec, Filters(sources=["nomatch"]), k) == [] and not queried
    assert len(await cands.dense(vec, Filters(), k)) == k and queried == [k]  # Chroma's own

    monkeypatch.setattr(memory_candidates_mod, "MATRIX_ROWS_PER_QUERY", 0)
    monkeypatch.setattr(memory_candidates_mod, "MATRIX_ROWS_PER_NEIGHBOUR", 0)
    queried.clear()
    calls: list[object] = []

    async def no_sql(*args: object) -> set[str]:
        calls.append(args)
        return set()

    monkeypatch.setattr(r.store, "passing_chunk_ids", no_sql)
    over = await cands.dense(vec, f, k)  # over-fetched, filtered by the matrix, not SQLite
    assert len(queried) == 1 and queried[0] > k
    assert not calls
    assert over and {c for c, _ in over} <= passing
    assert [c for c, _ in over[:5]] == [c for c, _ in exact[:5]]
    assert [s for _, s in over[:5]] == pytest.approx([s for _, s in exact[:5]], abs=1e-5)


async def test_a_chunk_without_vector_is_found_by_keywords_only(setup, monkeypatch):
    r = setup
    _exact_fts(monkeypatch)
    terms = or_terms(keywords.fts_match("governo riforma"))
    assert terms is not None
    lost = (await r.store.fts_search(keywords.fts_match("governo riforma"), 1))[0][0]
    article = lost.split("::")[0]
    other = next(f"a{a}" for a in range(120) if f"a{a}" != article)  # loses every vector
    gone = [f"{other}::h::{o}" for o in range(4)]
    r.vectors.delete([lost, *gone])
    m = await r.vectors_in_memory()
    assert m is not None and len(m) == 480 and m.missing_vectors == 5
    assert lost in m.ids

    assert m.keyword_top(terms, 1)[0][0] == lost
    everything = m.select(Filters())
    assert lost in dict(m.keyword_top(terms, 10**4, everything))
    text = (await r.store.chunk_records([lost]))[lost].text
    q = r.embedder.embed_passages([text])[0]  # its own vector would come first
    ranked = m.top(q, everything, 10**6)
    assert len(ranked) == 480 - 5 and lost not in dict(ranked)
    assert not set(gone) & set(dict(ranked))
    assert set(dict(ranked)) == set(m.ids) - {lost, *gone}

    day = int(other[1:])
    only = Filters(date_from=START + timedelta(days=day), date_to=START + timedelta(days=day + 1))
    sel = m.select(only)
    assert _selected(m, sel) == set(gone)
    assert m.top(q, sel, 10) == []  # every passing row lacks its vector
    assert m.keywords is not None
    assert {c for c, _ in m.keyword_top(list(m.keywords.vocab), 10, sel)} == set(gone)

    # The retriever: the dense side never names them, the keyword side still finds them.
    cands = await r.candidates()
    assert isinstance(cands, MemoryCandidates)
    queried = _chroma_queries(r, monkeypatch)
    assert await cands.dense(q, only, r.params.dense_candidates) == [] and not queried
    day = int(article[1:])
    around = Filters(
        date_from=START + timedelta(days=day - 3), date_to=START + timedelta(days=day + 3)
    )
    found = {x.chunk_id: x for x in (await r.search(text, around)).ranked}
    assert not queried  # its dense side scored from the matrix
    assert found[lost].dense is None and found[lost].bm25 is not None
    assert any(x.dense is not None for x in found.values())


async def test_the_matrix_follows_writes(setup, monkeypatch):
    r = setup
    monkeypatch.setattr(fulltext, "STATS_RECHECK_S", 0.0)
    m1 = await r.vectors_in_memory()
    assert m1 is not None and m1.stamp == await r.store.corpus_stamp()
    new = await _add(r, [(_art("z1", "Zebra", 0), ["Una zebra allo zoo."])])
    assert await r.store.corpus_stamp() != m1.stamp
    # Right after the write, the stale matrix is not used: SQLite finds the new chunk.
    hit = await r.search("zebra", Filters(sources=["ansa"]))
    assert [x.chunk_id for x in hit.ranked][:1] == new
    m2 = await r.vectors_in_memory()
    assert m2 is not None and m2 is not m1 and new[0] in m2.ids and new[0] not in m1.ids
    assert m2.stamp == await r.store.corpus_stamp()
    assert m2.keyword_top(["zebr"], 5)[0][0] == new[0]
    assert m2.top(r.vectors.get_vectors(new)[new[0]], m2.select(Filters()), 1)[0][0] == new[0]

    # A write by another connection (another process) is noticed too.
    other = await Store.open(r.settings.sqlite_path)
    try:
        run_id, _ = await other.begin_run()
        art = Article(id="z2", text="Un'altra zebra.", title="Zebra due", published=START,
                      source="corriere", lang="it")  # fmt: skip
        await other.write_articles([ArticleWrite(
            art, "hz2", None, [Chunk("z2", 0, 0, len(art.text), art.text)], ["z2::h::0"],
            [keywords.analyze(f"{art.title}\n{art.text}", "it")], [],
        )], run_id)  # fmt: skip
    finally:
        await other.close()
    r.vectors.upsert(["z2::h::0"], r.embedder.embed_passages([art.text]))
    hit = await r.search("zebra", Filters(sources=["corriere"]))
    assert [x.chunk_id for x in hit.ranked][:1] == ["z2::h::0"]
    m3 = await r.vectors_in_memory()
    assert m3 is not None and "z2::h::0" in m3.ids and m3.stamp == await r.store.corpus_stamp()
    assert m3.stamp != m2.stamp
    hit = await r.search("zebra", Filters(sources=["corriere"]))
    assert [x.chunk_id for x in hit.ranked][:1] == ["z2::h::0"]

    r.invalidate()
    m4 = await r.vectors_in_memory()
    assert m4 is not None and m4 is not m3 and m4.ids == m3.ids
    await r.aclose()


async def test_a_changing_corpus_is_copied_once_it_keeps_still(setup, monkeypatch):
    """Questions during an index run in another process must not start a full copy after
    every write: only once the corpus has not changed for SETTLE_S."""
    r = setup
    monkeypatch.setattr(fulltext, "STATS_RECHECK_S", 0.0)
    monkeypatch.setattr(corpus_copy, "SETTLE_S", 0.3)
    m1 = await r.vectors_in_memory()
    assert m1 is not None
    loads = 0
    load = r.memory._load

    async def counted() -> None:
        nonlocal loads
        loads += 1
        await load()

    monkeypatch.setattr(r.memory, "_load", counted)
    for i in range(3):  # writes and questions in quick succession
        await _add(r, [(_art(f"w{i}", "Zebra", 0), [f"Zebra numero {i}."])])
        await r.search("zebra", Filters(sources=["ansa"]))
    assert loads == 0
    await r.search("zebra", Filters(sources=["ansa"]))  # the corpus as it is now, seen
    await asyncio.sleep(0.35)
    await r.search("zebra", Filters(sources=["ansa"]))  # still now: copied
    assert loads == 1
    m2 = await r.vectors_in_memory()
    assert loads == 1 and m2 is not None and m2.stamp == await r.store.corpus_stamp()
    # After the bot's own re-index the copy starts at once.
    r.invalidate()
    assert r.memory.task is not None and not r.memory.task.done()
    assert await r.vectors_in_memory() is not None and loads == 2
    await r.aclose()


async def test_no_matrix_above_its_limit(setup, monkeypatch):
    r = setup
    _exact_fts(monkeypatch)
    want = [_hits(await r.answer(q, now=NOW)) for q in ASKED]
    for limit in (10, 0):
        small = build_retriever(r.settings.model_copy(update={"dense_matrix_max_chunks": limit}),
                                r.store, r.embedder, r.vectors)  # fmt: skip
        assert await small.vectors_in_memory() is None
        assert [_hits(await small.answer(q, now=NOW)) for q in ASKED] == want
        assert isinstance(await small.candidates(), StoreCandidates)
        await small.aclose()


async def _load_held(r: Retriever, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Start the background load and hold it inside ``get_vectors`` until the returned event
    is set."""
    started, release = threading.Event(), threading.Event()
    fetch = r.vectors.get_vectors

    def slow(ids: list[str]) -> dict[str, np.ndarray]:
        started.set()
        release.wait(10)
        return fetch(ids)

    monkeypatch.setattr(r.vectors, "get_vectors", slow)
    r.keep_vectors_in_memory()
    for _ in range(500):
        if started.is_set():
            break
        await asyncio.sleep(0.01)
    assert started.is_set()
    return release


async def test_aclose_cancels_a_load(setup, monkeypatch):
    r = setup
    release = await _load_held(r, monkeypatch)
    try:
        await r.aclose()  # mid-load: cancelled, nothing raised
    finally:
        release.set()
    await asyncio.sleep(0.05)
    assert r.memory.matrix is None
    assert await r.answer("governo riforma", now=NOW) is not None
    await r.aclose()  # twice, and with nothing loading: fine

    fresh = build_retriever(r.settings, r.store, r.embedder, r.vectors)
    fresh.keep_vectors_in_memory()
    await fresh.aclose()  # before the load even started


# -- differences found and fixed ----------------------------------------------------------


async def test_styled_capitals_are_found_alike_in_memory(setup, monkeypatch):
    """Folding leaves mathematical bold capitals upper case in the body; FTS5 lowercases
    them, so the in-memory index must too."""
    r = setup
    _exact_fts(monkeypatch)
    new = await _add(r, [(_art("b1", "Stile", 0), ["𝐈𝐋 𝐆𝐎𝐕𝐄𝐑𝐍𝐎 approva."])])
    m = await r.vectors_in_memory()
    assert m is not None
    match = keywords.fts_match("governo")
    want = await r.store.fts_search(match, 10**4)
    assert new[0] in dict(want)  # FTS5 folds "GOVERNO" to "governo"
    terms = or_terms(match)
    assert terms is not None
    assert m.keyword_top(terms, 10**4) == want


async def test_a_write_during_a_load_is_in_the_matrix_waited_for(setup, monkeypatch):
    """vectors_in_memory() must not hand back a matrix built before a write."""
    r = setup
    release = await _load_held(r, monkeypatch)
    try:
        new = await _add(r, [(_art("z1", "Zebra", 0), ["Una zebra."])])
    finally:
        release.set()
    m = await r.vectors_in_memory()
    await r.aclose()
    assert m is not None and m.stamp == await r.store.corpus_stamp() and new[0] in m.ids
