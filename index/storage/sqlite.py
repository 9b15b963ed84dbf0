"""One way to open a project database, and numbered migrations recorded in ``schema_migrations``.

Every database (the index's ``newsbot.sqlite3``, the bot's state) lists its migrations in
order; opening a connection applies those not yet recorded. Several processes may open one
data dir at once (``serve`` and ``newsbot index``, the bot's three connections to its state):
the check and the migrations run under ``BEGIN IMMEDIATE`` with a busy timeout, so one applies
them and the others wait, then find nothing left to do.

A database made before numbered migrations has the tables but no ``schema_migrations``: its
first migrations are written to be re-runnable (``IF NOT EXISTS``) and are recorded without
changing what is already there; later ones run as usual.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations(
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # m001_initial, ...
    sql: str  # one or more statements, no BEGIN/COMMIT


async def connect_sqlite(path: Path) -> aiosqlite.Connection:
    """One recipe for every database of the project: WAL so readers never wait for the
    single writer, autocommit (explicit BEGIN where a transaction is meant), named rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        db.row_factory = sqlite3.Row
        await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await _switch_to_wal(db)
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        # An unclosed aiosqlite connection keeps its worker thread, and the process, alive.
        await db.close()
        raise
    return db


async def _switch_to_wal(db: aiosqlite.Connection) -> None:
    """SQLite answers ``journal_mode=WAL`` with "database is locked" at once, without the busy
    handler, while another process is creating or switching the same new file: retry it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or loop.time() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


def statements(sql: str) -> list[str]:
    """The statements of a script, one by one (``executescript`` would commit the migration's
    transaction before running them)."""
    out: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                out.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")
    return out


async def _applied(db: aiosqlite.Connection) -> set[int] | None:
    """Versions recorded, or None when the database has no ``schema_migrations`` yet."""
    rows = list(await db.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ))  # fmt: skip
    if not rows:
        return None
    return {int(r[0]) for r in await db.execute_fetchall("SELECT version FROM schema_migrations")}


async def migrate(
    db: aiosqlite.Connection, migrations: Sequence[Migration], *, label: str = "database"
) -> list[int]:
    """Apply the migrations not yet recorded, in one transaction; the versions applied."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"{label}: migration versions must be unique and in order: {versions}")
    applied = await _applied(db)
    if applied is not None and applied >= set(versions):
        return []
    await db.execute("BEGIN IMMEDIATE")
    try:
        legacy = await _applied(db) is None and bool(list(await db.execute_fetchall(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' LIMIT 1"
        )))  # fmt: skip
        await db.execute(_LEDGER)
        done = await _applied(db) or set()
        now = datetime.now(UTC).isoformat()
        ran: list[int] = []
        for m in migrations:
            if m.version in done:
                continue
            for stmt in statements(m.sql):
                await db.execute(stmt)
            await db.execute(
                "INSERT INTO schema_migrations(version, name, applied_at) VALUES(?, ?, ?)",
                (m.version, m.name, now),
            )
            ran.append(m.version)
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    if legacy:
        log.info("%s made before numbered migrations: recorded as of migration %s", label, ran)
    elif ran:
        log.info("%s: applied migrations %s", label, ran)
    return ran
