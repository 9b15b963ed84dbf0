"""The in-memory copy saved in the data dir, so a restart reads it in seconds.

Building the copy reads every vector from Chroma and tokenizes every keyword body again: at
100k chunks ~30 s on an idle core, minutes on a loaded one, half an hour at a million. So
once built it is saved (``memory-copy.npz``: its arrays, the chunk ids and terms as text),
and a process starting on an unchanged corpus reads that instead.

A snapshot is only a cache, and never answers for a corpus it does not reflect. It is
stamped with the corpus generation token (a random token that SQLite triggers draw afresh at
every write to a chunk or to the article columns the copy reads, whatever process makes it:
index/storage/schema.py, m004), the vector collection, its model and count, and the copy's
precision; a snapshot whose stamp differs from the store's now, or whose arrays do not fit
together or fail the zip's CRC-32, is ignored (and said so in the log) and the copy is built
again. It is
written atomically (a temporary file, fsync, rename), and only when the corpus did not change
while the copy was read. Backups leave it out (index/storage/backup.py copies named files),
and a restore goes into an empty data dir, so a restored store builds its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np

from index.search.chunk_matrix import PRECISIONS, ChunkMatrix, VectorSource

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "SNAPSHOT_NAME", "load_snapshot", "save_snapshot"]

SNAPSHOT_NAME = "memory-copy.npz"
FORMAT = 1
_SEP = "\n"  # between chunk ids and between terms (terms are letters and digits only)


def _text(items: list[str]) -> np.ndarray:
    return np.frombuffer(_SEP.join(items).encode("utf-8"), dtype=np.uint8)


def _items(blob: np.ndarray, count: int) -> list[str]:
    if count == 0:
        return []
    items = blob.tobytes().decode("utf-8").split(_SEP)
    if len(items) != count:
        raise ValueError(f"{len(items)} names for {count} rows")
    return items


def save_snapshot(path: Path, matrix: ChunkMatrix, key: dict[str, Any]) -> int:
    """Write ``matrix`` to ``path`` stamped with ``key``; its size in bytes (0: not saved,
    because a chunk id holds the separator). Blocking: run it off the event loop."""
    if any(_SEP in cid for cid in matrix.ids):
        log.warning("a chunk id holds a line break: the in-memory copy is not saved")
        return 0
    meta = {"format": FORMAT, "key": key, "chunks": len(matrix), "precision": matrix.precision,
            "source_keys": matrix.source_keys, "langs": matrix.langs,
            "keywords": matrix.keywords is not None}  # fmt: skip
    arrays = matrix.arrays()
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    arrays["ids"] = _text(matrix.ids)
    if matrix.keywords is not None:
        arrays["vocab"] = _text(matrix.keywords.terms())
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power cut
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path.stat().st_size


def load_snapshot(
    path: Path, key: dict[str, Any], vectors: VectorSource, stamp: Hashable = None
) -> ChunkMatrix | None:
    """The copy saved at ``path`` if it is stamped with ``key`` and whole, else None (and a
    log line saying why). Blocking: run it off the event loop."""
    if not path.exists():
        log.info("no snapshot of the in-memory copy yet: building it",
                 extra={"kv": {"path": str(path)}})  # fmt: skip
        return None
    started = time.perf_counter()
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
            if meta.get("format") != FORMAT or meta.get("key") != key:
                log.info("the snapshot of the in-memory copy is of another corpus: rebuilding",
                         extra={"kv": {"path": str(path), "snapshot": meta.get("key"),
                                       "store": key}})  # fmt: skip
                return None
            precision = meta["precision"]
            if precision not in PRECISIONS:
                raise ValueError(f"unknown precision {precision!r}")
            n = int(meta["chunks"])
            ids = _items(z["ids"], n)
            arrays = {name: z[name] for name in z.files if name not in ("meta", "ids", "vocab")}
            vocab = None
            if meta["keywords"]:
                count = len(arrays["kw_indptr"]) - 1
                vocab = _items(z["vocab"], count)
        matrix = ChunkMatrix.restore(
            ids, meta["source_keys"], meta["langs"], arrays, vectors,
            precision=precision, vocab=vocab, stamp=stamp,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile,
            EOFError) as exc:  # fmt: skip
        log.warning("the snapshot of the in-memory copy is damaged: ignored, rebuilding",
                    extra={"kv": {"path": str(path), "error": f"{type(exc).__name__}: {exc}"[:300]}})  # fmt: skip
        return None
    log.info("in-memory copy read from its snapshot",
             extra={"kv": {"chunks": n, "seconds": round(time.perf_counter() - started, 2)}})  # fmt: skip
    return matrix
