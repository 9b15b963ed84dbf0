"""One way to keep arrays in the data dir across restarts (the in-memory copy's snapshot,
the translation's word vectors): an ``.npz`` with a JSON ``meta`` stamp, names as one
line-separated text array, written atomically so a crash or a second process never leaves
a half-written file where a reader looks. Readers check the stamp and treat anything that
does not read back whole as absent."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SEP", "decode_lines", "encode_lines", "read_meta", "remove_leftovers", "write_atomically"]

SEP = "\n"  # names kept this way (chunk ids, keyword terms, words) never hold a line break


def encode_lines(items: list[str]) -> np.ndarray:
    return np.frombuffer(SEP.join(items).encode("utf-8"), dtype=np.uint8)


def decode_lines(blob: np.ndarray, count: int) -> list[str]:
    """The ``count`` names of ``blob``; ValueError when it holds another number."""
    if count == 0:
        return []
    items = blob.tobytes().decode("utf-8").split(SEP)
    if len(items) != count:
        raise ValueError(f"{len(items)} names for {count} rows")
    return items


def read_meta(z: Any) -> dict[str, Any]:
    """The stamp of an opened ``np.load`` archive."""
    meta = json.loads(z["meta"].tobytes().decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("the stamp is not an object")
    return meta


def write_atomically(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> int:
    """Write ``arrays`` and the ``meta`` stamp to ``path`` (temporary file, fsync, rename,
    fsync of the folder); the file's size in bytes. Blocking: run it off the event loop."""
    remove_leftovers(path)
    payload = dict(arrays)
    payload["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            np.savez(fh, allow_pickle=False, **payload)
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


def remove_leftovers(final: Path) -> int:
    """Remove the temporary files of ``final`` that processes no longer running left (a
    build killed midway); how many."""
    removed = 0
    for tmp in final.parent.glob(f"{final.name}.*.tmp"):
        pid = tmp.name.removeprefix(f"{final.name}.").split(".")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running: maybe building its own copy
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # someone else's process
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed += 1
    return removed
