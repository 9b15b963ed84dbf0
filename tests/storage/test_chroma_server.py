"""The same indexer against a real `chroma run` server on 127.0.0.1 (CHROMA_HOST/PORT)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.embed import make_embedder
from index.runtime import open_services
from index.sample import HERE as SAMPLE_DIR
from index.settings import Settings


@pytest.mark.slow
async def test_index_into_chroma_server(tmp_path: Path, chroma_server: int, monkeypatch):
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", str(chroma_server))
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", embedding_model="minilm")
    assert settings.chroma_host == "127.0.0.1"
    rows = [json.loads(line) for line in (SAMPLE_DIR / "wikinews-gum.jsonl").open()][:4]
    corpus = tmp_path / "n.jsonl"
    corpus.write_text(
        "".join(json.dumps(dict(r, text=r["text"][:800])) + "\n" for r in rows), encoding="utf-8"
    )
    services = await open_services(settings, make_embedder(settings))
    try:
        report = await services.index([corpus])
        assert report.added == 4
        vectors = await services.vectors()
        assert vectors.description.startswith("chroma server")
        n_sql = (await services.store.counts())["chunks"]
        assert vectors.count() == n_sql > 0
        again = await services.index([corpus])
        assert again.chunks_embedded == 0
    finally:
        await services.close()
    # Nothing was written to an embedded Chroma under the data dir.
    assert not (tmp_path / "data" / "chroma").exists()
