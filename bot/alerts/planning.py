"""From a matched batch to the messages to send: stories per chat, the cap, quiet hours.

Pure planning: what it reads (the chats' recent alerts, the articles' copies) is read for
the whole batch at once, and nothing is written; :meth:`AlertStore.commit_batch` persists
the result in one transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from bot.alerts import texts
from bot.alerts.matching import Batch, FollowIndex, group_stories
from bot.alerts.quiet import HOUR, QuietHours, cap_room
from bot.alerts.store import AlertStore, Follow, Held, Planned
from index.digest.central import central_sentence
from index.digest.grouping import GroupingParams
from index.digest.stories import story_outlets
from index.storage.store import ArticleRecord, Store

ALERTED_WINDOW = timedelta(days=3)  # a story alerted this recently is not alerted again


@dataclass(frozen=True, slots=True)
class Limits:
    per_hour: int  # 0: no cap
    quiet: QuietHours | None
    tz: tzinfo


async def plan_batch(
    store: Store,
    vectors: Any,
    db: AlertStore,
    index: FollowIndex,
    batch: Batch,
    matches: dict[int, list[int]],
    params: GroupingParams,
    limits: Limits,
    now: datetime,
) -> tuple[list[Planned], list[Held]]:
    """The batch's alerts: one per new story per chat (attributed to the chat's oldest
    follow it matched), the rest of the hour's cap and quiet hours held in a summary."""
    found: dict[int, dict[str, tuple[Follow, ArticleRecord]]] = {}
    for row, rows in sorted(matches.items(), key=lambda kv: index.follows[kv[0]].id):
        f = index.follows[row]
        for a in rows:
            art = batch.articles[a]
            found.setdefault(f.chat_id, {}).setdefault(art.id, (f, art))
    if not found:
        return [], []
    alerted = await db.alerted(now - ALERTED_WINDOW)
    stories = await group_stories(
        store, vectors, {c: [a for _, a in v.values()] for c, v in found.items()}, alerted,
        params,
    )
    recent = await db.recent_alerts(now - HOUR)
    member_ids = list({m.id for ss in stories.values() for s in ss for m in s.members})
    dups = await store.duplicates_of(member_ids)
    quiet_end = limits.quiet.end_after(now, limits.tz) if limits.quiet else None
    return await asyncio.to_thread(
        _plan, found, stories, recent, dups, quiet_end, limits, now
    )


def _plan(
    found: dict[int, dict[str, tuple[Follow, ArticleRecord]]],
    stories: dict[int, list[Any]],
    recent: dict[int, list[datetime]],
    dups: dict[str, list[ArticleRecord]],
    quiet_end: datetime | None,
    limits: Limits,
    now: datetime,
) -> tuple[list[Planned], list[Held]]:
    planned: list[Planned] = []
    held: list[Held] = []
    quotes: dict[tuple[str, ...], tuple[ArticleRecord, int, int]] = {}
    for chat_id, chat_stories in stories.items():
        room, frees = cap_room(recent.get(chat_id, []), now, limits.per_hour)
        for story in chat_stories:
            if story.already:
                continue
            follow = found[chat_id][story.members[0].id][0]
            ids = [m.id for m in story.members]
            if quiet_end is None and room > 0:
                room -= 1
                key = tuple(ids)
                if key not in quotes:  # the same story in many chats: one quote
                    quotes[key] = central_sentence(story.members)
                html = story_html(follow, story.members, quotes[key], dups, limits.tz)
                planned.append(Planned(chat_id, follow.id, follow.lang, html, ids))
            else:
                lead = story.members[0]
                line = texts.summary_line(follow.words, lead.title, lead.url,
                                          lead.source or "", follow.lang)
                held.append(Held(chat_id, follow.id, follow.lang, line, ids,
                                 quiet_end or frees))
    return planned, held


def story_html(
    follow: Follow,
    members: list[ArticleRecord],
    quote: tuple[ArticleRecord, int, int],
    dups: dict[str, list[ArticleRecord]],
    tz: tzinfo,
) -> str:
    """The alert of one story: its central sentence's article leads; every other outlet
    that reported it (members, syndicated copies) is "also reported by"."""
    lead, qs, qe = quote
    ids = {m.id for m in members}
    copies = [d for m in members for d in dups.get(m.id, []) if d.id not in ids]
    outlets = story_outlets([lead, *(m for m in members if m.id != lead.id), *copies])
    first = outlets[0].name if outlets else (lead.source or "")
    return texts.alert_html(
        follow.words, lead.title, lead.url, lead.text[qs:qe], first, lead.published,
        [(o.name, o.url) for o in outlets[1:]], follow.lang, tz,
    )
