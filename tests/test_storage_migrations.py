"""Numbered migrations: data made before them upgrades in place, concurrent opens all succeed.

tests/data/store-v0.sql and bot-state-v0.sql were dumped from databases made by the code that
predates migrations (tests/data/make_v0_dumps.py says how).
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.digests.store import DigestStore
from bot.migrations import BOT_MIGRATIONS
from bot.state import BotState
from index.models import Filters
from index.storage import keywords
from index.storage.schema import INDEX_MIGRATIONS
from index.storage.sources import SourceLedger
from index.storage.sqlite import Migration, connect_sqlite, migrate, statements
from index.storage.store import Store

DATA = Path(__file__).parent / "data"


def _load(dump: str, path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript((DATA / dump).read_text())
    con.close()


def _rows(path: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _schema(path: Path) -> set[tuple[str, str]]:
    """Every table and index with its SQL, as SQLite stores it, minus the migrations ledger."""
    return {
        (name, " ".join(sql.split()))
        for name, sql in _rows(
            path,
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'",
        )
        if name != "schema_migrations"
    }


async def test_an_index_store_made_before_migrations_upgrades_in_place(tmp_path):
    old = tmp_path / "old.sqlite3"
    _load("store-v0.sql", old)
    before = {
        t: _rows(old, f"SELECT * FROM {t} ORDER BY 1")
        for t in ("articles", "chunks", "runs", "meta")
    }
    assert len(before["articles"]) == 4 and len(before["chunks"]) == 6

    store = await Store.open(old)
    try:
        for table, rows in before.items():
            assert _rows(old, f"SELECT * FROM {table} ORDER BY 1") == rows, table
        # A question's keyword side answers from the upgraded store: the Genoa article first.
        hits = await store.fts_search(keywords.fts_match("porto di Genova"), 5)
        assert hits, "no keyword hit on the upgraded store"
        records = await store.chunk_records([c for c, _ in hits])
        assert records[hits[0][0]].article_id == "a1"
        assert records[hits[0][0]].title == "Il porto di Genova riapre"
        assert (await store.doc_freqs(["genov", "zebr"])) == {"genov": 2, "zebr": 0}
        assert (await store.counts())["exact_duplicates"] == 1
        assert (await store.last_run() or {}).get("stats") == {"added": 4}
        assert await store.get_meta("embedding_model") == "hashing-8"
        # What callers used to ask in SQL of their own, now the store's methods.
        assert (await store.article_origins())["a4"] == "news.jsonl:4"
        rowids = await store.chunk_rowids(Filters(langs=["en"]))
        assert [await store.chunk_text_by_rowid(r) for r in rowids] == [
            ("The MOSE flood barrier was raised again on Tuesday.", "en"),
            ("Venice stayed dry.", "en"),
        ]
        assert len(await store.titled_chunk_texts()) == 6
        since, until = datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)
        assert await store.period_article_ids(int(since.timestamp()), int(until.timestamp())) == [
            "a3",
            "a2",
        ]
        await store.optimize()
    finally:
        await store.close()
    ledger = await SourceLedger.open(old)
    try:
        health = await ledger.get("feed-genova")
        assert health is not None and health.last_attempt == 1_764_000_000.0
        assert [i.article_id for i in await ledger.inbox()] == ["p1"]
    finally:
        await ledger.close()

    recorded = _rows(old, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert recorded == [(m.version, m.name) for m in INDEX_MIGRATIONS]
    # m001 + m002 are exactly the schema the old code made: a fresh store has the same one.
    fresh = tmp_path / "fresh.sqlite3"
    await (await Store.open(fresh)).close()
    assert _schema(fresh) == _schema(old)


async def test_bot_state_made_before_migrations_upgrades_in_place(tmp_path):
    path = tmp_path / "bot.sqlite3"
    _load("bot-state-v0.sql", path)
    failures = _rows(path, "SELECT * FROM delivery_failures")
    state = await BotState.open(path, ZoneInfo("Europe/Rome"))
    try:
        page = await state.page("pg1")
        assert page is not None and page.question == "porto di Genova"
        assert page.hit_ids == ["a1::h0::0"]
        assert await state.feedback("pg1") == [(7, 1)]
        assert _rows(path, "SELECT question, hits FROM questions") == [("porto di Genova", 1)]
    finally:
        await state.close()
    digests = await DigestStore.open(path)
    try:
        sub = await digests.subscription(42)
        assert sub is not None and (sub.at, sub.frequency, sub.lang) == ("08:00", "daily", "it")
    finally:
        await digests.close()
    assert _rows(path, "SELECT * FROM delivery_failures") == failures and failures
    recorded = _rows(path, "SELECT version, name FROM schema_migrations")
    assert recorded == [(m.version, m.name) for m in BOT_MIGRATIONS]
    fresh = tmp_path / "fresh.sqlite3"
    state = await BotState.open(fresh, ZoneInfo("UTC"))
    await state.close()
    assert _schema(fresh) == _schema(path)


async def test_a_later_migration_runs_once_and_a_failing_one_leaves_nothing(tmp_path):
    path = tmp_path / "old.sqlite3"
    _load("store-v0.sql", path)
    await (await Store.open(path)).close()
    db = await connect_sqlite(path)
    try:
        nxt = INDEX_MIGRATIONS[-1].version + 1
        later = (
            *INDEX_MIGRATIONS,
            Migration(nxt, "m_next_test", "ALTER TABLE runs ADD COLUMN note TEXT;"),
        )
        assert await migrate(db, later) == [nxt]
        assert await migrate(db, later) == []
        broken = (
            *later,
            Migration(nxt + 1, "m_broken", "CREATE TABLE t4(x);\nSELECT * FROM nowhere;"),
        )
        with pytest.raises(sqlite3.OperationalError):
            await migrate(db, broken)
        assert not list(await db.execute_fetchall("SELECT 1 FROM sqlite_master WHERE name='t4'"))
        versions = [
            r[0] for r in await db.execute_fetchall("SELECT version FROM schema_migrations")
        ]
        assert versions == [*(m.version for m in INDEX_MIGRATIONS), nxt]
        assert [r[1] for r in await db.execute_fetchall("PRAGMA table_info(runs)")][-1] == "note"
    finally:
        await db.close()


def test_statements_split_a_script_and_reject_a_truncated_one():
    script = "-- a comment\nCREATE TABLE a(x TEXT DEFAULT ';');\nCREATE INDEX ai ON a(x);\n"
    assert statements(script) == [
        "-- a comment\nCREATE TABLE a(x TEXT DEFAULT ';');",
        "CREATE INDEX ai ON a(x);",
    ]
    with pytest.raises(ValueError, match="incomplete"):
        statements("CREATE TABLE b(x")


async def test_concurrent_opens_of_one_fresh_data_dir_all_succeed(tmp_path):
    """The bot and the indexer may start together: every opener succeeds, migrations apply once."""
    path = tmp_path / "data" / "newsbot.sqlite3"

    async def open_close(i: int) -> None:
        if i % 2:
            ledger = await SourceLedger.open(path)
            await ledger.close()
        else:
            store = await Store.open(path)
            await store.close()

    await asyncio.gather(*(open_close(i) for i in range(6)))
    assert _rows(path, "SELECT version FROM schema_migrations ORDER BY version") == [
        (m.version,) for m in INDEX_MIGRATIONS
    ]


def test_concurrent_opens_from_several_processes(tmp_path):
    """Separate processes (not threads of one) opening one fresh data dir at the same moment."""
    index_path = tmp_path / "data" / "newsbot.sqlite3"
    state_path = tmp_path / "data" / "bot.sqlite3"
    go = tmp_path / "go"
    code = (
        "import asyncio, sys, time\n"
        "from pathlib import Path\n"
        "from zoneinfo import ZoneInfo\n"
        "from index.storage.store import Store\n"
        "from bot.state import BotState\n"
        "from bot.digests.store import DigestStore\n"
        "go = Path(sys.argv[1])\n"
        "while not go.exists():\n"
        "    time.sleep(0.005)\n"
        "async def main():\n"
        "    s = await Store.open(Path(sys.argv[2]))\n"
        "    await s.close()\n"
        "    b = await BotState.open(Path(sys.argv[3]), ZoneInfo('UTC'))\n"
        "    d = await DigestStore.open(Path(sys.argv[3]))\n"
        "    await d.close()\n"
        "    await b.close()\n"
        "asyncio.run(main())\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(go), str(index_path), str(state_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]  # fmt: skip
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    assert sorted(_rows(index_path, "SELECT version FROM schema_migrations")) == [
        (m.version,) for m in INDEX_MIGRATIONS
    ]
    assert _rows(state_path, "SELECT version FROM schema_migrations") == [(1,)]
