"""An article on its way through an indexing run, and the hashes, ids and texts derived from
it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from index.models import Article, Chunk
from index.storage.store import StoredState


def raw_hash(a: Article) -> str:
    """Fingerprint of a record as loaded: unchanged input skips cleaning altogether."""
    payload = json.dumps(
        [a.id, a.title, a.text, a.url, a.published.isoformat() if a.published else None,
         a.source, a.lang],
        ensure_ascii=False,
    )
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()


def chunk_id(article_id: str, content_hash: str, ord_: int) -> str:
    return f"{article_id}::{content_hash[:12]}::{ord_}"


def passage_text(title: str, text: str) -> str:
    """What the embedder reads: the headline gives a passage the context it lacks alone."""
    return f"{title}\n{text}" if title else text


def source_origin(origin: str) -> str:
    """The file or URL part of an origin (``path:12`` → ``path``, ``feed#3`` → ``feed``)."""
    base = origin.split("#", 1)[0]
    head, sep, tail = base.rpartition(":")
    return head if sep and tail.isdigit() else base


@dataclass(slots=True)
class Pending:
    article: Article
    raw_hash: str
    content_hash: str
    state: StoredState | None
    chunks: list[Chunk] = field(default_factory=list)
    title_in_passage: bool = True
    signature: np.ndarray | None = None
    band_keys: list[int] = field(default_factory=list)
    canonical_id: str | None = None
    dup_kind: str | None = None
    similarity: float | None = None
