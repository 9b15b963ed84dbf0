"""Which rows of the in-memory copy (index/search/chunk_matrix.py) a filter keeps, and what
scoring them costs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["GATHER_COST", "WIDENED_GATHER_COST", "Selection", "like"]

# Scoring rows picked out of the middle of the matrix costs this many times a contiguous
# row (the copy dominates: bench/query_bench.py, "matrix" pieces). Rows that are widened
# from int8 or float16 are copied either way, so picking them costs little more.
GATHER_COST = 5
WIDENED_GATHER_COST = 2


@dataclass(frozen=True, slots=True)
class Selection:
    """The rows passing a filter: ``[lo, hi)`` of the time-sorted matrix, narrowed by
    ``mask`` (over that slice) when outlets or languages are filtered too; ``rows``, when
    known, the passing rows themselves (ascending)."""

    lo: int
    hi: int
    mask: np.ndarray | None
    count: int
    rows: np.ndarray | None = None

    @property
    def cost(self) -> int:
        """Scoring cost in contiguous-row equivalents (the cheaper of the two ways)."""
        if self.mask is None:
            return self.hi - self.lo
        return min(self.hi - self.lo, GATHER_COST * self.count)


@lru_cache(maxsize=256)
def like(source: str) -> re.Pattern[str]:
    """SQLite's ``source_key LIKE '%source%'``: ``%`` any run, ``_`` one character, and
    case folded for ASCII letters only (SQLite's default)."""
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in source)
    return re.compile(f".*{body}.*", re.IGNORECASE | re.ASCII | re.DOTALL)
