"""The digest a subscription gets at a given moment: the period since its watermark, its topic,
its chat's already-sent articles left out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.digests.schedule import Subscription
from bot.settings import BotSettings
from index.digest.stories import Digest, build_digest
from index.search.retrieval import Retriever

LATE_GRACE = timedelta(days=2)


async def build_subscription_digest(
    sub: Subscription,
    retriever: Retriever,
    settings: BotSettings,
    now: datetime,
    *,
    since: datetime | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> Digest:
    """The digest ``sub`` would get at ``now``: since its watermark, or one period back for
    a first digest. Shared by the scheduler, /digest and ``newsbot digest --chat``."""
    start = since or sub.watermark or (sub.latest_slot(now) - sub.period)
    return await build_digest(
        retriever.store,
        retriever.vectors,
        since=start,
        until=now,
        max_stories=settings.digest_max_stories,
        topic=sub.topic,
        retriever=retriever,
        exclude=exclude,
        late_grace=LATE_GRACE if sub.watermark is not None else timedelta(0),
        frequency=sub.frequency,
    )
