"""The in-memory copy saved in the data dir, so a restart reads it in seconds.

Building the copy reads every vector from Chroma and tokenizes every keyword body again: at
100k chunks ~30 s on an idle core, minutes on a loaded one, half an hour at a million. So
once built it is saved (``memory-copy.npz``: its arrays, the chunk ids and terms as text;
beside it ``memory-copy.f32``, the float32 rows re-scoring reads: index/search/exact_rows.py),
and a process starting on an unchanged corpus reads that instead. The snapshot's stamp names
the rows file by a token; a rows file that is absent or not the one named leaves re-scoring
to Chroma, and is written again from Chroma's vectors while the copy serves.

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

import logging
import time
import zipfile
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np

from index.search.chunk_matrix import PRECISIONS, ChunkMatrix, VectorSource
from index.search.exact_rows import EXACT_NAME, ExactRows
from index.search.npz_file import SEP, decode_lines, encode_lines, read_meta, write_atomically

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "SNAPSHOT_NAME", "load_snapshot", "save_snapshot"]

SNAPSHOT_NAME = "memory-copy.npz"
FORMAT = 1
def save_snapshot(path: Path, matrix: ChunkMatrix, key: dict[str, Any]) -> int:
    """Write ``matrix`` to ``path`` stamped with ``key``, and keep the float32 rows file it
    wrote while built (``memory-copy.f32`` beside it, named by token in the stamp); the
    snapshot's size in bytes (0: not saved, because a chunk id holds the separator).
    Blocking: run it off the event loop."""
    if any(SEP in cid for cid in matrix.ids):
        log.warning("a chunk id holds a line break: the in-memory copy is not saved")
        matrix.drop_exact_file()
        return 0
    meta = {"format": FORMAT, "key": key, "chunks": len(matrix), "precision": matrix.precision,
            "source_keys": matrix.source_keys, "langs": matrix.langs,
            "keywords": matrix.keywords is not None}  # fmt: skip
    writer, matrix.exact_writer = matrix.exact_writer, None
    if writer is not None:
        if writer.final != path.with_name(EXACT_NAME):
            raise ValueError(f"the float32 rows were written for {writer.final}, not beside {path}")
        # Renamed first: a crash between the two leaves a snapshot naming the old token,
        # which then reads as stale (re-scoring asks the vector store), never a mismatch.
        try:
            writer.commit()
        except BaseException:
            writer.drop()
            raise
        meta["exact"] = {"token": writer.token, "dim": writer.dim}
    arrays = matrix.arrays()
    arrays["ids"] = encode_lines(matrix.ids)
    if matrix.keywords is not None:
        arrays["vocab"] = encode_lines(matrix.keywords.terms())
    return write_atomically(path, meta, arrays)


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
            meta = read_meta(z)
            if meta.get("format") != FORMAT or meta.get("key") != key:
                log.info("the snapshot of the in-memory copy is of another corpus: rebuilding",
                         extra={"kv": {"path": str(path), "snapshot": meta.get("key"),
                                       "store": key}})  # fmt: skip
                return None
            precision = meta["precision"]
            if precision not in PRECISIONS:
                raise ValueError(f"unknown precision {precision!r}")
            n = int(meta["chunks"])
            ids = decode_lines(z["ids"], n)
            arrays = {name: z[name] for name in z.files if name not in ("meta", "ids", "vocab")}
            vocab = None
            if meta["keywords"]:
                count = len(arrays["kw_indptr"]) - 1
                vocab = decode_lines(z["vocab"], count)
        exact = _exact_rows(path.with_name(EXACT_NAME), meta.get("exact"), n, arrays["matrix"])
        matrix = ChunkMatrix.restore(
            ids, meta["source_keys"], meta["langs"], arrays, vectors,
            precision=precision, vocab=vocab, stamp=stamp, exact=exact,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile,
            EOFError) as exc:  # fmt: skip
        log.warning("the snapshot of the in-memory copy is damaged: ignored, rebuilding",
                    extra={"kv": {"path": str(path), "error": f"{type(exc).__name__}: {exc}"[:300]}})  # fmt: skip
        return None
    log.info("in-memory copy read from its snapshot",
             extra={"kv": {"chunks": n, "seconds": round(time.perf_counter() - started, 2),
                           "float32_rows_file": exact is not None}})  # fmt: skip
    return matrix


def _exact_rows(path: Path, stamp: Any, n: int, matrix: np.ndarray) -> ExactRows | None:
    """The float32 rows file the snapshot names, or None (with a log line) when it is absent,
    of another copy or not whole: re-scoring then fetches vectors from the vector store."""
    if matrix.dtype == np.float32:
        return None  # exact already
    problem = "the snapshot names none"
    if isinstance(stamp, dict) and isinstance(stamp.get("token"), str):
        try:
            return ExactRows.open(path, stamp["token"], n, int(matrix.shape[1]))
        except (OSError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"[:300]
    log.info("no usable float32 rows file beside the in-memory copy's snapshot: re-scoring "
             "fetches vectors from the vector store", extra={"kv": {"path": str(path),
                                                                     "why": problem}})  # fmt: skip
    return None
