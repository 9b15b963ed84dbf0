"""Both candidate sources give the same candidates: the store-backed one (Chroma, SQLite FTS5)
and the in-memory copy (index/search/candidates.py), on a real corpus indexed with the
packaged MiniLM into real Chroma and SQLite.

Each question goes through ``parse_question`` as a user would type it, so its filters are the
ones the retriever would pass: none, ``source:``, ``lang:``, date ranges, combinations, and
filters nothing passes.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import index.search.memory_candidates as memory_candidates_mod
import index.search.store_candidates as store_candidates_mod
from index.embed import Embedder
from index.models import Filters
from index.runtime import open_services
from index.search.memory_candidates import MemoryCandidates
from index.search.query_parse import parse_question
from index.search.retrieval import Retriever
from index.settings import Settings
from index.storage import keywords

SAMPLE = Path(__file__).resolve().parents[2] / "index" / "sample"
NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)
ROME = ZoneInfo("Europe/Rome")
IMPOSSIBLE = 3  # the last questions: filters nothing passes
QUESTIONS = [
    "General Motors sales and profits",
    "vendite di automobili General Motors",
    "source:reuters ceasefire talks in Gaza",
    "source:bbc election results",
    "lang:it borsa e azioni in calo",
    "lang:en stock market shares fall",
    "after:2010-01-01 bankruptcy of car makers",
    "after:2025-10-01 before:2025-11-15 hurricane damage",
    "source:reuters lang:en after:2025-11-01 protests against the government",
    "source:ap before:2025-10-01 earthquake",
    "lang:it before:2009-01-01 crisi economica",
    "source:nessuno governo",  # an outlet nothing comes from
    "after:2030-01-01 mercati",  # a period nothing was published in
    "lang:de Wirtschaft",  # a language no article has
]


def _corpus(path: Path) -> Path:
    """Wikinews in English and Italian (2006-2013, two outlets) and current events from
    several outlets (autumn 2025)."""
    keep = ("id", "title", "text", "url", "published", "source", "lang")
    rows: list[dict[str, Any]] = []
    per_lang: Counter[str] = Counter()
    with (SAMPLE / "meantime-gm-stock-en-it.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if per_lang[row["lang"]] < 20:
                per_lang[row["lang"]] += 1
                rows.append({k: row[k] for k in keep})
    outlets = {"Reuters", "AP", "BBC News", "Al Jazeera"}
    with (SAMPLE / "current-events-2025q4.jsonl").open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            if row["source"] in outlets and i % 12 == 0:
                rows.append({k: row[k] for k in keep})
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, bot_embedder: Embedder) -> Path:
    root = tmp_path_factory.mktemp("parity")
    corpus = _corpus(root / "articles.jsonl")
    settings = Settings(_env_file=None, data_dir=root / "data", embedding_model="minilm")

    async def build() -> None:
        services = await open_services(settings, embedder=bot_embedder)
        try:
            report = await services.index([corpus])
            assert report.added > 100 and not report.failed
        finally:
            await services.close()

    asyncio.run(build())
    return root / "data"


@pytest.fixture
async def both(
    data_dir: Path, bot_embedder: Embedder
) -> AsyncIterator[tuple[Retriever, MemoryCandidates]]:
    settings = Settings(_env_file=None, data_dir=data_dir, embedding_model="minilm")
    services = await open_services(settings, embedder=bot_embedder)
    try:
        r = await services.retriever()
        m = await r.vectors_in_memory()
        assert m is not None and m.keywords is not None
        memory = await r.candidates()
        assert isinstance(memory, MemoryCandidates)
        yield r, memory
    finally:
        await services.close()


async def _asked(r: Retriever) -> Iterator[tuple[str, str, Filters]]:
    sources = await r.known_sources()
    out = []
    for q in QUESTIONS:
        query, filters = parse_question(q, now=NOW, tz=ROME, known_sources=sources)
        out.append((q, query, filters))
    # Every kind of filter is really asked.
    fs = [f for _, _, f in out]
    assert sum(f.is_empty() for f in fs) == 2
    assert any(f.sources and not (f.langs or f.date_from or f.date_to) for f in fs)
    assert any(f.langs and not (f.sources or f.date_from or f.date_to) for f in fs)
    assert any(f.date_from and f.date_to and not (f.sources or f.langs) for f in fs)
    assert any(f.sources and f.langs and f.date_from for f in fs)
    assert any(f.langs and f.date_to for f in fs)
    return iter(out)


def _ids(ranking: list[tuple[str, float]]) -> list[str]:
    return [c for c, _ in ranking]


async def test_keyword_candidates_are_the_same(both):
    r, memory = both
    n = r.params.bm25_candidates
    found = 0
    for q, query, filters in await _asked(r):
        match = keywords.fts_match(query)
        assert memory.keyword_in_process(match), q  # the postings run it, not FTS5
        on_disk = await r.store_candidates.keyword(match, filters, n)
        in_memory = await memory.keyword(match, filters, n)
        assert _ids(in_memory) == _ids(on_disk), q
        assert [s for _, s in in_memory] == pytest.approx([s for _, s in on_disk], rel=1e-5), q
        if q in QUESTIONS[-IMPOSSIBLE:]:
            assert on_disk == [], q
        found += bool(on_disk)
    assert found >= len(QUESTIONS) // 2


@pytest.mark.parametrize("paths", ["chosen", "over-fetched"])
async def test_dense_candidates_are_the_same(both, monkeypatch, paths):
    r, memory = both
    if paths == "over-fetched":
        # Neither scores the passing chunks exactly: both over-fetch Chroma's neighbours and
        # filter them (SQLite, the matrix), which must not change which chunks come back.
        monkeypatch.setattr(store_candidates_mod, "DENSE_EXACT_CHUNKS", 0)
        monkeypatch.setattr(memory_candidates_mod, "MATRIX_ROWS_PER_QUERY", 0)
        monkeypatch.setattr(memory_candidates_mod, "MATRIX_ROWS_PER_NEIGHBOUR", 0)
    n = 20
    asked = list(await _asked(r))
    vecs = r.embedder.embed_queries([query for _, query, _ in asked])
    filtered = 0
    for (q, _, filters), vec in zip(asked, vecs, strict=True):
        r.store_candidates.invalidate()  # no vectors kept from the last question
        on_disk = await r.store_candidates.dense(vec, filters, n)
        in_memory = await memory.dense(vec, filters, n)
        if paths == "chosen":
            assert set(_ids(in_memory)) == set(_ids(on_disk)), q
        else:  # over-fetching may reach fewer than n: the same head of the same ranking
            assert on_disk and in_memory or not (on_disk or in_memory), q
            k = min(len(on_disk), len(in_memory))
            assert set(_ids(in_memory[:k])) == set(_ids(on_disk[:k])), q
        assert [s for _, s in in_memory[:5]] == pytest.approx(
            [s for _, s in on_disk[:5]], abs=1e-4
        ), q
        nothing = await r.holds_nothing(filters) if not filters.is_empty() else False
        assert (on_disk == []) == nothing, q
        if q in QUESTIONS[-IMPOSSIBLE:]:
            assert nothing, q
        elif paths == "chosen" and not nothing:
            assert len(on_disk) == min(n, await _passing(r, filters)), q
        filtered += not (nothing or filters.is_empty())
    assert filtered >= 6


async def _passing(r: Retriever, filters: Filters) -> int:
    """How many chunks pass ``filters`` (every one has a vector)."""
    if filters.is_empty():
        return await r.store.chunk_count()
    return len(await r.store.filtered_chunk_ids(filters, 10**6) or [])


async def test_document_frequencies_are_the_same(both):
    """What the best-sentence re-ranking weighs question words by: the copy's postings
    count the rows FTS5's vocabulary counts, for every word of every body and words no body
    holds."""
    r, memory = both
    assert memory.matrix.keywords is not None
    words = {w for body in (await r.store.fts_bodies()).values() for w in body.split()}
    words |= set(memory.matrix.keywords.terms())
    terms = sorted(words | {"zzqqxx", "nessunaparola"})
    assert len(terms) > 1000
    in_memory = await memory.doc_freqs(terms)
    on_disk = await r.store_candidates.doc_freqs(terms)
    assert in_memory == on_disk
    assert in_memory["zzqqxx"] == 0 and max(in_memory.values()) > 10
