"""User-facing strings in Italian and English; any other language falls back to English.

The answer renderers' and the digest renderer's strings (the bot's are in ``bot/texts/``
and ``bot/digests/texts.py``). Values are ``str.format`` templates; callers escape the
*result* for HTML, so templates hold no markup.
"""

from __future__ import annotations

from datetime import date

__all__ = [
    "DEFAULT_LANG",
    "MONTHS",
    "STRINGS",
    "date_prepositions",
    "format_date",
    "normalize_lang",
    "t",
]

DEFAULT_LANG = "en"

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "header": "{n} passages for: {question}",
        "header_one": "1 passage for: {question}",
        "header_more": "More passages for: {question}",
        "relaxed_line": "Nothing published {filters}; showing matches from any date.",
        "relaxed_line_some": "Nothing relevant {filters}; showing matches from any date.",
        "nothing_published": "Nothing published {filters}.",
        "top_stories_line": "Top stories of the period, by how many outlets reported them.",
        "suggest_period": "Try another period, such as “this week”.",
        "filters_line": "Filters: {filters}",
        "open_at_passage": "↗ open at the passage",
        "also_reported_by": "also reported by: ",
        "and_more": "and {n} more",
        "untitled": "(untitled)",
        "not_found": "Nothing relevant found for: {question}",
        "suggest_rephrase": "Try asking with other words, or about a different topic.",
        "suggest_filters": "Try again without the filters.",
        "filters_active": "Active filters: {filters}.",
        "filter_day": "on {date}",
        "filter_between": "from {start} to {end}",
        "filter_since": "since {date}",
        "filter_as_of": "as of {date}",
        "filter_until": "until {date}",
        "filter_sources": "source: {sources}",
        "filter_langs": "language: {langs}",
        "quote_cut": "…",
        "keyword_only_line": (
            "Meaning search is unavailable right now: these passages match your words only."
        ),
        # digests (index/digest/render.py)
        "digest_daily": "Daily news digest — {date}",
        "digest_weekly": "Weekly news digest — {date}",
        "digest_period": "News digest — {start} to {end}",
        "digest_day": "News digest — {date}",
        "digest_preview": "Preview: ",
        "digest_summary": "{stories} stories from {articles} {articles_word} since {since}",
        "digest_summary_one": "1 story from {articles} {articles_word} since {since}",
        "digest_summary_cut": "the top {stories} of {total} stories from {articles}"
        " {articles_word} since {since}",
        "digest_topic": "Topic: {topic}",
        "digest_also": "Also: ",
        "digest_and_more": "and {n} more",
        "digest_empty": "No news since {since}.",
        "digest_article": "article",
        "digest_articles": "articles",
    },
    "it": {
        "header": "{n} passaggi per: {question}",
        "header_one": "1 passaggio per: {question}",
        "header_more": "Altri passaggi per: {question}",
        "relaxed_line": "Niente pubblicato {filters}; ecco i risultati di qualsiasi data.",
        "relaxed_line_some": "Niente di pertinente {filters}; ecco i risultati di qualsiasi data.",
        "nothing_published": "Niente pubblicato {filters}.",
        "top_stories_line": "Le notizie principali del periodo, per numero di testate.",
        "suggest_period": "Prova con un altro periodo, per esempio «questa settimana».",
        "filters_line": "Filtri: {filters}",
        "open_at_passage": "↗ apri al passaggio",
        "also_reported_by": "anche su: ",
        "and_more": "e altri {n}",
        "untitled": "(senza titolo)",
        "not_found": "Non ho trovato niente di pertinente per: {question}",
        "suggest_rephrase": "Prova a chiedere con altre parole, o su un altro argomento.",
        "suggest_filters": "Riprova senza i filtri.",
        "filters_active": "Filtri attivi: {filters}.",
        "filter_day": "{p_on}{date}",
        "filter_between": "{p_from}{start} {p_to}{end}",
        "filter_since": "{p_from}{date}",
        "filter_as_of": "situazione {p_to}{date}",
        "filter_until": "fino {p_to}{date}",
        "filter_sources": "fonte: {sources}",
        "filter_langs": "lingua: {langs}",
        "quote_cut": "…",
        "keyword_only_line": (
            "La ricerca per significato non è disponibile ora: questi passaggi contengono"
            " solo le tue parole."
        ),
        # digests (index/digest/render.py)
        "digest_daily": "Rassegna del giorno — {date}",
        "digest_weekly": "Rassegna della settimana — {date}",
        "digest_period": "Rassegna — {p_from}{start} {p_to}{end}",
        "digest_day": "Rassegna — {date}",
        "digest_preview": "Anteprima: ",
        "digest_summary": "{stories} notizie da {articles} {articles_word} {p_from}{since}",
        "digest_summary_one": "1 notizia da {articles} {articles_word} {p_from}{since}",
        "digest_summary_cut": "le {stories} principali di {total} notizie da {articles}"
        " {articles_word} {p_from}{since}",
        "digest_topic": "Argomento: {topic}",
        "digest_also": "Anche: ",
        "digest_and_more": "e altri {n}",
        "digest_empty": "Nessuna notizia {p_from}{since}.",
        "digest_article": "articolo",
        "digest_articles": "articoli",
    },
}

