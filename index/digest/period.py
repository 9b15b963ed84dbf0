"""The articles a digest of a period considers, and their stored lead-chunk vectors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from index.storage.store import ArticleRecord, Store

__all__ = [
    "load_period",
    "Period",
]


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())


async def candidate_ids(
    store: Store,
    since: datetime,
    until: datetime,
    *,
    late_grace: timedelta = timedelta(0),
    limit: int = 3000,
    sources: Sequence[str] = (),
    langs: Sequence[str] = (),
) -> list[str]:
    """Canonical and near-duplicate articles of [since, until), newest first.

    "When" is the publication date, or the indexing date for undated articles. With
    ``late_grace``, articles indexed in the period but published up to that much before it
    are also taken: a feed read at 10:00 delivers news of 07:00 after the 08:00 digest,
    and without this the next digest would start at 08:00 and miss it forever.
    ``sources``/``langs`` restrict them as a question's filters do (storage/filters.py).
    """
    late_from = _ts(since - late_grace) if late_grace > timedelta(0) else None
    return await store.period_article_ids(
        _ts(since), _ts(until), late_from_ts=late_from, limit=limit, sources=sources, langs=langs
    )


async def lead_vectors(store: Store, vectors: Any, article_ids: Sequence[str]) -> np.ndarray:
    """Each article's first-chunk vector as stored by the indexer (zeros when absent)."""
    chunks = await store.article_chunk_ids(article_ids)
    first = {aid: ids[0] for aid, ids in chunks.items() if ids}
    got: dict[str, np.ndarray] = {}
    if first and vectors is not None:
        got = await asyncio.to_thread(vectors.get_vectors, list(first.values()))
    dim = next((len(v) for v in got.values()), 1)
    out = np.zeros((len(article_ids), dim), dtype=np.float32)
    for i, aid in enumerate(article_ids):
        cid = first.get(aid)
        if cid is not None and cid in got:
            out[i] = got[cid]
    return out


@dataclass(slots=True)
class Period:
    """The articles a digest of a period considers, with what grouping needs of each."""

    articles: list[ArticleRecord]
    vectors: np.ndarray  # lead-chunk vectors, one row per article
    canonical: list[int | None]  # row of the article's canonical copy, when in the period

    @property
    def texts(self) -> list[tuple[str, str]]:
        return [(a.title, a.text) for a in self.articles]


async def load_period(
    store: Store,
    vectors: Any,
    since: datetime,
    until: datetime,
    *,
    exclude: Iterable[str] = (),
    late_grace: timedelta = timedelta(0),
    limit: int = 3000,
    sources: Sequence[str] = (),
    langs: Sequence[str] = (),
) -> Period:
    skip = set(exclude)
    found = await candidate_ids(
        store, since, until, late_grace=late_grace, limit=limit, sources=sources, langs=langs
    )
    ids = [i for i in found if i not in skip]
    records = await store.articles(ids)
    arts = [records[i] for i in ids if i in records]
    vecs = await lead_vectors(store, vectors, [a.id for a in arts])
    row = {a.id: i for i, a in enumerate(arts)}
    canonical = [row.get(a.canonical_id) if a.canonical_id else None for a in arts]
    return Period(arts, vecs, canonical)
