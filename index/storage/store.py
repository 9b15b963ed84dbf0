"""SQLite, the source of truth: articles, chunks, the keyword index, runs and duplicate links.

Chroma only mirrors chunk vectors; every chunk id in Chroma must exist here and vice versa
at the end of a run. One connection is the single writer (aiosqlite runs it in its own
thread), so callers never hold a write lock across an ``await`` of someone else's.

``Store`` is assembled from one part per job: runs.py (runs and incremental state),
writes.py, reads.py, periods.py (digests' articles of a period), fulltext.py (FTS planning
and document frequencies); filters.py turns a question's filters into SQL and schema.py holds
the numbered migrations. Nothing outside index/storage/ writes SQL for these tables.
"""

from __future__ import annotations

from pathlib import Path

from index.storage.boilerplate import BoilerplateStore
from index.storage.fulltext import FulltextMixin, candidate_match, or_terms
from index.storage.periods import PeriodsMixin
from index.storage.records import (
    ArticleRecord,
    ArticleWrite,
    ChunkRecord,
    Facets,
    StoredState,
    to_ts,
    utcnow,
)
from index.storage.runs import RunsMixin
from index.storage.schema import INDEX_MIGRATIONS
from index.storage.sqlite import connect_sqlite, migrate
from index.storage.writes import WritesMixin

__all__ = [
    "ArticleRecord",
    "ArticleWrite",
    "ChunkRecord",
    "Facets",
    "Store",
    "StoredState",
    "candidate_match",
    "connect_sqlite",
    "or_terms",
    "to_ts",
    "utcnow",
]

MMAP_BYTES = 1 << 30


class Store(FulltextMixin, PeriodsMixin, WritesMixin, RunsMixin):
    """Async access to the SQLite database; construct with :meth:`open`."""

    @classmethod
    async def open(cls, path: Path) -> Store:
        db = await connect_sqlite(path)
        try:
            # Memory-mapped reads: chunk and article rows are read at random by every question.
            await db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            await migrate(db, INDEX_MIGRATIONS, label=str(path))
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        await self.db.close()

    @property
    def boilerplate(self) -> BoilerplateStore:
        """The outlets' learned boilerplate lines (boilerplate.py), on this connection."""
        return BoilerplateStore(self.db)
