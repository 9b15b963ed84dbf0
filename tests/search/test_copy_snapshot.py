"""The in-memory copy saved in the data dir (index/search/copy_snapshot.py): read back on a
restart when nothing changed, never when the corpus did (in this process or another), and
rebuilt when the file is damaged; answers from a read-back copy are a fresh copy's."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.runtime import Services, open_services
from index.search.chunk_matrix import ChunkMatrix
from index.search.copy_snapshot import SNAPSHOT_NAME
from index.search.corpus_copy import CorpusCopy
from index.search.exact_rows import EXACT_NAME, HEADER
from index.settings import Settings
from index.storage import backup as backup_mod
from index.storage.vectors import forget_cached_client
from tests.support.bot import write_articles

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 6, 1, tzinfo=UTC)
# Unfiltered, filtered (the copy's dense side) and keyword-heavy questions.
ASKED = [
    "General Motors chief executive",
    "zebra crossings festival",
    "lang:en stock shares",
    "after:2000-01-01 General Motors",
    "lang:it azioni",
]
NEW_ARTICLE = {
    "id": "snapshot-new",
    "title": "A Quillabrano apre il museo delle lanterne di carta",
    "text": ("Il comune di Quillabrano ha inaugurato sabato il nuovo museo delle lanterne di "
             "carta. La collezione conta oltre trecento lanterne donate dalle famiglie."),
    "url": "https://example.org/quillabrano",
    "published": "2024-06-03T09:00:00+00:00",
    "source": "Gazzetta di Prova",
    "lang": "it",
}  # fmt: skip


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, embedding_model="minilm", **overrides)  # type: ignore[call-arg]


@pytest.fixture
def data_dir(bot_store: Path, tmp_path: Path) -> Path:
    """A copy of the module's indexed store, for this test to write to."""
    dest = tmp_path / "data"
    shutil.copytree(bot_store, dest)
    (dest / SNAPSHOT_NAME).unlink(missing_ok=True)
    (dest / EXACT_NAME).unlink(missing_ok=True)
    return dest


@asynccontextmanager
async def serving(
    data_dir: Path, embedder: Any, **overrides: Any
) -> AsyncIterator[tuple[Services, CorpusCopy]]:
    """A fresh serving process's view of the store: its services and in-memory copy."""
    services = await open_services(_settings(data_dir, **overrides), embedder=embedder)
    try:
        retriever = await services.retriever()
        yield services, retriever.memory
    finally:
        await services.close()


async def _answers(services: Services) -> list[list[tuple[str, float]]]:
    r = await services.retriever()
    out = []
    for q in ASKED:
        answer = await r.answer(q, now=NOW)
        out.append([(h.chunk_id, h.score) for h in answer.hits])
    return out


def _same_copy(a: ChunkMatrix, b: ChunkMatrix) -> None:
    assert a.ids == b.ids
    assert a.source_keys == b.source_keys and a.langs == b.langs
    left, right = a.arrays(), b.arrays()
    assert left.keys() == right.keys()
    for name in left:
        assert np.array_equal(left[name], right[name]), name
    assert a.keywords is not None and b.keywords is not None
    assert a.keywords.vocab == b.keywords.vocab


def _assert_same_answers(got: list[list[tuple[str, float]]],
                         want: list[list[tuple[str, float]]]) -> None:  # fmt: skip
    assert sum(bool(hits) for hits in want) >= 4
    for q, g, w in zip(ASKED, got, want, strict=True):
        assert [c for c, _ in g] == [c for c, _ in w], q
        assert [s for _, s in g] == pytest.approx([s for _, s in w], abs=1e-6), q


async def test_snapshot_is_read_back_when_nothing_changed(data_dir, bot_embedder, caplog):
    async with serving(data_dir, bot_embedder) as (services, memory):
        fresh = await memory.wait()
        assert fresh is not None
        assert (memory.builds, memory.snapshot_reads, memory.snapshot_writes) == (1, 0, 1)
        want = await _answers(services)
    assert (data_dir / SNAPSHOT_NAME).exists()
    caplog.set_level(logging.INFO, logger="index.search.copy_snapshot")
    async with serving(data_dir, bot_embedder) as (services, memory):
        read = await memory.wait()
        assert read is not None
        assert (memory.builds, memory.snapshot_reads, memory.snapshot_writes) == (0, 1, 0)
        # int8 rows still re-scored, from the float32 rows file saved with the snapshot
        assert read.exact_rows is not None and not read.rescores
        _same_copy(read, fresh)
        _assert_same_answers(await _answers(services), want)
    assert "in-memory copy read from its snapshot" in caplog.text


