"""The bot's own words, in Italian and English, as Telegram HTML.

Templates may hold markup; every value put into them is escaped here, so a handler can never
forget to. Answers themselves are rendered by :mod:`index.render.answers`, not here.

The templates are data in strings.py and sources.py (the live sources' ``src_*`` keys); this
module is the one way to read them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.texts import sources, strings
from bot.texts.strings import AND, EXAMPLES, LANGUAGE_NAMES
from index.render.i18n import date_prepositions, format_date, normalize_lang
from index.search.corpus_copy import CopyStatus
from index.storage.vectors import VectorStore

# One table, one t(): the live sources' words live beside the rest, under their own prefix.
STRINGS: dict[str, dict[str, str]] = {
    lang: {**table, **sources.STRINGS[lang]} for lang, table in strings.STRINGS.items()
}


def user_lang(language_code: str | None) -> str:
    """Telegram's ``language_code`` ("it", "it-IT") → "it"; everything else → "en"."""
    return "it" if (language_code or "").lower().startswith("it") else "en"


class Html(str):
    """Text that is already Telegram HTML: :func:`t` inserts it without escaping again."""


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


_IDENTIFIER = re.compile(r"id$|chat|user|year|port|code")


class _Number:
    """A number that formats itself as ``lang`` writes it: "1,3 s" and "2.167" in Italian,
    "1.3 s" and "2,167" in English, whatever format spec the template gives."""

    __slots__ = ("lang", "value")

    def __init__(self, value: float, lang: str) -> None:
        self.value = value
        self.lang = lang

    def __format__(self, spec: str) -> str:
        v = self.value
        if isinstance(v, int) and not spec:
            text = f"{v:,}" if abs(v) >= 1000 else str(v)
        else:
            text = format(v, spec.replace(",", "") if spec else "")
        if self.lang == "it":
            text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
        return text


def t(key: str, lang: str, /, **values: Any) -> Html:
    """The template ``key`` in ``lang`` with every value HTML-escaped (:class:`Html`
    inserted as it is; numbers written as the language writes them)."""
    code = normalize_lang(lang)
    table = STRINGS.get(code, STRINGS["en"])
    template = table.get(key) or STRINGS["en"][key]
    safe: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, Html):
            safe[k] = v
        elif isinstance(v, bool):
            safe[k] = esc(v)
        elif isinstance(v, int | float) and not _IDENTIFIER.search(k):
            safe[k] = _Number(v, code)
        elif isinstance(v, int | float):
            safe[k] = v  # an id or a year: never grouped
        else:
            safe[k] = esc(v)
    return Html(template.format(**safe) if safe else template)


def target_label(name: str, lang: str) -> str:
    """A /reindex target as a reader says it: "all" is every source."""
    return raw("reindex_target_all", lang) if name == "all" else name


def run_status(status: str, lang: str) -> str:
    return raw(f"run_status_{status}", lang) if f"run_status_{status}" in STRINGS["en"] else status


def noun(n: int, word: str, lang: str) -> str:
    """``word`` ("attempt", "day", …) as it reads after the count ``n``: singular after 1."""
    return raw(f"word_{word}_{'one' if n == 1 else 'many'}", lang)


def raw(key: str, lang: str) -> str:
    """A template without markup, for places that take plain text (button labels, alerts)."""
    table = STRINGS.get(normalize_lang(lang), STRINGS["en"])
    return table.get(key) or STRINGS["en"][key]


def _join(items: list[str], lang: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {AND.get(lang, 'and')} " + items[-1]


def languages_phrase(langs: Mapping[str, int], lang: str) -> str:
    names = LANGUAGE_NAMES.get(lang, LANGUAGE_NAMES["en"])
    shown = [names.get(code, code) for code in list(langs)[:5] if code and code != "?"]
    return _join(shown, lang) or "?"


def start_html(lang: str, counts: Mapping[str, int], overview: Mapping[str, Any],
               bot_username: str | None) -> str:
    lines = [t("start", lang), ""]
    if counts.get("articles"):
        first: datetime | None = overview.get("first_published")
        last: datetime | None = overview.get("last_published")
        period = ""
        if first and last:
            a, b = format_date(first.date(), lang), format_date(last.date(), lang)
            period = t("corpus_range", lang, first=a, last=b,
                       p_from=date_prepositions(a)["p_from"], p_to=date_prepositions(b)["p_to"])
        lines.append(
            t("corpus", lang, articles=counts["articles"], chunks=counts.get("chunks", 0),
              languages=languages_phrase(overview.get("languages", {}), lang), range=period)
        )
    else:
        lines.append(t("corpus_empty", lang))
    lines += ["", t("examples", lang)]
    lines += [f"• <i>{esc(q)}</i>" for q in EXAMPLES[lang]]
    lines += ["", t("how_private", lang), t("how_groups", lang)]
    if bot_username:
        lines.append(t("how_inline", lang, bot=bot_username))
    return "\n".join(lines)


def forgetme_html(deleted: Mapping[str, int], lang: str, keep_days: int) -> str:
    """What /forgetme deleted, by kind, and how long new questions are kept."""
    known = ("questions", "feedback", "pages", "digests")
    other = sum(v for k, v in deleted.items() if k not in known)
    if not sum(deleted.values()):
        lines = [t("forgetme_nothing", lang)]
    else:
        lines = [t("forgetme_done", lang, **{k: deleted.get(k, 0) for k in known})]
        if other:
            lines.append(t("forgetme_other", lang, other=other))
    lines.append(t("forgetme_keep_days", lang, days=keep_days,
                   days_word=noun(keep_days, "day", lang)) if keep_days > 0
                 else t("forgetme_keep_forever", lang))
    return "\n".join(lines)


def help_html(
    lang: str,
    bot_username: str | None,
    commands: Mapping[str, str] | None = None,
    admin_commands: Mapping[str, str] | None = None,
) -> str:
    """How to ask, then every command the reader may use (``admin_commands`` only for
    admins): the menu alone does not show digests or admin commands to everyone."""
    lines = [t("help", lang), "", t("how_groups", lang)]
    if bot_username:
        lines.append(t("how_inline", lang, bot=bot_username))
    for title, table in (("help_commands", commands), ("help_admin", admin_commands)):
        if table:
            lines += ["", t(title, lang)]
            lines += [f"/{esc(name)} — {esc(text)}" for name, text in table.items()]
    return "\n".join(lines)


def example(lang: str) -> str:
    return EXAMPLES[lang][0]


def duration(seconds: float | None) -> str:
    """``75`` → ``1:15``; unknown → ``--:--``."""
    if seconds is None:
        return "--:--"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def memory_lines(copy: CopyStatus, vectors: VectorStore, lang: str) -> list[Html]:
    """The in-memory copy and the vector store, for ``/stats``: an operator sees there why
    answers are slower or keyword-only, not only in the log."""
    if copy.state == "failed":
        line = t("stats_memory_failed", lang, failures=copy.failures,
                 reason=(copy.error or "?")[:160], wait=round(copy.retry_in or 0))
    elif copy.state in ("ready", "stale"):
        line = t("stats_memory_ready", lang, chunks=copy.chunks, mb=copy.mb)
    else:
        line = t(f"stats_memory_{copy.state}", lang)
    lines = [line]
    if vectors.last_error:
        lines.append(t("stats_vectors", lang, store=vectors.description,
                       reopens=vectors.reopens, reason=vectors.last_error[:160]))
    return lines
