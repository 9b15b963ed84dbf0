"""Writes: an article's row, chunks, keyword-index bodies and bands replaced in one transaction,
removals, and the stale-vector ledger that keeps Chroma in step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from sqlite3 import Connection

from index.storage.base import StoreBase, in_one_hop
from index.storage.records import ArticleWrite, iso, to_ts, utcnow


class WritesMixin(StoreBase):
    async def write_articles(self, writes: Sequence[ArticleWrite], run_id: int) -> None:
        """Replace each article's row and chunks in one transaction.

        Old chunk ids go to ``stale_vectors`` in the same transaction, so their vectors are
        deleted from Chroma afterwards even if the process dies right after the commit.
        The transaction runs whole on the connection's thread, the same statements in the
        same order: statement by statement it was ~15 round trips to that thread per
        article, each one waiting for the interpreter lock beside the model's encode.
        """
        await in_one_hop(self.db, _write_articles, writes, run_id, utcnow())

    async def remove_articles(self, ids: Sequence[str]) -> None:
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            for aid in ids:
                await in_one_hop(self.db, _delete_article_rows, aid)
            # Duplicates of a removed canonical lose their link; the next run re-judges them.
            for i in range(0, len(ids), 500):
                part = list(ids[i : i + 500])
                q = ",".join("?" * len(part))
                await self.db.execute(
                    f"UPDATE articles SET canonical_id=NULL, dup_kind=NULL, similarity=NULL,"
                    f" content_hash='' WHERE canonical_id IN ({q})",
                    part,
                )
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise

    async def mark_all_for_reembed(self) -> None:
        """Forget every chunk so the next run re-chunks and re-embeds all articles."""
        await self.db.execute("BEGIN IMMEDIATE")
        await self.db.execute("DELETE FROM chunks_fts")
        await self.db.execute("DELETE FROM chunks")
        await self.db.execute("DELETE FROM stale_vectors")
        await self.db.execute("UPDATE articles SET content_hash='', embedded=0")
        await self.db.execute("COMMIT")

    async def mark_for_reembed(self, article_ids: Iterable[str]) -> None:
        ids = list(article_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = ",".join("?" * len(part))
            await self.db.execute(
                f"UPDATE articles SET content_hash='' WHERE id IN ({q})", part
            )

    async def stale_vector_ids(self) -> list[str]:
        rows = await self._all("SELECT chunk_id FROM stale_vectors")
        return [r[0] for r in rows]

    async def clear_stale(self, ids: Sequence[str]) -> None:
        await self.db.executemany(
            "DELETE FROM stale_vectors WHERE chunk_id=?", [(i,) for i in ids]
        )

    async def optimize(self) -> None:
        """``PRAGMA optimize``: refresh the query planner's statistics after a bulk load."""
        await self.db.execute("PRAGMA optimize")


def _write_articles(
    db: Connection, writes: Sequence[ArticleWrite], run_id: int, now: datetime
) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        for w in writes:
            a = w.article
            _delete_article_rows(db, a.id)
            db.execute(
                "INSERT INTO articles(id, title, text, url, published, published_ts, source,"
                " source_key, lang, content_hash, raw_hash, origin, canonical_id, dup_kind,"
                " similarity, minhash, embedded, indexed_at, indexed_ts, run_id)"
                " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    a.id, a.title, a.text, a.url, iso(a.published), to_ts(a.published),
                    a.source, a.source.lower() if a.source else None, a.lang,
                    w.content_hash, w.raw_hash, a.origin, w.canonical_id, w.dup_kind,
                    w.similarity, w.signature, 1 if w.dup_kind != "exact" else 0,
                    now.isoformat(), to_ts(now), run_id,
                ),
            )
            for chunk, cid, body in zip(w.chunks, w.chunk_ids, w.fts_bodies, strict=True):
                cur = db.execute(
                    "INSERT INTO chunks(id, article_id, ord, start, end, text)"
                    " VALUES(?,?,?,?,?,?)",
                    (cid, a.id, chunk.ord, chunk.start, chunk.end, chunk.text),
                )
                db.execute(
                    "INSERT INTO chunks_fts(rowid, body) VALUES(?, ?)", (cur.lastrowid, body)
                )
            if w.band_keys:
                db.executemany(
                    "INSERT INTO article_bands(band_key, article_id) VALUES(?, ?)",
                    [(k, a.id) for k in w.band_keys],
                )
            # Chunk ids are content-addressed: a passage re-embedded unchanged (a repair,
            # a new model) keeps its id, and its fresh vector must not go as stale.
            db.executemany(
                "DELETE FROM stale_vectors WHERE chunk_id=?", [(c,) for c in w.chunk_ids]
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _delete_article_rows(db: Connection, article_id: str) -> None:
    db.execute(
        "INSERT OR IGNORE INTO stale_vectors(chunk_id)"
        " SELECT id FROM chunks WHERE article_id=?",
        (article_id,),
    )
    db.execute(
        "DELETE FROM chunks_fts WHERE rowid IN (SELECT rowid FROM chunks WHERE article_id=?)",
        (article_id,),
    )
    db.execute("DELETE FROM chunks WHERE article_id=?", (article_id,))
    db.execute("DELETE FROM article_bands WHERE article_id=?", (article_id,))
    db.execute("DELETE FROM articles WHERE id=?", (article_id,))
