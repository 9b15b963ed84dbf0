"""How a digest reads: Telegram HTML messages split between stories, and terminal text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from index.digest.central import MAX_QUOTE
from index.digest.stories import Digest, DigestMessage, Outlet, Story
from index.render.answers import (
    RAW_LIMIT,
    TELEGRAM_LIMIT,
    safe_url,
    visible_length,
)
from index.render.html import CONTROL, attr, clip, esc, one_line
from index.render.i18n import format_date, format_number, normalize_lang, plural, t

__all__ = [
    "render_digest_html",
    "render_digest_plain",
]


# -- parameters -------------------------------------------------------------------------------

MAX_HEADLINE = 200
MAX_OUTLETS = 6
MAX_OUTLET_NAME = 60


# -- rendering --------------------------------------------------------------------------------

def _local(dt: datetime, tz: tzinfo | None) -> datetime:
    aware = dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
    return aware.astimezone(tz or UTC)


def _since_text(dt: datetime, lang: str, tz: tzinfo | None) -> str:
    local = _local(dt, tz)
    day = format_date(local.date(), lang)
    if local.hour == 0 and local.minute == 0:
        return day
    return f"{day}, {local:%H:%M}"


def _day_text(dt: datetime, lang: str, tz: tzinfo | None) -> str:
    return format_date(_local(dt, tz).date(), lang)


def _prep(day_text: str) -> dict[str, str]:
    from index.render.i18n import date_prepositions

    return date_prepositions(day_text)


def _header_lines(digest: Digest, lang: str, tz: tzinfo | None, preview: bool) -> list[str]:
    """Title, summary and topic as plain (unescaped) lines."""
    end = _day_text(digest.until - timedelta(seconds=1), lang, tz)
    if digest.frequency == "weekly":
        title = t("digest_weekly", lang, date=end)
    elif digest.frequency == "daily":
        title = t("digest_daily", lang, date=end)
    else:
        start = _day_text(digest.since, lang, tz)
        title = t("digest_day", lang, date=end) if start == end else t(
            "digest_period", lang, start=start, end=end,
            p_from=_prep(start)["p_from"], p_to=_prep(end)["p_to"],
        )
    if preview:
        title = t("digest_preview", lang) + title
    since = _since_text(digest.since, lang, tz)
    p_from = _prep(since)["p_from"]
    n = len(digest.stories)
    words = {
        "articles": format_number(digest.total_articles, lang),
        "articles_word": plural(
            digest.total_articles, t("digest_article", lang), t("digest_articles", lang)
        ),
        "since": since, "p_from": p_from,
    }
    if n < digest.total_stories:
        summary = t("digest_summary_cut", lang, stories=n,
                    total=format_number(digest.total_stories, lang), **words)
    elif n == 1:
        summary = t("digest_summary_one", lang, **words)
    else:
        summary = t("digest_summary", lang, stories=n, **words)
    lines = [title, summary]
    if digest.topic:
        lines.append(t("digest_topic", lang, topic=clip(one_line(digest.topic), 200)))
    return lines


def empty_text(digest: Digest, lang: str = "en", tz: tzinfo | None = None) -> str:
    since = _since_text(digest.since, lang, tz)
    return t("digest_empty", lang, since=since, p_from=_prep(since)["p_from"])


def _story_html(
    story: Story,
    n: int,
    lang: str,
    tz: tzinfo | None,
    quote_limit: int = MAX_QUOTE,
    max_outlets: int = MAX_OUTLETS,
) -> str:
    lead = story.lead
    url = safe_url(lead.url)
    headline = esc(clip(one_line(lead.title) or t("untitled", lang), MAX_HEADLINE))
    if url:
        headline = f'<a href="{attr(url)}">{headline}</a>'
    lines = [f"<b>{n}. {headline}</b>"]
    quote = clip(CONTROL.sub("", story.quote).strip(), quote_limit)
    if quote:
        lines.append(f"<blockquote>{esc(quote)}</blockquote>")
    first, *others = story.outlets or [Outlet("", None, lead.id)]
    meta = []
    name = esc(clip(first.name, MAX_OUTLET_NAME))
    if name:
        meta.append(f'<a href="{attr(first.url)}">{name}</a>' if first.url else name)
    if lead.published is not None:
        meta.append(esc(_day_text(lead.published, lang, tz)))
    if meta:
        lines.append("— " + ", ".join(meta))
    if others:
        shown = []
        for o in others[:max_outlets]:
            oname = esc(clip(o.name, MAX_OUTLET_NAME)) or "?"
            shown.append(f'<a href="{attr(o.url)}">{oname}</a>' if o.url else oname)
        if len(others) > max_outlets:
            shown.append(esc(t("digest_and_more", lang, n=len(others) - max_outlets)))
        lines.append(esc(t("digest_also", lang)) + ", ".join(shown))
    return "\n".join(lines)


def _fits(text: str, max_len: int) -> bool:
    return visible_length(text) <= max_len and len(text) <= RAW_LIMIT


def _fit_story(story: Story, n: int, lang: str, tz: tzinfo | None, max_len: int) -> str:
    """The story's block within ``max_len``: the quote is shortened (at a word, with an
    ellipsis) before the outlet list, and the headline alone is the last resort. At
    Telegram's 4096 the first attempt always fits; the rest serves smaller limits."""
    for quote_limit, outlets in ((MAX_QUOTE, MAX_OUTLETS), (250, MAX_OUTLETS), (120, 3),
                                 (60, 1)):
        block = _story_html(story, n, lang, tz, quote_limit, outlets)
        if _fits(block, max_len):
            return block
    return f"<b>{n}.</b> " + esc(clip(one_line(story.headline), max(10, max_len // 4)))


def render_digest_html(
    digest: Digest,
    *,
    lang: str = "en",
    tz: tzinfo | None = None,
    max_len: int = TELEGRAM_LIMIT,
    preview: bool = False,
    empty_line: bool = False,
) -> list[DigestMessage]:
    """Telegram HTML messages (``parse_mode=HTML``), split between stories only.

    Every story block is bounded (headline, quote and outlet list are clipped) so one always
    fits a message; the header goes with the first story. An empty digest renders as one
    "no news" line when ``empty_line`` (the chat asked for it), else as no message at all.
    """
    lang = normalize_lang(lang)
    if digest.empty:
        if not empty_line:
            return []
        return [DigestMessage(esc(empty_text(digest, lang, tz)))]
    head = _header_lines(digest, lang, tz, preview)
    header = "\n".join(
        [f"<b>{esc(head[0])}</b>", *(f"<i>{esc(line)}</i>" for line in head[1:])]
    )
    sep = "\n\n"
    messages: list[DigestMessage] = []
    current = DigestMessage(header, [])
    for n, story in enumerate(digest.stories, 1):
        block = _fit_story(story, n, lang, tz, max_len)
        candidate = current.html + sep + block if current.html else block
        if _fits(candidate, max_len):
            current.html = candidate
            current.story_ids.append(story.id)
        else:
            if current.html:
                messages.append(current)
            current = DigestMessage(block, [story.id])
    if current.html:
        messages.append(current)
    return messages


def render_digest_plain(
    digest: Digest, *, lang: str = "en", tz: tzinfo | None = None, preview: bool = False
) -> str:
    """Terminal text: no markup, article text stripped of control characters."""
    lang = normalize_lang(lang)
    if digest.empty:
        return empty_text(digest, lang, tz)
    lines = _header_lines(digest, lang, tz, preview)
    indent = "    "
    for n, story in enumerate(digest.stories, 1):
        lead = story.lead
        lines.append("")
        lines.append(f"{n}. {one_line(lead.title) or t('untitled', lang)}")
        quote = CONTROL.sub("", story.quote).replace("\r", "").strip()
        lines.extend(indent + "│ " + line.strip() for line in quote.split("\n") if line.strip())
        for i, o in enumerate(story.outlets):
            label = o.name or "?"
            when = ""
            if i == 0 and lead.published is not None:
                when = ", " + _day_text(lead.published, lang, tz)
            lines.append(f"{indent}{'—' if i == 0 else '+'} {label}{when}" + (
                f" <{o.url}>" if o.url else ""
            ))
    return "\n".join(lines)
