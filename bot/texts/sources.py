"""What /sources, /stats and the admins' source alerts say about the live sources
(bot/live.py), in Italian and English: data only, read through :func:`bot.texts.t` with keys
``src_*``."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "src_title": "<b>Sources</b>: {n}, {failing} failing",
        "src_none": (
            "No sources are configured: set <code>NEWSBOT_SOURCES</code> (feeds, folders) "
            "and <code>TELEGRAM_CHANNEL_SOURCES</code> (channels)."
        ),
        "src_every": "every {span}",
        "src_manual": "manual only (/reindex)",
        "src_live": "live posts",
        "src_kind_feed": "feed", "src_kind_folder": "folder", "src_kind_file": "file",
        "src_kind_channel": "channel",
        "src_ok_line": "last success {when} ({ago} ago)",
        "src_added": "new articles: {total}, the last {ago} ago",
        "src_added_none": "no new articles yet",
        "src_newest": "newest item {lag} old",
        "src_not_modified": "{n} of {polls} polls unchanged (304)",
        "src_error_line": "last error {when}: {reason}",
        "src_failing_line": "{failures} failures in a row · next try in {wait}",
        "src_flagged": "<b>failing</b>",
        "src_never": "not read yet",
        "src_unfinished": "last attempt {when} ({ago} ago), not finished yet",
        "src_no_posts": "no posts received yet (is the bot an administrator of the channel?)",
        "src_ch_not_admin": (
            "not receiving posts: the bot is not an administrator of this channel ({status}); "
            "add it in the channel's Administrators and restart"
        ),
        "src_ch_not_found": (
            "not receiving posts: no such channel, or the bot is not in it (Telegram: "
            "{reason}); check the @username or id in TELEGRAM_CHANNEL_SOURCES"
        ),
        "src_ch_unchecked": "could not check at start-up that the bot is an administrator: {reason}",
        "src_due": "next read in {wait}",
        "src_more": "… and {n} more",
        "src_alert": (
            "⚠️ Source <b>{name}</b> failed {failures} times in a row.\n"
            "Last error: {reason}\nNext try in {wait}. /sources shows every source."
        ),
        "src_recovered": "✅ Source <b>{name}</b> works again (+{added} articles).",
        "src_stats_line": "sources: {n} · failing: {failing} · last new article: {when}",
        "src_never_short": "never",
        "src_ago_s": "{n} s", "src_ago_m": "{n} min", "src_ago_h": "{n} h", "src_ago_d": "{n} d",
    },
    "it": {
        "src_title": "<b>Fonti</b>: {n}, {failing} in errore",
        "src_none": (
            "Nessuna fonte configurata: imposta <code>NEWSBOT_SOURCES</code> (feed, cartelle) "
            "e <code>TELEGRAM_CHANNEL_SOURCES</code> (canali)."
        ),
        "src_every": "ogni {span}",
        "src_manual": "solo a mano (/reindex)",
        "src_live": "post in diretta",
        "src_kind_feed": "feed", "src_kind_folder": "cartella", "src_kind_file": "file",
        "src_kind_channel": "canale",
        "src_ok_line": "ultima lettura riuscita {when} ({ago} fa)",
        "src_added": "articoli nuovi: {total}, l'ultimo {ago} fa",
        "src_added_none": "ancora nessun articolo nuovo",
        "src_newest": "articolo più recente di {lag} fa",
        "src_not_modified": "{n} letture su {polls} senza novità (304)",
        "src_error_line": "ultimo errore {when}: {reason}",
        "src_failing_line": "{failures} errori di fila · nuovo tentativo tra {wait}",
        "src_flagged": "<b>in errore</b>",
        "src_never": "non ancora letta",
        "src_unfinished": "ultimo tentativo {when} ({ago} fa), non ancora concluso",
        "src_no_posts": "nessun post ricevuto finora (il bot è amministratore del canale?)",
        "src_ch_not_admin": (
            "non riceve i post: il bot non è amministratore di questo canale ({status}); "
            "aggiungilo tra gli amministratori del canale e riavvia"
        ),
        "src_ch_not_found": (
            "non riceve i post: il canale non esiste o il bot non ne fa parte (Telegram: "
            "{reason}); controlla @username o id in TELEGRAM_CHANNEL_SOURCES"
        ),
        "src_ch_unchecked": "impossibile verificare all'avvio che il bot sia amministratore: {reason}",
        "src_due": "prossima lettura tra {wait}",
        "src_more": "… e altre {n}",
        "src_alert": (
            "⚠️ La fonte <b>{name}</b> ha fallito {failures} volte di fila.\n"
            "Ultimo errore: {reason}\nNuovo tentativo tra {wait}. /sources mostra tutte le fonti."
        ),
        "src_recovered": "✅ La fonte <b>{name}</b> funziona di nuovo (+{added} articoli).",
        "src_stats_line": "fonti: {n} · in errore: {failing} · ultimo articolo nuovo: {when}",
        "src_never_short": "mai",
        "src_ago_s": "{n} s", "src_ago_m": "{n} min", "src_ago_h": "{n} h", "src_ago_d": "{n} g",
    },
}
