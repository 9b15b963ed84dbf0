"""What /sources, /stats and the source alerts say, in Italian and English (bot/live.py)."""

from __future__ import annotations

from typing import Any

from bot import texts
from index.render.i18n import normalize_lang

LIVE_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "<b>Sources</b>: {n}, {failing} failing",
        "none": (
            "No sources are configured: set <code>NEWSBOT_SOURCES</code> (feeds, folders) "
            "and <code>TELEGRAM_CHANNEL_SOURCES</code> (channels)."
        ),
        "every": "every {span}",
        "manual": "manual only (/reindex)",
        "live": "live posts",
        "kind_feed": "feed", "kind_folder": "folder", "kind_file": "file",
        "kind_channel": "channel",
        "ok_line": "last success {when} ({ago} ago)",
        "added": "new articles: {total}, the last {ago} ago",
        "added_none": "no new articles yet",
        "newest": "newest item {lag} old",
        "not_modified": "{n} of {polls} polls unchanged (304)",
        "error_line": "last error {when}: {reason}",
        "failing_line": "{failures} failures in a row · next try in {wait}",
        "flagged": "<b>failing</b>",
        "never": "not read yet",
        "unfinished": "last attempt {when} ({ago} ago), not finished yet",
        "no_posts": "no posts received yet (is the bot an administrator of the channel?)",
        "ch_not_admin": (
            "not receiving posts: the bot is not an administrator of this channel ({status}); "
            "add it in the channel's Administrators and restart"
        ),
        "ch_not_found": (
            "not receiving posts: no such channel, or the bot is not in it (Telegram: "
            "{reason}); check the @username or id in TELEGRAM_CHANNEL_SOURCES"
        ),
        "ch_unchecked": "could not check at start-up that the bot is an administrator: {reason}",
        "due": "next read in {wait}",
        "more": "… and {n} more",
        "alert": (
            "⚠️ Source <b>{name}</b> failed {failures} times in a row.\n"
            "Last error: {reason}\nNext try in {wait}. /sources shows every source."
        ),
        "recovered": "✅ Source <b>{name}</b> works again (+{added} articles).",
        "stats_line": "sources: {n} · failing: {failing} · last new article: {when}",
        "never_short": "never",
        "ago_s": "{n} s", "ago_m": "{n} min", "ago_h": "{n} h", "ago_d": "{n} d",
    },
    "it": {
        "title": "<b>Fonti</b>: {n}, {failing} in errore",
        "none": (
            "Nessuna fonte configurata: imposta <code>NEWSBOT_SOURCES</code> (feed, cartelle) "
            "e <code>TELEGRAM_CHANNEL_SOURCES</code> (canali)."
        ),
        "every": "ogni {span}",
        "manual": "solo a mano (/reindex)",
        "live": "post in diretta",
        "kind_feed": "feed", "kind_folder": "cartella", "kind_file": "file",
        "kind_channel": "canale",
        "ok_line": "ultima lettura riuscita {when} ({ago} fa)",
        "added": "articoli nuovi: {total}, l'ultimo {ago} fa",
        "added_none": "ancora nessun articolo nuovo",
        "newest": "articolo più recente di {lag} fa",
        "not_modified": "{n} letture su {polls} senza novità (304)",
        "error_line": "ultimo errore {when}: {reason}",
        "failing_line": "{failures} errori di fila · nuovo tentativo tra {wait}",
        "flagged": "<b>in errore</b>",
        "never": "non ancora letta",
        "unfinished": "ultimo tentativo {when} ({ago} fa), non ancora concluso",
        "no_posts": "nessun post ricevuto finora (il bot è amministratore del canale?)",
        "ch_not_admin": (
            "non riceve i post: il bot non è amministratore di questo canale ({status}); "
            "aggiungilo tra gli amministratori del canale e riavvia"
        ),
        "ch_not_found": (
            "non riceve i post: il canale non esiste o il bot non ne fa parte (Telegram: "
            "{reason}); controlla @username o id in TELEGRAM_CHANNEL_SOURCES"
        ),
        "ch_unchecked": "impossibile verificare all'avvio che il bot sia amministratore: {reason}",
        "due": "prossima lettura tra {wait}",
        "more": "… e altre {n}",
        "alert": (
            "⚠️ La fonte <b>{name}</b> ha fallito {failures} volte di fila.\n"
            "Ultimo errore: {reason}\nNuovo tentativo tra {wait}. /sources mostra tutte le fonti."
        ),
        "recovered": "✅ La fonte <b>{name}</b> funziona di nuovo (+{added} articoli).",
        "stats_line": "fonti: {n} · in errore: {failing} · ultimo articolo nuovo: {when}",
        "never_short": "mai",
        "ago_s": "{n} s", "ago_m": "{n} min", "ago_h": "{n} h", "ago_d": "{n} g",
    },
}


def t(key: str, lang: str, /, **values: Any) -> texts.Html:
    """The text in ``lang`` (English when unknown), every value but numbers and ready HTML
    escaped: source names, paths and error reasons come from outside."""
    table = LIVE_TEXTS.get(normalize_lang(lang), LIVE_TEXTS["en"])
    template = table.get(key) or LIVE_TEXTS["en"][key]
    safe = {k: v if isinstance(v, int | float | texts.Html) else texts.esc(v)
            for k, v in values.items()}
    return texts.Html(template.format(**safe) if safe else template)


def span(seconds: float | None, lang: str) -> str:
    """``75`` → ``1 min``, ``7200`` → ``2 h``: how long ago, how long until."""
    s = max(0.0, seconds or 0.0)
    if 0 < s < 1:
        return t("ago_s", lang, n=round(s, 1))
    if s < 90:
        return t("ago_s", lang, n=round(s))
    if s < 90 * 60:
        return t("ago_m", lang, n=round(s / 60))
    if s < 36 * 3600:
        return t("ago_h", lang, n=round(s / 3600))
    return t("ago_d", lang, n=round(s / 86400))
