"""The word translation's word vectors (index/search/translation.py) saved in the data dir,
so a restarted bot or a one-shot ``newsbot ask`` starts with the words earlier questions
encoded instead of encoding ~600 words per question again (over a second on a loaded core).

A cache and nothing more: the file (``word-vectors.npz``: the words as text, their float16
vectors as stored in memory, so a word read back has exactly the vector it had) is stamped
with the encoder's model id and dimension and a format number; a file of another model or
format, or one that does not read back whole (the zip's CRC-32, arrays that do not fit), is
ignored with a log line, and the words are encoded again. Written atomically (a temporary
file, fsync, rename). Backups leave it out (index/storage/backup.py copies named files).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from index.search.npz_file import SEP, decode_lines, encode_lines, read_meta, write_atomically

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "WORDS_NAME", "load_words", "save_words"]

WORDS_NAME = "word-vectors.npz"
FORMAT = 1


def save_words(path: Path, words: list[str], vecs: np.ndarray, key: dict[str, Any]) -> int:
    """Write ``words`` and their ``vecs`` (rows, float16) stamped with ``key``; the file's
    size in bytes (0: not saved). Blocking: run it off the event loop."""
    if any(SEP in w for w in words):
        log.warning("a word holds a line break: the word vectors are not saved")
        return 0
    meta = {"format": FORMAT, "key": key, "words": len(words)}
    arrays = {"words": encode_lines(words), "vecs": np.asarray(vecs, dtype=np.float16)}
    return write_atomically(path, meta, arrays)


def load_words(path: Path, key: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The words saved at ``path`` with their float16 vectors, if the file is stamped with
    ``key`` and whole; else None (and a log line saying why, unless there is no file)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = read_meta(z)
            if meta.get("format") != FORMAT or meta.get("key") != key:
                log.info("the saved word vectors are of another model or format: ignored",
                         extra={"kv": {"path": str(path), "saved": meta.get("key"),
                                       "model": key}})  # fmt: skip
                return None
            n = int(meta["words"])
            words = decode_lines(z["words"], n)
            vecs = z["vecs"]
        if len(words) != n or vecs.dtype != np.float16 or vecs.shape[0] != n or (
            n and vecs.shape != (n, int(key["dim"]))
        ):
            raise ValueError(f"{len(words)} words and vectors of shape {vecs.shape} for {n}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError,
            zipfile.BadZipFile, EOFError) as exc:  # fmt: skip
        log.warning("the saved word vectors are damaged: ignored",
                    extra={"kv": {"path": str(path), "error": f"{type(exc).__name__}: {exc}"[:300]}})  # fmt: skip
        return None
    return dict(zip(words, vecs, strict=True))
