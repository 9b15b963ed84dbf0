"""What one poll of a live source found, the kinds of source there are, and what a folder
rescan compares.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from index.ingest.report import IndexReport
from index.storage.sources import SourceHealth

__all__ = ["PollFailed", "PollResult", "file_stats", "source_kind"]


@dataclass(slots=True)
class PollResult:
    name: str
    ok: bool
    at: float
    not_modified: bool = False  # a 304: nothing downloaded
    read: int = 0  # new or changed items handed to the indexer
    skipped: int = 0  # feed entries already stored, or unchanged files, not read
    report: IndexReport | None = None
    error: str | None = None
    next_attempt: float | None = None
    health: SourceHealth | None = None

    @property
    def changed(self) -> bool:
        r = self.report
        return r is not None and (r.added + r.updated + r.removed) > 0


def source_kind(target: str) -> str:
    if target.lower().startswith(("http://", "https://")):
        return "feed"
    return "folder" if Path(target).is_dir() else "file"


class PollFailed(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def file_stats(files: Sequence[Path]) -> dict[str, tuple[int, int]]:
    """(mtime in ns, size) of each file still there: what a rescan compares."""
    out: dict[str, tuple[int, int]] = {}
    for path in files:
        with contextlib.suppress(OSError):  # gone since listed: not read, not recorded
            st = os.stat(path)
            out[str(path)] = (st.st_mtime_ns, st.st_size)
    return out
