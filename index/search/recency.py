"""A soft recency prior for questions that say *when* only vaguely.

"What did the Bank of England decide this week?", "the latest on...", "di recente", "nei
giorni scorsi": the question means news of the days before it is asked, but the archive
also holds the same topic's older and (as of an earlier moment) later news. A hard date
cut would empty the answer whenever the article is a day outside the guessed window, so
these words only re-weight: passages published within the window before the question's
moment keep their fused score, older ones fade with age, and ones published *after* the
moment fade faster (they cannot be what a question asked then is about, yet nothing is
removed). "This week" and "negli ultimi giorni" are parsed as periods but a search takes
them as this prior (a quiz asked on a Monday about "this week" means last Friday too);
explicit periods ("oggi", "ieri", "last week", "ultimi 3 giorni") stay filters
(index/search/query_parse.py), and so does "this week" in a question that is only a period
("what happened this week?": that week's top stories).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["RECENT_CUE", "WEEK_CUE", "RecencyCue", "recency_cue", "recency_weights"]


@dataclass(frozen=True, slots=True)
class RecencyCue:
    """How recent the question wants its news: a window in days before the moment, and how
    much of the score a passage outside it may lose at most (``strength``)."""

    window_days: float
    strength: float


# The days just before the moment: "this week" in a weekly quiz, "in questi giorni".
_WEEK = re.compile(
    r"\b(?:this\s+week(?:'s|’s)?|these\s+days|in\s+recent\s+days|(?:the\s+)?past\s+few\s+days"
    r"|questa\s+settimana|in\s+questi\s+giorni|nei\s+giorni\s+scorsi|negli\s+ultimi\s+giorni"
    r"|(?:gli\s+)?ultimi\s+giorni)\b",
    re.I,
)
# Recent, without a period: "recently", "the latest", "new", "di recente", "ultime notizie".
_RECENT = re.compile(
    r"\b(?:recent(?:ly)?|lately|latest|newest|new|just|di\s+recente|recentemente"
    r"|ultimamente|ultim[eoai]|nuov[oaie]|appena)\b",
    re.I,
)

WEEK_CUE = RecencyCue(window_days=7.0, strength=0.5)
RECENT_CUE = RecencyCue(window_days=21.0, strength=0.35)
FUTURE_SCALE_DAYS = 3.0  # after the moment, the weight falls to 1/e of its loss in 3 days


def recency_cue(question: str) -> RecencyCue | None:
    """The recency the question's words ask for, or None (no time word: no prior)."""
    if _WEEK.search(question):
        return WEEK_CUE
    if _RECENT.search(question):
        return RECENT_CUE
    return None


def recency_weights(
    published: Mapping[str, datetime | None], now: datetime, cue: RecencyCue
) -> dict[str, float]:
    """A factor in [1 - strength, 1] per chunk id: 1 inside the window before ``now``."""
    now_utc = _utc(now)
    out: dict[str, float] = {}
    for cid, when in published.items():
        if when is None:
            out[cid] = 1.0 - cue.strength / 2  # undated: neither favoured nor dismissed
            continue
        age = (now_utc - _utc(when)).total_seconds() / 86400.0
        if -0.5 <= age <= cue.window_days:
            fade = 1.0
        elif age > cue.window_days:
            fade = math.exp(-(age - cue.window_days) / cue.window_days)
        else:
            fade = math.exp((age + 0.5) / FUTURE_SCALE_DAYS)
        out[cid] = 1.0 - cue.strength * (1.0 - fade)
    return out


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
