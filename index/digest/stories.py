"""A digest's stories: the period's articles grouped, filtered by topic, ranked by coverage.

No Telegram here: the bot (``bot/digests/``) plans, persists and sends what this builds, and
the CLI prints it. The steps live beside it: ``period`` (which articles), ``grouping`` (which
tell the same story), ``topic`` (which are on the topic), ``central`` (the quoted sentence)
and ``render`` (how it reads).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from index.digest.central import central_sentence, idf_weights
from index.digest.grouping import GroupingParams, group_articles, grouping_params_for
from index.digest.period import load_period
from index.digest.topic import topic_article_ids
from index.render.answers import (
    safe_url,
)
from index.render.html import one_line
from index.search.query_parse import strip_relative_dates
from index.storage.store import ArticleRecord, Store

__all__ = [
    "build_digest",
    "Digest",
    "DigestMessage",
    "Story",
]


@dataclass(slots=True)
class Outlet:
    name: str
    url: str | None
    article_id: str


@dataclass(slots=True)
class Story:
    """One story of a digest. ``quote`` is ``text[quote_start:quote_end]`` of the article
    ``lead`` (the one the quote comes from, whose headline and link lead the block)."""

    id: str
    lead: ArticleRecord
    quote: str
    quote_start: int
    quote_end: int
    article_ids: list[str]  # every member, duplicates included, lead first
    outlets: list[Outlet]  # distinct outlets, the lead's first
    latest: datetime
    score: float

    @property
    def headline(self) -> str:
        return self.lead.title


@dataclass(slots=True)
class Digest:
    since: datetime
    until: datetime
    stories: list[Story]
    total_stories: int  # before the cap
    total_articles: int
    topic: str | None = None
    frequency: str | None = None  # "daily" | "weekly" | None (an arbitrary period)

    @property
    def empty(self) -> bool:
        return not self.stories


@dataclass(slots=True)
class DigestMessage:
    """One Telegram message of a digest and the stories it carries (never split)."""

    html: str
    story_ids: list[str] = field(default_factory=list)


def _when(a: ArticleRecord) -> datetime:
    dt = a.published or a.indexed_at
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def story_id(article_ids: Iterable[str]) -> str:
    """Stable for a set of articles, so a resumed digest names its stories as planned."""
    h = hashlib.sha1("\n".join(sorted(article_ids)).encode("utf-8")).hexdigest()
    return "s" + h[:15]


def _outlet_key(a: ArticleRecord) -> str:
    return (a.source or safe_url(a.url) or a.id).strip().lower()


def story_outlets(records: Sequence[ArticleRecord]) -> list[Outlet]:
    """Distinct outlets of a story's articles, in the order given (the lead's first)."""
    seen: set[str] = set()
    out = []
    for a in records:
        key = _outlet_key(a)
        if key in seen:
            continue
        seen.add(key)
        name = one_line(a.source) or _host(a.url) or one_line(a.title)
        out.append(Outlet(name, safe_url(a.url), a.id))
    return out


def _host(url: str | None) -> str:
    from urllib.parse import urlsplit

    u = safe_url(url)
    return (urlsplit(u).hostname or "") if u else ""


async def build_digest(
    store: Store,
    vectors: Any,
    *,
    since: datetime,
    until: datetime,
    max_stories: int,
    topic: str | None = None,
    retriever: Any = None,
    params: GroupingParams | None = None,
    exclude: Iterable[str] = (),
    late_grace: timedelta = timedelta(0),
    frequency: str | None = None,
    limit: int = 3000,
    sources: Sequence[str] = (),
    langs: Sequence[str] = (),
) -> Digest:
    """The digest of [since, until): stories grouped, filtered by topic, ranked, capped.

    ``exclude`` holds articles an earlier digest of the same chat already carried (late
    arrivals make periods overlap). ``retriever`` is needed only with a ``topic``.
    ``sources``/``langs`` keep only those outlets' / languages' articles (a question's
    ``source:``/``lang:`` filters).
    """
    params = params or grouping_params_for(await store.get_meta("embedding_model"))
    period = await load_period(
        store, vectors, since, until, exclude=exclude, late_grace=late_grace, limit=limit,
        sources=sources, langs=langs,
    )
    arts = period.articles
    if not arts:
        return Digest(since, until, [], 0, 0, topic, frequency)
    ids = [a.id for a in arts]
    row = {a.id: i for i, a in enumerate(arts)}
    # Pairwise work (~1.7 s for 2,000 articles): off the event loop, which the bot shares.
    groups, sim = await asyncio.to_thread(
        group_articles, period.vectors, period.texts, period.canonical, params
    )

    # Exact copies (never candidates themselves) and originals from before the period still
    # credit their outlets to the story.
    dups = await store.duplicates_of([a.id for a in arts])
    extra_canon_ids = [
        a.canonical_id for a in arts if a.canonical_id and a.canonical_id not in row
    ]
    extra_canon = await store.articles(list(dict.fromkeys(extra_canon_ids)))

    words = ""
    if topic and topic.strip():
        if retriever is None:
            raise ValueError("a topic filter needs the retriever")
        # "Gaza oggi": the digest's period says when; a relative date word in the topic is
        # not one of its keywords (absolute dates stay: "elezioni marzo 2024" may name the
        # event).
        words = strip_relative_dates(topic, now=until, tz=retriever.tz)
    if words:
        n_chunks = sum(len(v) for v in (await store.article_chunk_ids(ids)).values())
        on_topic = await topic_article_ids(
            retriever, words, since - late_grace, until, max(1, n_chunks),
            params.topic_min_dense,
        )
        groups = [g for g in groups if any(arts[i].id in on_topic for i in g)]

    idf = idf_weights(arts)
    span = max((until - since).total_seconds(), 1.0)
    stories: list[Story] = []
    for g in groups:
        members = [arts[i] for i in g]
        # Medoid first: the member most similar to the rest represents the story.
        if len(g) > 1:
            sub = sim[np.ix_(g, g)]
            order = np.argsort(-sub.sum(axis=1), kind="stable")
            members = [members[int(k)] for k in order]
        lead, qs, qe = central_sentence(members, idf)
        copies: list[ArticleRecord] = []
        for m in members:
            copies.extend(d for d in dups.get(m.id, []) if d.id not in row)
            if m.canonical_id in extra_canon:
                copies.append(extra_canon[m.canonical_id])
        ordered = [lead, *sorted((m for m in members if m.id != lead.id), key=_when)]
        all_recs = ordered + sorted({c.id: c for c in copies}.values(), key=_when)
        outlets = story_outlets(all_recs)
        latest = max(_when(m) for m in members)
        freshness = min(1.0, max(0.0, 1.0 - (until - latest).total_seconds() / span))
        score = len(outlets) * (0.5 + 0.5 * freshness)
        stories.append(
            Story(
                id=story_id(m.id for m in members),
                lead=lead,
                quote=lead.text[qs:qe],
                quote_start=qs,
                quote_end=qe,
                article_ids=list(dict.fromkeys(r.id for r in all_recs)),
                outlets=outlets,
                latest=latest,
                score=score,
            )
        )
    # Coverage first (recency can at most halve it), then more articles, then the newest.
    stories.sort(key=lambda s: (-s.score, -len(s.article_ids), -s.latest.timestamp(), s.id))
    total = len(stories)
    return Digest(
        since,
        until,
        stories[: max(0, max_stories)],
        total,
        len(arts),
        topic.strip() if topic and topic.strip() else None,
        frequency,
    )
