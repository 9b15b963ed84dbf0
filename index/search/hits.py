"""Hits from a ranking: passages loaded as the ranking reaches them, quoted word for word,
at most N per story, with the other outlets that reported it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from index.digest.stories import Story
from index.models import Hit, OutletRef
from index.search.fusion import Search
from index.search.quotes import make_hit_quote
from index.storage.store import ArticleRecord, ChunkRecord, Store

__all__ = ["FIRST_RECORDS", "RECORDS_AHEAD", "build_hits", "load_records", "story_hits"]

RECORDS_AHEAD = 16  # passages loaded at a time, from the head of a ranking
FIRST_RECORDS = 8  # passages loaded first from the head of each ranking (the fused top)


async def load_records(store: Store, search: Search, chunk_ids: Sequence[str]) -> None:
    """Add the passages of ``chunk_ids`` to ``search.records`` (a chunk whose vector
    outlived its row after a killed run simply stays absent)."""
    missing = [c for c in chunk_ids if c not in search.records]
    if missing:
        search.records.update(await store.chunk_records(missing))


async def build_hits(
    store: Store, search: Search, query: str, limit: int, *, cap: int
) -> list[Hit]:
    """Quoted hits: at most ``cap`` passages per story, near-duplicates folded into one."""
    per_group: dict[str, list[ChunkRecord]] = {}
    order: list[tuple[str, ChunkRecord, float]] = []
    for pos, r in enumerate(search.ranked):
        if r.chunk_id not in search.records:
            ahead = search.ranked[pos : pos + RECORDS_AHEAD]
            await load_records(store, search, [x.chunk_id for x in ahead])
        rec = search.records.get(r.chunk_id)
        if rec is None:
            continue
        group = rec.canonical_id or rec.article_id
        taken = per_group.setdefault(group, [])
        if len(taken) >= cap:
            continue
        if any(t.article_id == rec.article_id and _overlaps(t, rec) for t in taken):
            continue
        # Passages of one story come from the article that ranked first.
        if taken and taken[0].article_id != rec.article_id:
            continue
        taken.append(rec)
        order.append((group, rec, r.score))
        if len(order) >= limit:
            break
    if not order:
        return []
    article_ids = list({rec.article_id for _, rec, _ in order})
    groups = list(per_group)
    articles, dups, canon_recs = await asyncio.gather(
        store.articles(article_ids),
        store.duplicates_of(groups),
        store.articles([g for g in groups if g not in article_ids], with_text=False),
    )
    hits: list[Hit] = []
    for group, rec, score in order:
        art = articles[rec.article_id]
        q = make_hit_quote(art.text, rec.start, rec.end, query, stem=None)
        others: list[ArticleRecord] = [
            d for d in dups.get(group, []) if d.id != art.id
        ]
        if group != art.id:
            canon = articles.get(group) or canon_recs.get(group)
            if canon is not None:
                others.insert(0, canon)
        hits.append(
            Hit(
                article_id=art.id,
                title=art.title,
                source=art.source,
                url=art.url,
                published=art.published,
                lang=art.lang,
                quote=art.text[q.start : q.end],
                quote_start=q.start,
                highlight_start=q.highlight_start - q.start,
                highlight_end=q.highlight_end - q.start,
                score=round(float(score), 4),
                chunk_id=rec.chunk_id,
                ellipsis_before=q.ellipsis_before,
                ellipsis_after=q.ellipsis_after,
                also_reported_by=_outlets(others, exclude=art.source),
            )
        )
    return hits


async def story_hits(store: Store, stories: Sequence[Story]) -> list[Hit]:
    """Each story as a hit: its lead article, the story's central sentence as quote and
    highlight, its other outlets as "also reported by"."""
    if not stories:
        return []
    chunk_ids = await store.article_chunk_ids([s.lead.id for s in stories])
    records = await store.chunk_records([c for ids in chunk_ids.values() for c in ids])
    hits = []
    for story in stories:
        lead = story.lead
        chunk_id = next(
            (c for c in chunk_ids.get(lead.id, [])
             if c in records and records[c].start <= story.quote_start < records[c].end),
            "",
        )
        hits.append(
            Hit(
                article_id=lead.id,
                title=lead.title,
                source=lead.source,
                url=lead.url,
                published=lead.published,
                lang=lead.lang,
                quote=story.quote,
                quote_start=story.quote_start,
                highlight_start=0,
                highlight_end=len(story.quote),
                score=round(float(story.score), 4),
                chunk_id=chunk_id,
                ellipsis_before=bool(lead.text[: story.quote_start].strip()),
                ellipsis_after=bool(lead.text[story.quote_end :].strip()),
                also_reported_by=[
                    OutletRef(o.article_id, o.name, o.url) for o in story.outlets[1:]
                ],
            )
        )
    return hits


def _overlaps(a: ChunkRecord, b: ChunkRecord) -> bool:
    return a.start < b.end and b.start < a.end


def _outlets(records: Sequence[ArticleRecord], exclude: str | None) -> list[OutletRef]:
    seen: set[str] = set()
    out = []
    for r in records:
        key = (r.source or r.url or r.id).lower()
        if key in seen or (exclude and r.source and r.source.lower() == exclude.lower()):
            continue
        seen.add(key)
        out.append(OutletRef(r.id, r.source, r.url, r.title))
    return out
