"""Every word the digest side says to a user, in English and Italian, with one :func:`t`.

The texts are plain: the handlers escape a whole reply for Telegram HTML when they send it,
so a template never holds markup and a value never needs escaping here. The rendered digest
itself (its headings, "No news since …") is :mod:`index.digest.render`'s.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.digests.schedule import Subscription
from index.render.i18n import format_date, lookup

COMMANDS = ("subscribe", "unsubscribe", "digest", "subscriptions")  # menu order

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "subscribed": "✅ Digest set up for {chat}: {schedule}{topic}.\nNext one: {next}.",
        "topic": ", topic “{topic}”",
        "daily": "every day at {at} ({tz})",
        "weekly": "every {weekday} at {at} ({tz})",
        "empty_on": " A “no news” line is posted when there is nothing new.",
        "unsubscribed": "Digest stopped for {chat}.",
        "not_subscribed": "{chat} has no digest. Set one up with /subscribe.",
        "need_group_admin": "Only the group's administrators can change its digest.",
        "need_bot_admin": "Only the bot's administrators can set up digests for channels.",
        "admin_check_failed": "I could not check who administers this chat: {error}",
        "bad_time": "“{value}” is not a time: write it as HH:MM, e.g. 08:00.",
        "bad_tz": "Unknown time zone “{value}”: use a name like Europe/Rome or UTC.",
        "channel_not_found": (
            "I cannot see {channel}. Add me to the channel as an administrator with the right "
            "to post messages, then send this command again."
        ),
        "channel_not_admin": (
            "I am not an administrator of {channel}. Open the channel's settings → "
            "Administrators → Add administrator, choose me and allow “Post messages”, then "
            "send this command again."
        ),
        "channel_cannot_post": (
            "I am an administrator of {channel} but may not post messages. In the channel's "
            "settings → Administrators, open my entry and allow “Post messages”, then send "
            "this command again."
        ),
        "not_a_channel": "{channel} is a group: send /subscribe in the group itself.",
        "channel_only_private": "Set up a channel's digest from a private chat with me.",
        "list_none": "No digest is set up here. Try /subscribe 08:00 daily.",
        "list_header": "Digests:",
        "list_item": "• {chat}: {schedule}{topic}; next {next}{last}",
        "list_last": "; last sent {last}",
        "nothing_new": "Nothing new since the last digest.",
        "failure_what": "digest {schedule}{topic}",
        "preview_failed": "I could not build the digest right now, sorry. Please try later.",
        "error": "Sorry, something went wrong with the digest settings. Please try again.",
        "usage": (
            "Usage: /subscribe [HH:MM] [daily|weekly] [mon…sun] [Area/City] [--empty] "
            "[topic words]"
        ),
        "cmd_subscribe": "Periodic news digest here: [HH:MM] [daily|weekly] [topic]",
        "cmd_unsubscribe": "Stop this chat's digest",
        "cmd_digest": "Preview the digest that would be sent now",
        "cmd_subscriptions": "This chat's digest settings",
        "weekday_0": "Monday",
        "weekday_1": "Tuesday",
        "weekday_2": "Wednesday",
        "weekday_3": "Thursday",
        "weekday_4": "Friday",
        "weekday_5": "Saturday",
        "weekday_6": "Sunday",
    },
    "it": {
        "subscribed": "✅ Rassegna attivata per {chat}: {schedule}{topic}.\nProssima: {next}.",
        "topic": ", argomento «{topic}»",
        "daily": "ogni giorno alle {at} ({tz})",
        "weekly": "ogni {weekday} alle {at} ({tz})",
        "empty_on": " Se non ci sono novità scrivo una riga per dirlo.",
        "unsubscribed": "Rassegna fermata per {chat}.",
        "not_subscribed": "{chat} non ha una rassegna. Attivala con /subscribe.",
        "need_group_admin": "Solo gli amministratori del gruppo possono cambiarne la rassegna.",
        "need_bot_admin": "Solo gli amministratori del bot possono attivare rassegne nei canali.",
        "admin_check_failed": "Non riesco a verificare chi amministra questa chat: {error}",
        "bad_time": "«{value}» non è un orario: scrivilo come HH:MM, per esempio 08:00.",
        "bad_tz": "Fuso orario «{value}» sconosciuto: usa un nome come Europe/Rome o UTC.",
        "channel_not_found": (
            "Non vedo {channel}. Aggiungimi al canale come amministratore con il permesso di "
            "pubblicare messaggi, poi manda di nuovo questo comando."
        ),
        "channel_not_admin": (
            "Non sono amministratore di {channel}. Apri le impostazioni del canale → "
            "Amministratori → Aggiungi amministratore, scegli me e consenti «Pubblica "
            "messaggi», poi manda di nuovo questo comando."
        ),
        "channel_cannot_post": (
            "Sono amministratore di {channel} ma non posso pubblicare messaggi. Nelle "
            "impostazioni del canale → Amministratori, apri la mia voce e consenti «Pubblica "
            "messaggi», poi manda di nuovo questo comando."
        ),
        "not_a_channel": "{channel} è un gruppo: manda /subscribe nel gruppo stesso.",
        "channel_only_private": "Attiva la rassegna di un canale da una chat privata con me.",
        "list_none": "Qui non c'è nessuna rassegna. Prova /subscribe 08:00 daily.",
        "list_header": "Rassegne:",
        "list_item": "• {chat}: {schedule}{topic}; prossima {next}{last}",
        "list_last": "; ultima inviata {last}",
        "nothing_new": "Nessuna novità dall'ultima rassegna.",
        "failure_what": "rassegna {schedule}{topic}",
        "preview_failed": "Non riesco a preparare la rassegna adesso, scusa. Riprova più tardi.",
        "error": "Scusa, qualcosa è andato storto con la rassegna. Riprova.",
        "usage": (
            "Uso: /subscribe [HH:MM] [daily|weekly] [lun…dom] [Area/Città] [--empty] "
            "[parole dell'argomento]"
        ),
        "cmd_subscribe": "Rassegna periodica qui: [HH:MM] [daily|weekly] [argomento]",
        "cmd_unsubscribe": "Ferma la rassegna di questa chat",
        "cmd_digest": "Anteprima della rassegna di adesso",
        "cmd_subscriptions": "Impostazioni della rassegna di questa chat",
        "weekday_0": "lunedì",
        "weekday_1": "martedì",
        "weekday_2": "mercoledì",
        "weekday_3": "giovedì",
        "weekday_4": "venerdì",
        "weekday_5": "sabato",
        "weekday_6": "domenica",
    },
}

LANGS = tuple(STRINGS)


def t(key: str, lang: str | None, /, **values: object) -> str:
    """The template ``key`` in ``lang`` (English when it has none) filled with ``values``."""
    return lookup(STRINGS, key, lang, **values)


def command_menu(lang: str) -> list[tuple[str, str]]:
    """(command, description) for the bot's command menu, in :data:`COMMANDS` order."""
    return [(name, t(f"cmd_{name}", lang)) for name in COMMANDS]


def when_text(dt: datetime, sub_tz: ZoneInfo, lang: str) -> str:
    local = dt.astimezone(sub_tz)
    return f"{format_date(local.date(), lang)} {local:%H:%M}"


def schedule_text(sub: Subscription, lang: str) -> str:
    """``every day at 08:00 (Europe/Rome)``."""
    if sub.frequency == "weekly":
        return t("weekly", lang, weekday=t(f"weekday_{sub.weekday}", lang), at=sub.at,
                 tz=sub.tz)
    return t("daily", lang, at=sub.at, tz=sub.tz)


def topic_text(sub: Subscription, lang: str) -> str:
    """``, topic “Gaza”``, or nothing for a digest of everything."""
    return t("topic", lang, topic=sub.topic) if sub.topic else ""
