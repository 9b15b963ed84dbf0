"""Learning each outlet's boilerplate as the corpus grows, and removing it everywhere.

A line is boilerplate for an outlet when at least ``min_stories`` of its distinct stories,
and at least ``min_share`` of all of them, carry it word for word (case and punctuation
aside): a newsletter promo, a puzzle teaser, a standard credit. Real paragraphs are not
repeated across that many different stories of one outlet; lines longer than
``MAX_LEARNED_WORDS`` are never learned. Learned lines stay learned: once removed from an
article, nothing of them is left to count.

Each indexing run, before deduplication and chunking:
1. the lines of the run's new and changed articles are recorded (and, once, those of
   articles indexed before the table existed);
2. lines that have now crossed the threshold become patterns;
3. the run's articles lose their outlet's patterns; one left with no real content is a
   failed record with the reason, not indexed;
4. indexed articles that carry a newly learned line are re-cleaned from their stored text
   and handed back to the run, which re-chunks and re-embeds only them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from index.ingest import dedup
from index.ingest.boilerplate import (
    boilerplate_only_reason,
    has_real_content,
    key_hash,
    learnable_lines,
    line_key,
    strip_learned,
)
from index.models import Article, LoadError
from index.storage.boilerplate import (
    BoilerplateStore,
    Pattern,
    SeenArticle,
    StoredText,
    counts_by_source,
    source_key,
)
from index.storage.store import Store, StoredState

MIN_STORIES = 5
MIN_SHARE = 0.01


class PendingArticle(Protocol):
    """What the indexing run holds for each loaded article (pipeline ``_Pending``)."""

    article: Article
    raw_hash: str
    content_hash: str
    state: StoredState | None


P = TypeVar("P", bound=PendingArticle)


@dataclass(slots=True)
class OutletCleaning(Generic[P]):
    kept: list[P]
    failed: list[LoadError] = field(default_factory=list)
    # Indexed articles re-cleaned for a new pattern: (article, raw hash, content hash).
    reapplied: list[tuple[Article, str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


async def strip_outlet_boilerplate(
    store: Store,
    pending: Sequence[P],
    *,
    min_stories: int = MIN_STORIES,
    min_share: float = MIN_SHARE,
) -> OutletCleaning[P]:
    """The run's articles without their outlet's boilerplate, learning new patterns first."""
    fresh = [p for p in pending if _is_fresh(p)]
    if not fresh:
        return OutletCleaning(list(pending))
    table = store.boilerplate
    await table.forget_removed()
    fresh_ids = {p.article.id for p in fresh}
    backfill = await table.unseen_articles(fresh_ids)
    samples: dict[tuple[str, int], str] = {}
    seen = [
        _seen(p.article.id, p.article.source, p.article.title, p.article.text, samples)
        for p in fresh
    ]
    seen += [_seen(s.id, s.source, s.title, s.text, samples) for s in backfill]
    await table.record(seen)

    touched = sorted({s.source_key for s in seen if s.source_key})
    known = await table.patterns(touched)
    new = await _learn(table, touched, known, samples, min_stories, min_share)
    for pattern in new:
        known.setdefault(pattern.source_key, set()).add(pattern.line_key)

    result: OutletCleaning[P] = OutletCleaning([])
    emptied: list[str] = []
    for p in pending:
        sk = source_key(p.article.source)
        if p.article.id not in fresh_ids or not sk or sk not in known:
            result.kept.append(p)
            continue
        text, removed = strip_learned(p.article.text, known[sk])
        if removed and not has_real_content(text):
            result.failed.append(LoadError(p.article.origin, boilerplate_only_reason(removed)))
            emptied.append(p.article.id)
            continue
        if removed:
            p.article = replace(p.article, text=text)
            p.content_hash = dedup.content_hash(p.article.title, text)
        result.kept.append(p)
    if emptied:
        await table.forget(emptied)
    if new:
        await _reapply(store, table, new, known, fresh_ids, result)
    return result


async def learned_patterns(store: Store) -> list[Pattern]:
    """Every learned line, by outlet (for status pages and tests)."""
    return await store.boilerplate.all_patterns()


# ---------------------------------------------------------------------------------------------


def _is_fresh(p: PendingArticle) -> bool:
    """Cleaned in this run (new or changed), not passed through as unchanged."""
    state = p.state
    return not (state and state.raw_hash == p.raw_hash and state.content_hash == p.content_hash)


def _seen(
    article_id: str,
    source: str | None,
    title: str,
    text: str,
    samples: dict[tuple[str, int], str],
) -> SeenArticle:
    sk = source_key(source)
    if not sk:
        return SeenArticle(article_id, "", 0, ())
    lines = learnable_lines(text)
    for key, line in lines.items():
        samples.setdefault((sk, key), line)
    story = key_hash(line_key(title) or line_key(text[:200]))
    return SeenArticle(article_id, sk, story, lines.keys())


async def _learn(
    table: BoilerplateStore,
    touched: Sequence[str],
    known: dict[str, set[int]],
    samples: dict[tuple[str, int], str],
    min_stories: int,
    min_share: float,
) -> list[Pattern]:
    outlet = await table.outlet_stories(touched)
    new: list[Pattern] = []
    for sk in touched:
        stories = outlet.get(sk, 0)
        threshold = max(min_stories, math.ceil(min_share * stories))
        if stories < threshold:
            continue
        have = known.get(sk, set())
        keys = [k for (s, k) in samples if s == sk and k not in have]
        counts = await table.story_counts(sk, keys)
        new += [
            Pattern(sk, k, samples[(sk, k)], n, stories)
            for k, n in sorted(counts.items())
            if n >= threshold
        ]
    await table.add_patterns(new)
    return new


async def _reapply(
    store: Store,
    table: BoilerplateStore,
    new: Sequence[Pattern],
    known: dict[str, set[int]],
    fresh_ids: set[str],
    result: OutletCleaning[P],
) -> None:
    carriers = sorted(await table.carriers(new) - fresh_ids)
    emptied: list[str] = []
    for rec in await table.stored_texts(carriers):
        text, removed = strip_learned(rec.text, known.get(source_key(rec.source) or "", set()))
        if not removed:
            continue
        if not has_real_content(text):
            result.failed.append(LoadError(rec.origin or rec.id, boilerplate_only_reason(removed)))
            emptied.append(rec.id)
            continue
        article = _article(rec, text)
        result.reapplied.append(
            (article, rec.raw_hash or "", dedup.content_hash(article.title, text))
        )
    if emptied:
        await store.remove_articles(emptied)
        await table.forget(emptied)
    per_outlet = ", ".join(f"{s} {n}" for s, n in counts_by_source(new).items())
    result.notices.append(
        f"learned {len(new)} boilerplate lines ({per_outlet}): "
        f"{len(result.reapplied)} indexed articles re-cleaned, {len(emptied)} removed as empty"
    )


def _article(rec: StoredText, text: str) -> Article:
    return Article(
        id=rec.id,
        text=text,
        title=rec.title,
        url=rec.url,
        published=datetime.fromisoformat(rec.published) if rec.published else None,
        source=rec.source,
        lang=rec.lang,
        origin=rec.origin,
    )
