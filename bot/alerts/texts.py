"""Every word the alerts say, in English and Italian, with one :func:`t`; and the alert
messages themselves as Telegram HTML.

Command replies are plain text (the handlers escape a whole reply when they send it); the
alert messages are built here from article fields, each escaped where it is inserted.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

from index.render.answers import RAW_LIMIT, TELEGRAM_LIMIT, safe_url, visible_length
from index.render.html import CONTROL, clip, one_line
from index.render.i18n import format_date, lookup, normalize_lang

COMMANDS = ("follow", "following", "unfollow")  # menu order

MAX_HEADLINE = 200
MAX_QUOTE = 400
MAX_OUTLETS = 6
MAX_OUTLET = 60
MAX_TOPIC = 80
MAX_SUMMARY_LINES = 25

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "followed": (
            "🔔 Following “{topic}” in {chat}{filters}. New matching articles will be posted "
            "here as they arrive{limits}."
        ),
        "filters": " ({filters})",
        "cap": "at most {cap} an hour, the rest in one summary",
        "quiet": "none during {quiet}",
        "need_words": "Tell me what to follow, e.g. /follow flood Emilia-Romagna or "
                      "/follow source:ansa Ukraine.",
        "too_many": "{chat} already follows {n} topics, the most allowed. "
                    "Remove one with /unfollow N.",
        "duplicate": "{chat} already follows “{topic}”.",
        "list_none": "Nothing is followed here. Try /follow flood Emilia-Romagna.",
        "failure_what": "alerts on {topics}",
        "list_header": "Followed in {chat}:",
        "list_item": "{n}. {topic}",
        "list_footer": "Stop one with /unfollow N, or all with /unfollow all.",
        "unfollowed": "Stopped following “{topic}” in {chat}.",
        "unfollowed_all": "Stopped all {n} follows in {chat}.",
        "unfollowed_all_one": "Stopped the only follow in {chat}.",
        "unfollow_usage": "Write /unfollow N (a number from /following) or /unfollow all.",
        "unfollow_bad": "{chat} has no follow number {n}: /following lists them.",
        "need_group_admin": "Only the group's administrators can change what it follows.",
        "need_bot_admin": "Only the bot's administrators can set up alerts for channels.",
        "error": "Sorry, something went wrong with the alerts. Please try again.",
        "cmd_follow": "Alert me about new articles on a topic: /follow words",
        "cmd_following": "Topics followed in this chat",
        "cmd_unfollow": "Stop a followed topic: /unfollow N|all",
        # The alert messages
        "alert_head": "🔔 {topic}",
        "also": "Also reported by: ",
        "and_more": "and {n} more",
        "summary_head": "🔔 {n} more new articles on what you follow:",
        "summary_head_one": "🔔 One more new article on what you follow:",
        "summary_more": "… and {n} more.",
    },
    "it": {
        "followed": (
            "🔔 Seguo «{topic}» in {chat}{filters}. Gli articoli nuovi che ne parlano "
            "arriveranno qui appena pubblicati{limits}."
        ),
        "filters": " ({filters})",
        "cap": "al massimo {cap} l'ora, gli altri in un riepilogo",
        "quiet": "nessuno nelle ore {quiet}",
        "need_words": "Dimmi cosa seguire, per esempio /follow alluvione Emilia-Romagna o "
                      "/follow source:ansa Ucraina.",
        "too_many": "{chat} segue già {n} argomenti, il massimo. Togline uno con /unfollow N.",
        "duplicate": "{chat} segue già «{topic}».",
        "list_none": "Qui non si segue niente. Prova /follow alluvione Emilia-Romagna.",
        "failure_what": "avvisi su {topics}",
        "list_header": "Argomenti seguiti in {chat}:",
        "list_item": "{n}. {topic}",
        "list_footer": "Smetti di seguirne uno con /unfollow N, o tutti con /unfollow all.",
        "unfollowed": "Non seguo più «{topic}» in {chat}.",
        "unfollowed_all": "Non seguo più nessuno dei {n} argomenti in {chat}.",
        "unfollowed_all_one": "Non seguo più l'unico argomento di {chat}.",
        "unfollow_usage": "Scrivi /unfollow N (un numero di /following) o /unfollow all.",
        "unfollow_bad": "{chat} non ha un argomento numero {n}: /following li elenca.",
        "need_group_admin": "Solo gli amministratori del gruppo possono cambiare cosa segue.",
        "need_bot_admin": "Solo gli amministratori del bot possono attivare avvisi nei canali.",
        "error": "Scusa, qualcosa è andato storto con gli avvisi. Riprova.",
        "cmd_follow": "Avvisami degli articoli nuovi su un argomento: /follow parole",
        "cmd_following": "Argomenti seguiti in questa chat",
        "cmd_unfollow": "Smetti di seguire un argomento: /unfollow N|all",
        "alert_head": "🔔 {topic}",
        "also": "Ne parlano anche: ",
        "and_more": "e altri {n}",
        "summary_head": "🔔 Altri {n} articoli nuovi su ciò che segui:",
        "summary_head_one": "🔔 Un altro articolo nuovo su ciò che segui:",
        "summary_more": "… e altri {n}.",
    },
}

LANGS = tuple(STRINGS)


def t(key: str, lang: str | None, /, **values: object) -> str:
    """The template ``key`` in ``lang`` (English when it has none) filled with ``values``."""
    return lookup(STRINGS, key, lang, **values)


def command_menu(lang: str) -> list[tuple[str, str]]:
    return [(name, t(f"cmd_{name}", lang)) for name in COMMANDS]


# -- alert messages ---------------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _day(dt: datetime | None, lang: str, tz: tzinfo | None) -> str:
    if dt is None:
        return ""
    aware = dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
    return format_date(aware.astimezone(tz or UTC).date(), lang)


def _fits(text: str) -> bool:
    return visible_length(text) <= TELEGRAM_LIMIT and len(text) <= RAW_LIMIT


def _link(name: str, url: str | None) -> str:
    shown = _esc(clip(one_line(name), MAX_OUTLET)) or "?"
    u = safe_url(url)
    return f'<a href="{_attr(u)}">{shown}</a>' if u else shown


def alert_html(
    topic: str,
    headline: str,
    url: str | None,
    quote: str,
    outlet: str,
    published: datetime | None,
    others: Sequence[tuple[str, str | None]],
    lang: str,
    tz: tzinfo | None = None,
) -> str:
    """One story's alert: the follow, the linked headline, one quoted sentence, outlet and
    date, and who else reported it. Every part is bounded, so the whole always fits."""
    lang = normalize_lang(lang)
    head = _esc(t("alert_head", lang, topic=clip(one_line(topic), MAX_TOPIC)))
    title = _esc(clip(one_line(headline), MAX_HEADLINE)) or "…"
    u = safe_url(url)
    if u:
        title = f'<a href="{_attr(u)}">{title}</a>'
    lines = [f"<i>{head}</i>", f"<b>{title}</b>"]
    q = clip(CONTROL.sub("", quote).strip(), MAX_QUOTE)
    if q:
        lines.append(f"<blockquote>{_esc(q)}</blockquote>")
    meta = [m for m in (_esc(clip(one_line(outlet), MAX_OUTLET)), _esc(_day(published, lang, tz)))
            if m]
    if meta:
        lines.append("— " + ", ".join(meta))
    if others:
        shown = [_link(n, link) for n, link in others[:MAX_OUTLETS]]
        if len(others) > MAX_OUTLETS:
            shown.append(_esc(t("and_more", lang, n=len(others) - MAX_OUTLETS)))
        lines.append(_esc(t("also", lang)) + ", ".join(shown))
    out = "\n".join(lines)
    return out if _fits(out) else "\n".join(lines[:2])


def summary_line(topic: str, headline: str, url: str | None, outlet: str, lang: str) -> str:
    """One story in a summary: ``• headline — outlet (topic)``."""
    title = _esc(clip(one_line(headline), 120)) or "…"
    u = safe_url(url)
    if u:
        title = f'<a href="{_attr(u)}">{title}</a>'
    tail = _esc(clip(one_line(outlet), MAX_OUTLET))
    what = _esc(clip(one_line(topic), 40))
    return f"• {title}" + (f" — {tail}" if tail else "") + (f" <i>({what})</i>" if what else "")


def summary_html(lines: list[str], lang: str) -> str:
    """The held stories as one message: as many lines as fit, then how many more."""
    lang = normalize_lang(lang)
    key = "summary_head_one" if len(lines) == 1 else "summary_head"
    head = f"<b>{_esc(t(key, lang, n=len(lines)))}</b>"
    shown: list[str] = []
    for i, line in enumerate(lines[:MAX_SUMMARY_LINES]):
        rest = len(lines) - i - 1
        tail = [_esc(t("summary_more", lang, n=rest))] if rest else []
        candidate = "\n".join([head, *shown, line, *tail])
        if not _fits(candidate):
            break
        shown.append(line)
    rest = len(lines) - len(shown)
    tail = [_esc(t("summary_more", lang, n=rest))] if rest else []
    return "\n".join([head, *shown, *tail])
