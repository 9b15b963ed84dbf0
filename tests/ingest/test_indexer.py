"""The indexing run end to end: real SQLite, real embedded Chroma, the real packaged model."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.embed import make_embedder
from index.runtime import open_services
from index.sample import HERE as SAMPLE_DIR
from index.settings import Settings
from index.storage.store import Store
from index.storage.vectors import VectorStore

ROOT = Path(__file__).resolve().parents[2]


def wikinews(n: int, max_chars: int = 1200) -> list[dict]:
    rows = [json.loads(line) for line in (SAMPLE_DIR / "wikinews-gum.jsonl").open()]
    out = []
    for r in rows[:n]:
        text = r["text"][:max_chars].rsplit(".", 1)[0] + "."
        out.append({k: r[k] for k in ("id", "title", "url", "published", "source", "lang")}
                   | {"text": text})
    return out


def write_jsonl(path: Path, rows: list[dict], extra_lines: list[str] = ()) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        for line in extra_lines:
            fh.write(line + "\n")
    return path


@pytest.fixture(scope="module")
def minilm():
    settings = Settings(_env_file=None, embedding_model="minilm")
    return make_embedder(settings)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", embedding_model="minilm")


async def consistency(settings: Settings, embedder) -> tuple[set[str], set[str], dict]:
    store = await Store.open(settings.sqlite_path)
    try:
        sql_ids = set(await store.chunk_ids_with_articles())
        counts = await store.counts()
        async with store.db.execute("SELECT id, count(*) FROM articles GROUP BY id") as cur:
            assert all(r[1] == 1 for r in await cur.fetchall())
    finally:
        await store.close()
    vectors = VectorStore.open(settings, embedder.model_id, embedder.dim)
    return sql_ids, vectors.all_ids(), counts


async def test_index_incremental_update_and_prune(tmp_path: Path, settings, minilm):
    rows = wikinews(6)
    corpus = write_jsonl(tmp_path / "news.jsonl", rows)
    services = await open_services(settings, minilm)
    try:
        first = await services.index([corpus])
        assert (first.added, first.failed, first.unchanged) == (6, [], 0)
        assert first.chunks_embedded >= 6

        again = await services.index([corpus])
        assert again.chunks_embedded == 0
        assert (again.added, again.updated, again.unchanged) == (0, 0, 6)

        rows[2]["text"] += " A new closing sentence was added by the editors."
        write_jsonl(corpus, rows[:5] + rows[5:])
        changed = await services.index([corpus])
        assert (changed.updated, changed.unchanged) == (1, 5)
        assert 0 < changed.chunks_embedded < first.chunks_embedded

        write_jsonl(corpus, rows[:4])
        kept = await services.index([corpus])  # without --prune nothing is lost
        assert kept.removed == 0 and kept.unchanged == 4
        pruned = await services.index([corpus], prune=True)
        assert pruned.removed == 2
    finally:
        await services.close()
    sql_ids, chroma_ids, counts = await consistency(settings, minilm)
    assert sql_ids == chroma_ids
    assert counts["articles"] == 4


async def test_bad_input_is_reported_and_the_rest_indexed(tmp_path: Path, settings, minilm):
    good = wikinews(3, max_chars=500)
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", good, extra_lines=['{"title": "broken', '{"title": "no text"}'])
    (folder / "bin.txt").write_bytes(b"\x00\x01\x02binary")
    (folder / "latin1.txt").write_bytes("Titolo\n\nPerch\xe9 no".encode("latin-1"))
    services = await open_services(settings, minilm)
    try:
        report = await services.index([folder])
    finally:
        await services.close()
    assert report.added == 3
    origins = " ".join(e.origin for e in report.failed)
    assert "a.jsonl:4" in origins and "a.jsonl:5" in origins
    assert "bin.txt" in origins and "latin1.txt" in origins
    assert all(e.reason for e in report.failed)


async def test_duplicates_are_linked(tmp_path: Path, settings, minilm):
    rows = wikinews(3, max_chars=2000)
    exact = dict(rows[0], id="copy-exact", source="Other Outlet", url="https://other.example/a")
    near = dict(rows[1], id="copy-near", source="Syndicated Daily", title="A different headline")
    near["text"] = "By Staff Reporter\n\n" + near["text"].replace(".", ";", 1)
    corpus = write_jsonl(tmp_path / "dups.jsonl", [*rows, exact, near])
    services = await open_services(settings, minilm)
    try:
        report = await services.index([corpus])
        assert report.duplicates == 1
        assert report.near_duplicates == 1
        dups = await services.store.duplicates_of([rows[0]["id"], rows[1]["id"]])
        assert [d.id for d in dups[rows[0]["id"]]] == ["copy-exact"]
        assert [d.id for d in dups[rows[1]["id"]]] == ["copy-near"]
    finally:
        await services.close()


async def test_model_change_reembeds_without_mixing(tmp_path: Path, settings, minilm):
    corpus = write_jsonl(tmp_path / "n.jsonl", wikinews(3, max_chars=600))
    hashing = make_embedder(Settings(_env_file=None, embedding_model="hashing"))
    services = await open_services(settings, hashing)
    try:
        await services.index([corpus])
    finally:
        await services.close()
    services = await open_services(settings, minilm)
    try:
        report = await services.index([corpus])
        assert any("re-embedded" in n for n in report.notices)
        assert report.updated == 3 and report.chunks_embedded > 0
        vectors = await services.vectors()
        got = vectors.collection.get(limit=1, include=["embeddings"])
        assert len(got["embeddings"][0]) == minilm.dim
    finally:
        await services.close()
    sql_ids, chroma_ids, _ = await consistency(settings, minilm)
    assert sql_ids == chroma_ids


async def test_lost_vectors_are_repaired_and_stay(tmp_path: Path, settings, minilm):
    """Vectors lost from Chroma (an emptied collection, a new empty server) are re-embedded
    under the same content-addressed ids, and the stale queue must not delete them again."""
    corpus = write_jsonl(tmp_path / "n.jsonl", wikinews(4, max_chars=800))
    services = await open_services(settings, minilm)
    try:
        await services.index([corpus])
        vectors = await services.vectors()
        vectors.delete(sorted(vectors.all_ids()))
        assert vectors.count() == 0
        repaired = await services.index([corpus])
        assert repaired.reconciled > 0
        again = await services.index([corpus])
        assert again.chunks_embedded == 0  # nothing left to repair
    finally:
        await services.close()
    sql_ids, chroma_ids, _ = await consistency(settings, minilm)
    assert sql_ids and sql_ids == chroma_ids


async def test_drop_sample_removes_only_the_sample_and_it_stays_out(
    tmp_path: Path, settings, minilm
):
    from index.runtime import NothingToIndex

    own = write_jsonl(tmp_path / "own.jsonl", [{
        "id": "own-1", "title": "Il consiglio comunale approva il bilancio",
        "text": "Il consiglio comunale di Lecco ha approvato il bilancio con 18 voti a favore.",
        "source": "La Provincia", "lang": "it", "published": "2026-12-01T18:00:00+01:00",
    }])
    services = await open_services(settings, minilm)
    try:
        await services.index([SAMPLE_DIR / "seed-it-000_a8b3790d3ac96f0c.txt",
                              SAMPLE_DIR / "wikinews-gum.jsonl", own])
        before = (await services.store.counts())["articles"]
        removed = await services.drop_sample()
        assert removed == before - 1
        assert set(await services.store.article_states()) == {"own-1"}
        with pytest.raises(NothingToIndex):  # a bare `newsbot index` no longer means the sample
            await services.resolve_targets(None)
    finally:
        await services.close()
    sql_ids, chroma_ids, _ = await consistency(settings, minilm)
    assert sql_ids == chroma_ids  # the sample's vectors went with it


def _newsbot(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.mark.slow
async def test_kill9_mid_run_then_resume_is_consistent(tmp_path: Path, minilm):
    rows = wikinews(40, max_chars=1500)
    corpus = write_jsonl(tmp_path / "big.jsonl", rows)
    data = tmp_path / "data"
    env = dict(os.environ, NEWSBOT_DATA_DIR=str(data), EMBEDDING_MODEL="minilm",
               EMBED_BATCH_SIZE="8", HF_HUB_OFFLINE="1")
    proc = _newsbot("index", str(corpus), env=env)
    db = data / "newsbot.sqlite3"
    deadline = time.monotonic() + 120
    written = 0
    while time.monotonic() < deadline and proc.poll() is None:
        # Polls another process's database until it has written some articles: there is no
        # event across processes, and the loop ends as soon as the rows are there.
        await asyncio.sleep(0.2)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as con:
                    written = con.execute("SELECT count(*) FROM articles").fetchone()[0]
            except sqlite3.Error:
                continue
            if written >= 3:
                break
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < written < len(rows)

    resumed = _newsbot("index", str(corpus), "--json", env=env)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["added"] + report["unchanged"] == len(rows)

    settings = Settings(_env_file=None, data_dir=data, embedding_model="minilm")
    sql_ids, chroma_ids, counts = await consistency(settings, minilm)
    assert sql_ids == chroma_ids
    assert counts["articles"] == len(rows)