async def test_a_write_in_this_process_is_never_served_from_the_snapshot(
    data_dir, bot_embedder, tmp_path
):
    async with serving(data_dir, bot_embedder) as (services, memory):
        old = await memory.wait()
        assert old is not None
        report = await services.index([write_articles(tmp_path / "new.jsonl", [NEW_ARTICLE])])
        assert report.added == 1
        (await services.retriever()).invalidate()  # what the bot does after its own runs
        new = await memory.wait()
        assert new is not None and new is not old
        assert memory.builds == 2 and memory.snapshot_reads == 0
        assert any(cid.startswith("snapshot-new::") for cid in new.ids)
        # Only the new article's vectors were read again from Chroma.
        assert new.reused == len(old) and len(new) > len(old)
        after = await _answers(services)
    # A restart reads the copy saved after the write, the same as a build from scratch.
    async with serving(data_dir, bot_embedder) as (services, memory):
        read = await memory.wait()
        assert read is not None and memory.snapshot_reads == 1 and memory.builds == 0
        _same_copy(read, new)
        _assert_same_answers(await _answers(services), after)
    (data_dir / SNAPSHOT_NAME).unlink()
    async with serving(data_dir, bot_embedder) as (services, memory):
        built = await memory.wait()
        assert built is not None and memory.builds == 1 and built.reused == 0
        _same_copy(built, new)


async def test_another_process_writing_invalidates_the_snapshot(
    data_dir, bot_embedder, tmp_path, caplog
):
    async with serving(data_dir, bot_embedder) as (_, memory):
        assert await memory.wait() is not None
        assert memory.snapshot_writes == 1
    saved = (data_dir / SNAPSHOT_NAME).stat().st_mtime_ns
    path = write_articles(tmp_path / "new.jsonl", [NEW_ARTICLE])
    env = {k: v for k, v in os.environ.items()
           if k not in ("NEWSBOT_SOURCES", "CHROMA_HOST", "CHROMA_PORT", "TELEGRAM_BOT_TOKEN")}
    env.update(NEWSBOT_DATA_DIR=str(data_dir), EMBEDDING_MODEL="minilm", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
               ANONYMIZED_TELEMETRY="False")  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "index", str(path), cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 600)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert (data_dir / SNAPSHOT_NAME).stat().st_mtime_ns == saved  # the file itself is as it was
    forget_cached_client(_settings(data_dir))  # as a new process: not this one's stale client
    caplog.set_level(logging.INFO, logger="index.search.copy_snapshot")
    async with serving(data_dir, bot_embedder) as (services, memory):
        m = await memory.wait()
        assert m is not None
        assert (memory.builds, memory.snapshot_reads, memory.snapshot_writes) == (1, 0, 1)
        assert any(cid.startswith("snapshot-new::") for cid in m.ids)
        hits = (await (await services.retriever()).answer(
            "museo delle lanterne di carta a Quillabrano", now=NOW)).hits
        assert hits and hits[0].article_id == "snapshot-new"
    assert "of another corpus" in caplog.text


