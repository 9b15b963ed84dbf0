"""What an indexing run tells its caller: progress while it runs, a report when it ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from index.models import LoadError


@dataclass(slots=True)
class Progress:
    phase: str  # loading | embedding | pruning | done
    articles_done: int = 0
    articles_total: int = 0
    chunks_done: int = 0
    chunks_total: int = 0
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.chunks_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if not self.chunks_done or self.chunks_total <= self.chunks_done:
            return None
        return (self.chunks_total - self.chunks_done) / max(self.rate, 1e-9)


ProgressFn = Callable[[Progress], None]


@dataclass(slots=True)
class IndexReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    duplicates: int = 0
    near_duplicates: int = 0
    failed: list[LoadError] = field(default_factory=list)
    chunks_embedded: int = 0
    seconds: float = 0.0
    reconciled: int = 0
    notices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "duplicates": self.duplicates,
            "near_duplicates": self.near_duplicates,
            "failed": [{"origin": e.origin, "reason": e.reason} for e in self.failed],
            "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
            "reconciled": self.reconciled,
            "notices": self.notices,
        }
