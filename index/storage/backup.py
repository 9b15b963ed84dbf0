"""``newsbot backup DIR`` / ``newsbot restore DIR``: a consistent copy of a data dir.

What a backup holds: the index store (``newsbot.sqlite3``), the vectors, the bot's own state
(question log, votes, pages, digests: ``bot.sqlite3``, wherever BOT_STATE_PATH puts it) and
``manifest.json`` (format, versions, counts, a SHA-256 of every file), written last: a folder
without it is an interrupted backup and is never restored.

Consistency. Each SQLite file is copied with SQLite's online backup API, which gives a
snapshot of one moment while the bot goes on reading and writing. The index store and the
vectors must be of the *same* moment, though: an index run upserts vectors first and swaps
the article rows after (index/ingest/pipeline.py), so a snapshot of each taken at different
moments of a run would disagree. So both are copied while holding the data dir's write lock
(index/storage/write_lock.py), the lock every write run takes (``newsbot index``, the bot's
live sources and ``/reindex``): a backup started during a run waits for that run to end
(up to WRITE_LOCK_TIMEOUT), and the next run waits for the copy, which takes seconds; answers
go on meanwhile. Copying without the lock and checking afterwards would need a retry loop
that a busy ingestion could starve. The copy is still verified: its vectors are opened with a
fresh Chroma client and must hold exactly the store's chunk ids.

Vectors of the embedded Chroma are its persist directory (``chroma.sqlite3`` through the
backup API, the HNSW segment files copied as they are: nothing writes them while the lock is
held). Vectors on a Chroma server are exported through its API (``vectors.npy`` and
``vectors.jsonl``: ids and metadata), under the same lock.

Restore goes into an empty data dir only (it never merges into or overwrites a store), checks
every file against the manifest first, and counts what it restored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from index.settings import Settings
from index.storage.vectors import client_settings, close_client, embedded_client
from index.storage.write_lock import WriteLock

log = logging.getLogger(__name__)

__all__ = ["BackupError", "RestoreRefused", "backup", "restore"]

FORMAT = 1
MANIFEST = "manifest.json"
STORE = "newsbot.sqlite3"
BOT_STATE = "bot.sqlite3"
CHROMA_DIR = "chroma"
VECTORS_NPY = "vectors.npy"
VECTORS_JSONL = "vectors.jsonl"
PAGE = 5000  # vectors read or written per Chroma call (it refuses batches above 5461)
_SKIP = ("-wal", "-shm", "-journal")  # SQLite side files: the backup API copies their content


class BackupError(RuntimeError):
    """The backup could not be made, or its copy does not check out."""


class RestoreRefused(RuntimeError):
    """Restore would overwrite or merge into existing data, or the backup is damaged."""


@dataclass(slots=True)
class Result:
    path: Path
    manifest: dict[str, Any]
    seconds: float


# -- SQLite -----------------------------------------------------------------------------------


def sqlite_snapshot(src: Path, dst: Path) -> None:
    """One consistent copy of a live SQLite database (its WAL included)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(src, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            ok = target.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            target.close()
    finally:
        source.close()
    if ok != "ok":
        raise BackupError(f"{dst.name}: the copy fails SQLite's quick_check: {ok}")


def _count(db: Path, sql: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # a table this version of the file does not have
        return 0
    finally:
        con.close()


def _store_facts(db: Path) -> tuple[dict[str, Any], set[str]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        ids = {r[0] for r in con.execute("SELECT id FROM chunks")}
        # as Store.counts() counts them: an exact copy of another article is not one more
        articles = int(con.execute(
            "SELECT count(*) FROM articles WHERE dup_kind IS NOT 'exact'").fetchone()[0])
    finally:
        con.close()
    facts = {
        "schema_version": meta.get("schema_version"),
        "embedding_model": meta.get("embedding_model"),
        "articles": articles,
        "chunks": len(ids),
    }
    return facts, ids


def _bot_facts(db: Path) -> dict[str, int]:
    return {
        table: _count(db, f"SELECT count(*) FROM {table}")
        for table in ("questions", "feedback", "pages", "digest_subscriptions")
    }


# -- vectors ------------------------------------------------------------------------------------


def _server(settings: Settings) -> Any:
    from index.storage.chroma_client import server_client

    return server_client(settings, client_settings())


def _pages(collection: Any) -> Iterator[tuple[list[str], np.ndarray, list[dict[str, Any]]]]:
    offset = 0
    while True:
        got = collection.get(include=["embeddings", "metadatas"], limit=PAGE, offset=offset)
        ids = list(got["ids"])
        if not ids:
            return
        yield ids, np.asarray(got["embeddings"], dtype=np.float32), list(got["metadatas"])
        if len(ids) < PAGE:
            return
        offset += PAGE


def _copy_chroma_dir(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        target = dst / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.name == "chroma.sqlite3":
            sqlite_snapshot(path, target)
        elif not path.name.endswith(_SKIP) and path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _export(collection: Any, dest: Path) -> int:
    arrays: list[np.ndarray] = []
    n = 0
    with (dest / VECTORS_JSONL).open("w", encoding="utf-8") as out:
        for ids, vecs, metas in _pages(collection):
            arrays.append(vecs)
            for cid, meta in zip(ids, metas, strict=True):
                out.write(json.dumps({"id": cid, "metadata": meta}, ensure_ascii=False) + "\n")
            n += len(ids)
    dim = arrays[0].shape[1] if arrays else 0
    np.save(dest / VECTORS_NPY, np.concatenate(arrays) if arrays else np.zeros((0, dim)))
    return n


def _vector_ids(collection: Any) -> set[str]:
    out: set[str] = set()
    offset = 0
    while True:
        ids = collection.get(include=[], limit=20000, offset=offset)["ids"]
        out.update(ids)
        if len(ids) < 20000:
            return out
        offset += 20000


# -- files and manifest -----------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.relative_to(root)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("newsbot")
    except PackageNotFoundError:
        return "unknown"


def _empty_dir(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        entries = sorted(p.name for p in path.iterdir())[:3] if path.is_dir() else []
        shown = f" ({', '.join(entries)}…)" if entries else ""
        raise RestoreRefused(f"{what} {path} is not empty{shown}")


# -- backup -------------------------------------------------------------------------------------


def backup(settings: Settings, dest: Path, *, bot_state: Path | None = None) -> Result:
    """Copy the data dir of ``settings`` (and ``bot_state``, if it exists) into ``dest``,
    which must be new or empty. Blocking: run it in a thread."""
    started = time.monotonic()
    if not settings.sqlite_path.exists():
        raise BackupError(f"no store at {settings.sqlite_path}: nothing to back up")
    try:
        _empty_dir(dest, "the backup folder")
    except RestoreRefused as exc:
        raise BackupError(f"{exc}: back up into a new or empty folder") from None
    dest.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": FORMAT, "newsbot_version": _version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "chroma_collection": settings.chroma_collection,
        "vectors": "server" if settings.chroma_host else "embedded",
    }
    if bot_state is not None and bot_state.exists():
        sqlite_snapshot(bot_state, dest / BOT_STATE)  # the bot's own writes: no lock needed
        manifest["bot_state"] = _bot_facts(dest / BOT_STATE)
    lock = WriteLock(settings.data_dir)
    waiting_for = lock.writer()
    if waiting_for is not None:
        log.info("backup waits for the index run of another process",
                 extra={"kv": {"pid": waiting_for}})
    manifest["waited_for_writer"] = waiting_for
    # No write stamp: nothing is written, so readers (a running bot) need not reload.
    with lock.hold(settings.write_lock_timeout, stamp=False):
        sqlite_snapshot(settings.sqlite_path, dest / STORE)
        if settings.chroma_host:
            client = _server(settings)
            collection = client.get_collection(settings.chroma_collection)
            manifest["collection_metadata"] = dict(collection.metadata or {})
            _export(collection, dest)
        elif settings.chroma_path.exists():
            _copy_chroma_dir(settings.chroma_path, dest / CHROMA_DIR)
    facts, chunk_ids = _store_facts(dest / STORE)
    manifest["store"] = facts
    manifest["vectors_count"] = _verify_vectors(dest, manifest, chunk_ids)
    manifest["files"] = _files(dest)
    tmp = dest / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, dest / MANIFEST)
    return Result(dest, manifest, time.monotonic() - started)


def _verify_vectors(dest: Path, manifest: dict[str, Any], chunk_ids: set[str]) -> int:
    """The copy's vectors are exactly the store's chunks (orphans of a killed run aside)."""
    if manifest["vectors"] == "server":
        with (dest / VECTORS_JSONL).open(encoding="utf-8") as fh:
            ids = {json.loads(line)["id"] for line in fh}
        n = int(np.load(dest / VECTORS_NPY, mmap_mode="r").shape[0])
        if n != len(ids):
            raise BackupError(f"{VECTORS_NPY} holds {n} vectors for {len(ids)} ids")
    elif (dest / CHROMA_DIR).exists():
        client = embedded_client(dest / CHROMA_DIR)
        try:
            try:
                collection = client.get_collection(manifest["chroma_collection"])
            except Exception:  # noqa: BLE001 - chromadb's NotFound varies between versions
                collection = None
            ids = _vector_ids(collection) if collection is not None else set()
            if collection is not None:
                manifest["collection_metadata"] = dict(collection.metadata or {})
        finally:
            close_client(client)
    else:
        ids = set()
    missing = chunk_ids - ids
    if missing:
        raise BackupError(f"the copied vectors lack {len(missing)} of the store's "
                          f"{len(chunk_ids)} chunks (e.g. {sorted(missing)[0]})")
    return len(ids & chunk_ids)


# -- restore ------------------------------------------------------------------------------------


def read_manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    if not path.exists():
        raise RestoreRefused(f"{src} has no {MANIFEST}: not a newsbot backup, or an "
                             "interrupted one")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RestoreRefused(f"{path}: not valid JSON ({exc.msg})") from None
    if manifest.get("format") != FORMAT:
        raise RestoreRefused(f"{path}: backup format {manifest.get('format')!r}, this "
                             f"version reads format {FORMAT}")
    for rel, info in manifest.get("files", {}).items():
        file = src / rel
        if not file.exists():
            raise RestoreRefused(f"{file}: listed in the manifest but missing")
        if file.stat().st_size != info["bytes"] or _sha256(file) != info["sha256"]:
            raise RestoreRefused(f"{file}: its checksum differs from the manifest's "
                                 "(damaged or changed since the backup)")
    return manifest


def restore(settings: Settings, src: Path, *, bot_state: Path | None = None) -> Result:
    """Bring the backup in ``src`` into the empty data dir of ``settings``. Blocking."""
    started = time.monotonic()
    manifest = read_manifest(src)
    _empty_dir(settings.data_dir, "the data dir")
    has_state = (src / BOT_STATE).exists() and bot_state is not None
    if has_state and bot_state is not None and bot_state.exists():
        raise RestoreRefused(f"the bot state {bot_state} exists already")
    server = _server(settings) if settings.chroma_host else None
    if server is not None:
        try:
            existing = server.get_collection(settings.chroma_collection).count()
        except Exception:  # noqa: BLE001 - no such collection: what we want
            existing = 0
        if existing:
            raise RestoreRefused(
                f"collection {settings.chroma_collection!r} on the Chroma server holds "
                f"{existing} vectors already: restore into a new CHROMA_COLLECTION")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / STORE, settings.sqlite_path)
    if has_state and bot_state is not None:
        bot_state.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / BOT_STATE, bot_state)
    same_place = (server is None and manifest["vectors"] == "embedded"
                  and manifest["chroma_collection"] == settings.chroma_collection)
    if same_place:
        if (src / CHROMA_DIR).exists():
            shutil.copytree(src / CHROMA_DIR, settings.chroma_path)
        restored = _countembedded_client(settings.chroma_path, settings.chroma_collection)
    else:
        target_client = server if server is not None else embedded_client(settings.chroma_path)
        try:
            restored = _import(src, manifest, target_client, settings.chroma_collection)
        finally:
            if server is None:
                close_client(target_client)
    facts, _ = _store_facts(settings.sqlite_path)
    if facts["chunks"] != manifest["store"]["chunks"] or restored < manifest["vectors_count"]:
        raise BackupError(
            f"restored {facts['chunks']} chunks and {restored} vectors, the backup has "
            f"{manifest['store']['chunks']} and {manifest['vectors_count']}")
    return Result(settings.data_dir, manifest | {"restored_vectors": restored},
                  time.monotonic() - started)


def _countembedded_client(path: Path, name: str) -> int:
    if not path.exists():
        return 0
    client = embedded_client(path)
    try:
        return int(client.get_collection(name).count())
    except Exception:  # noqa: BLE001 - no collection in the backup: an empty store
        return 0
    finally:
        close_client(client)


def _source_pages(src: Path, manifest: dict[str, Any]) -> Iterator[
        tuple[list[str], np.ndarray, list[dict[str, Any]]]]:
    if manifest["vectors"] == "server":
        vecs = np.load(src / VECTORS_NPY, mmap_mode="r")
        with (src / VECTORS_JSONL).open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        for i in range(0, len(rows), PAGE):
            part = rows[i:i + PAGE]
            yield ([r["id"] for r in part], np.asarray(vecs[i:i + PAGE], dtype=np.float32),
                   [r["metadata"] for r in part])
        return
    if not (src / CHROMA_DIR).exists():
        return
    # Read from a scratch copy: opening the backup's own folder with Chroma would write to it.
    scratch = src.parent / f".{src.name}.restore-{os.getpid()}"
    shutil.copytree(src / CHROMA_DIR, scratch)
    client = embedded_client(scratch)
    try:
        yield from _pages(client.get_collection(manifest["chroma_collection"]))
    finally:
        close_client(client)
        shutil.rmtree(scratch, ignore_errors=True)


def _import(src: Path, manifest: dict[str, Any], client: Any, name: str) -> int:
    """Vectors into another place than they came from (a server, another collection)."""
    meta = manifest.get("collection_metadata") or {"hnsw:space": "cosine"}
    collection = client.get_or_create_collection(name=name, embedding_function=None,
                                                 metadata=meta)
    for ids, vecs, metas in _source_pages(src, manifest):
        collection.upsert(ids=ids, embeddings=vecs, metadatas=metas)
    return int(collection.count())