@pytest.mark.parametrize("damage", ["flipped", "truncated", "not_a_zip"])
async def test_a_damaged_snapshot_is_ignored_and_rebuilt(
    data_dir, bot_embedder, caplog, damage
):
    async with serving(data_dir, bot_embedder) as (services, memory):
        fresh = await memory.wait()
        assert fresh is not None
        want = await _answers(services)
    path = data_dir / SNAPSHOT_NAME
    raw = bytearray(path.read_bytes())
    if damage == "flipped":  # inside the int8 rows, which the zip's CRC-32 covers
        at = raw.find(b"matrix.npy")
        assert at > 0
        spot = at + 200
        raw[spot] ^= 0x5A
    elif damage == "truncated":
        raw = raw[: len(raw) // 2]
    else:
        raw = bytearray(b"not a snapshot at all")
    path.write_bytes(bytes(raw))
    caplog.set_level(logging.INFO, logger="index.search.copy_snapshot")
    async with serving(data_dir, bot_embedder) as (services, memory):
        m = await memory.wait()
        assert m is not None
        assert (memory.builds, memory.snapshot_reads, memory.snapshot_writes) == (1, 0, 1)
        _same_copy(m, fresh)
        _assert_same_answers(await _answers(services), want)
    assert "damaged" in caplog.text
    # And the rebuilt snapshot is whole again.
    async with serving(data_dir, bot_embedder) as (_, memory):
        assert await memory.wait() is not None
        assert memory.snapshot_reads == 1 and memory.builds == 0


async def test_generation_follows_writes_of_any_connection(data_dir, bot_embedder):
    async with serving(data_dir, bot_embedder) as (services, _):
        store = services.store
        first = await store.corpus_generation()
        with sqlite3.connect(data_dir / "newsbot.sqlite3") as db:  # not through the store
            db.execute("UPDATE articles SET content_hash = 'x' WHERE id = 'hostile-zebra'")
        assert await store.corpus_generation() == first  # a column the copy does not read
        with sqlite3.connect(data_dir / "newsbot.sqlite3") as db:
            db.execute("UPDATE articles SET lang = 'de' WHERE id = 'hostile-zebra'")
        second = await store.corpus_generation()
        assert second[0] > first[0] and second[1] != first[1]
        with sqlite3.connect(data_dir / "newsbot.sqlite3") as db:
            db.execute("DELETE FROM chunks WHERE rowid = (SELECT min(rowid) FROM chunks)")
        third = await store.corpus_generation()
        assert third[0] > second[0] and third[1] != second[1]


async def test_backups_leave_the_snapshot_out(data_dir, bot_embedder, tmp_path):
    async with serving(data_dir, bot_embedder) as (_, memory):
        assert await memory.wait() is not None
    assert (data_dir / SNAPSHOT_NAME).exists() and (data_dir / EXACT_NAME).exists()
    dest = tmp_path / "backup"
    backup_mod.backup(_settings(data_dir), dest)
    assert not any(p.name.startswith("memory-copy") for p in dest.rglob("*"))
    restored = tmp_path / "restored"
    backup_mod.restore(_settings(restored), dest)
    async with serving(restored, bot_embedder) as (_, memory):
        assert await memory.wait() is not None
        assert memory.builds == 1 and memory.snapshot_reads == 0


# -- the float32 rows file beside the snapshot (index/search/exact_rows.py) ---------------


def _file_rows(data_dir: Path, m: ChunkMatrix) -> np.ndarray:
    raw = np.fromfile(data_dir / EXACT_NAME, dtype=np.float32, offset=HEADER)
    return raw.reshape(len(m), -1)


async def _assert_file_is_chromas(data_dir: Path, services: Services, m: ChunkMatrix) -> None:
    """Every row of the file is the vector Chroma holds for that row's chunk, bit for bit."""
    rows = _file_rows(data_dir, m)
    held = (await services.retriever()).vectors.get_vectors(m.ids)
    assert len(held) == len(m.ids) > 0
    for i, cid in enumerate(m.ids):
        assert np.array_equal(rows[i], held[cid]), cid


async def test_rescoring_from_the_file_equals_fetching_from_chroma(data_dir, bot_embedder):
    async with serving(data_dir, bot_embedder) as (services, memory):
        built = await memory.wait()
        assert built is not None and built.exact_rows is not None and not built.rescores
        await _assert_file_is_chromas(data_dir, services, built)
        from_file = await _answers(services)
        # The same copy re-scoring from Chroma's get instead: the same answers, bit for bit.
        fetched: list[int] = []
        rows, built.exact_rows = built.exact_rows, None
        inner = built._exact
        assert inner is not None

        def counting(ids: Any) -> Any:
            fetched.append(len(ids))
            return inner(ids)

        built._exact = counting
        from_chroma = await _answers(services)
        built.exact_rows = rows
        assert fetched  # the filtered questions did re-score
        assert from_file == from_chroma
        # And the float32 copy (no rounding, nothing re-scored) ranks alike.
    async with serving(data_dir, bot_embedder, dense_matrix_precision="float32",
                       dense_matrix_snapshot=False) as (services, memory):  # fmt: skip
        exact = await memory.wait()
        assert exact is not None and exact.exact_rows is None and not exact.rescores
        _assert_same_answers(await _answers(services), from_file)


@pytest.mark.parametrize("damage", ["absent", "stale", "truncated", "rows"])
async def test_a_bad_rows_file_falls_back_to_chroma(data_dir, bot_embedder, caplog, damage):
    async with serving(data_dir, bot_embedder) as (services, memory):
        assert await memory.wait() is not None
        want = await _answers(services)
    path = data_dir / EXACT_NAME
    raw = bytearray(path.read_bytes())
    if damage == "absent":
        path.unlink()
    elif damage == "stale":  # another copy's file: its token differs
        raw[16] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif damage == "truncated":
        path.write_bytes(bytes(raw[: len(raw) - 100]))
    else:  # the header is right, every row is garbage: caught when a row is read
        rng = np.random.default_rng(0)
        noise = rng.standard_normal((len(raw) - HEADER) // 4).astype(np.float32)
        path.write_bytes(bytes(raw[:HEADER]) + noise.tobytes())
    caplog.set_level(logging.INFO, logger="index.search")
    async with serving(data_dir, bot_embedder) as (services, memory):
        m = await memory.wait()
        assert m is not None and memory.snapshot_reads == 1 and memory.builds == 0
        if damage == "rows":
            assert m.exact_rows is not None  # the header checks out
            _assert_same_answers(await _answers(services), want)
            assert m.exact_rows is None and m.rescores  # from Chroma from now on
            assert caplog.text.count("damaged: re-scoring fetches") == 1
            return
        # Read without its file, the copy got a new one from Chroma, and the snapshot
        # was saved again naming it.
        assert caplog.text.count("no usable float32 rows file") == 1
        assert m.exact_rows is not None and not m.rescores and memory.snapshot_writes == 1
        await _assert_file_is_chromas(data_dir, services, m)
        _assert_same_answers(await _answers(services), want)
    async with serving(data_dir, bot_embedder) as (services, memory):
        m = await memory.wait()
        assert m is not None and m.exact_rows is not None and memory.snapshot_writes == 0
    assert caplog.text.count("no usable float32 rows file") == 1


async def test_a_reload_keeps_the_rows_file_in_step(data_dir, bot_embedder, tmp_path):
    async with serving(data_dir, bot_embedder) as (services, memory):
        old = await memory.wait()
        assert old is not None and old.exact_rows is not None
        report = await services.index([write_articles(tmp_path / "new.jsonl", [NEW_ARTICLE])])
        assert report.added == 1
        retriever = await services.retriever()
        asked: list[int] = []
        inner = retriever.vectors.get_vectors

        def counting(ids: Any) -> Any:
            asked.append(len(ids))
            return inner(ids)

        retriever.vectors.get_vectors = counting  # type: ignore[method-assign]
        retriever.invalidate()
        new = await memory.wait()
        assert new is not None and new.reused == len(old) and len(new) > len(old)
        # Only the new article's vectors were read from Chroma, for the rows and the file.
        assert sum(asked) == len(new) - len(old)
        assert new.exact_rows is not None and memory.snapshot_writes == 2
        retriever.vectors.get_vectors = inner  # type: ignore[method-assign]
        await _assert_file_is_chromas(data_dir, services, new)
        after = await _answers(services)
        # The old copy still reads its own rows (the file it opened was replaced, not changed).
        assert old.exact_rows is not None and old.exact_rows.read(np.arange(len(old))).shape[0]
    assert not list(data_dir.glob(f"{EXACT_NAME}.*.tmp"))
    async with serving(data_dir, bot_embedder) as (services, memory):
        read = await memory.wait()
        assert read is not None and memory.snapshot_reads == 1 and read.exact_rows is not None
        _assert_same_answers(await _answers(services), after)


async def test_no_snapshot_means_no_files(data_dir, bot_embedder):
    async with serving(data_dir, bot_embedder, dense_matrix_snapshot=False) as (_, memory):
        m = await memory.wait()
        assert m is not None and m.exact_rows is None and m.rescores
    assert not [p.name for p in data_dir.iterdir() if p.name.startswith("memory-copy")]
