"""The float32 vectors of the in-memory copy's rows, in a file beside its snapshot.

The int8 copy (index/search/chunk_matrix.py) re-scores its near-ties exactly. Fetching those
~120 float32 vectors by id from Chroma costs ~3.5 ms a question (its Rust ``get``, then
Python lists turned into numpy): most of the dense side of a narrow filter. Read by row from
a file they cost ~0.1 ms, with the file's pages in the page cache.

``memory-copy.f32`` holds row ``i`` of the copy at ``HEADER + i * dim * 4``, as Chroma gave it
(not normalised: re-scoring normalises it exactly as it normalises a fetched vector, so both
give the same scores bit for bit). The rows are read with ``preadv`` into the re-score's own
array, not mapped: a mapping would leave every page a question ever touched in the process's
resident set (the whole file after a while, 2 GB at a million 512-dim chunks), while page
cache the kernel can drop at will.

The header holds a random token that the snapshot's stamp names, the row count and the width.
A file whose header does not match, or of the wrong size, is ignored (re-scoring asks Chroma
again). A row read back is checked against the int8 row it must round to, so a damaged
file is caught where it is used (see ChunkMatrix._rescored).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["EXACT_NAME", "ExactRows", "ExactRowsWriter", "write_rows"]

EXACT_NAME = "memory-copy.f32"
MAGIC = b"newsbot-f32\x00\x01\x00\x00\x00"  # 16 bytes: name and format 1
HEADER = 4096  # the rows start page-aligned
_FIELDS = struct.Struct("<16s16sQQ")  # magic, token, rows, width


def _check(fd: int, rows: int, dim: int) -> str:
    """The token of the open file ``fd`` if it holds ``rows`` of ``dim``, else ValueError."""
    head = os.pread(fd, _FIELDS.size, 0)
    if len(head) != _FIELDS.size:
        raise ValueError("no header")
    magic, token, n, width = _FIELDS.unpack(head)
    if magic != MAGIC:
        raise ValueError("not a file of float32 rows of this format")
    if (n, width) != (rows, dim):
        raise ValueError(f"{n} rows of {width} for {rows} of {dim}")
    if os.fstat(fd).st_size != HEADER + rows * dim * 4:
        raise ValueError("the file is not whole")
    return token.hex()


class ExactRows:
    """Read-only rows of an open file (its descriptor outlives a rename or unlink of the
    name, so a copy keeps its rows while a newer copy replaces the file)."""

    def __init__(self, fd: int, rows: int, dim: int, token: str) -> None:
        self._fd, self.rows, self.dim, self.token = fd, rows, dim, token

    @classmethod
    def open(cls, path: Path, token: str, rows: int, dim: int) -> ExactRows:
        """The file at ``path`` if its header says ``token``, ``rows`` and ``dim``; OSError or
        ValueError when it is absent or does not."""
        fd = os.open(path, os.O_RDONLY)
        try:
            found = _check(fd, rows, dim)
            if found != token:
                raise ValueError("the file is of another copy (stale)")
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, rows, dim, token)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows`` (row numbers, in any order), one array row each."""
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        width = self.dim * 4
        view = out.data.cast("B")
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= self.rows):
            raise IndexError("row out of range")
        # Runs of consecutive rows are read in one call.
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate(([0], breaks)).tolist()
        ends = np.concatenate((breaks, [len(rows)])).tolist()
        first = rows.tolist()
        for a, b in zip(starts, ends, strict=True):
            want = (b - a) * width
            got = os.preadv(self._fd, [view[a * width : b * width]], HEADER + first[a] * width)
            if got != want:
                raise OSError(f"short read of the float32 rows ({got} of {want} bytes)")
        return out

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()


class ExactRowsWriter:
    """A new file of ``rows`` float32 rows, filled in any order while a copy is built, then
    either kept (:meth:`commit`: renamed to its final name, made durable) or dropped."""

    def __init__(self, final: Path, rows: int, dim: int) -> None:
        self.final, self.rows, self.dim = final, rows, dim
        self.token = secrets.token_hex(16)
        # Unique, so a new file never truncates one a reader still uses.
        self.tmp = final.with_name(f"{final.name}.{os.getpid()}.{self.token[:8]}.tmp")
        self._fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            head = _FIELDS.pack(MAGIC, bytes.fromhex(self.token), rows, dim)
            os.pwrite(self._fd, head.ljust(HEADER, b"\x00"), 0)
            os.ftruncate(self._fd, HEADER + rows * dim * 4)  # unwritten rows read as zeros
        except BaseException:
            self.drop()
            raise

    def write(self, at: np.ndarray, vectors: np.ndarray) -> None:
        """Rows ``at`` (in any order) get ``vectors`` (float32, one row each)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        width = self.dim * 4
        at = np.asarray(at, dtype=np.int64)
        breaks = np.flatnonzero(np.diff(at) != 1) + 1
        starts = np.concatenate(([0], breaks)).tolist()
        ends = np.concatenate((breaks, [len(at)])).tolist()
        first = at.tolist()
        view = vectors.data.cast("B")
        for a, b in zip(starts, ends, strict=True):
            os.pwritev(self._fd, [view[a * width : b * width]], HEADER + first[a] * width)

    def reader(self) -> ExactRows:
        """The rows written so far, read through a descriptor of their own."""
        return ExactRows(os.open(self.tmp, os.O_RDONLY), self.rows, self.dim, self.token)

    def commit(self) -> None:
        """fsync, then rename to the final name (atomic: a reader sees the old file or this)."""
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        os.replace(self.tmp, self.final)

    def drop(self) -> None:
        """Close and remove the temporary file (a reader opened meanwhile keeps its rows)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def write_rows(
    path: Path,
    ids: Sequence[str],
    dim: int,
    vectors: Callable[[Sequence[str]], Mapping[str, np.ndarray]],
    batch: int,
) -> ExactRowsWriter:
    """A new (uncommitted) file of the vectors of ``ids``, read ``batch`` at a time (a
    missing one reads as zeros)."""
    writer = ExactRowsWriter(path, len(ids), dim)
    try:
        for a in range(0, len(ids), batch):
            part = ids[a : a + batch]
            got = vectors(part)
            rows = np.zeros((len(part), dim), dtype=np.float32)
            for i, cid in enumerate(part):
                v = got.get(cid)
                if v is not None:
                    rows[i] = v
            writer.write(np.arange(a, a + len(part)), rows)
    except BaseException:
        writer.drop()
        raise
    return writer