MONTHS: dict[str, tuple[str, ...]] = {
    "en": (
        "January", "February", "March", "April", "May", "June", "July", "August",
        "September", "October", "November", "December",
    ),
    "it": (
        "gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto",
        "settembre", "ottobre", "novembre", "dicembre",
    ),
}  # fmt: skip


def normalize_lang(lang: str | None) -> str:
    """``"it-IT"``/``"IT"`` → ``"it"``; anything without strings of its own → English."""
    code = (lang or "").replace("_", "-").split("-", 1)[0].strip().lower()
    return code if code in STRINGS else DEFAULT_LANG


Strings = dict[str, dict[str, str]]  # lang → key → template


def lookup(strings: Strings, key: str, lang: str | None, /, **values: object) -> str:
    """The template ``key`` of a table in ``lang`` (English when missing there), filled with
    ``values``: the one rule every string table of the project (renderer, digests, alerts)
    follows."""
    table = strings[normalize_lang(lang)]
    template = table.get(key) or strings[DEFAULT_LANG][key]
    return template.format(**values) if values else template


def t(key: str, lang: str | None = DEFAULT_LANG, /, **kwargs: object) -> str:
    """The renderer's string ``key`` in ``lang``."""
    return lookup(STRINGS, key, lang, **kwargs)


def format_date(d: date, lang: str | None = DEFAULT_LANG) -> str:
    """``5 March 2024`` / ``5 marzo 2024`` (day first in both, as British and Italian do)."""
    months = MONTHS.get(normalize_lang(lang), MONTHS[DEFAULT_LANG])
    return f"{d.day} {months[d.month - 1]} {d.year}"


def date_prepositions(day_text: str) -> dict[str, str]:
    """Italian articles and articulated prepositions for a formatted date: "il 5"/"l'1",
    "dal 5"/"dall'8", "al 5"/"all'11" (1, 8 and 11 are read "uno", "otto", "undici").

    Passed to every date template as ``p_on``/``p_from``/``p_to``; English ignores them.
    """
    elided = day_text.startswith(("1 ", "8 ", "11 "))
    return {
        "p_on": "l'" if elided else "il ",
        "p_from": "dall'" if elided else "dal ",
        "p_to": "all'" if elided else "al ",
    }


def format_number(n: int, lang: str | None = DEFAULT_LANG) -> str:
    """``2,167`` / ``2.167``: thousands grouped as each language writes them."""
    text = f"{n:,}"
    return text.replace(",", ".") if normalize_lang(lang) == "it" else text


def format_decimal(x: float, digits: int = 1, lang: str | None = DEFAULT_LANG) -> str:
    """``1.3`` / ``1,3``."""
    text = f"{x:.{digits}f}"
    return text.replace(".", ",") if normalize_lang(lang) == "it" else text


def plural(n: int, one: str, many: str) -> str:
    """``one`` for exactly 1 (both languages put the singular there), else ``many``."""
    return one if n == 1 else many
