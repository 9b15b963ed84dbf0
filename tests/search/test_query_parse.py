"""Operators and natural IT/EN date phrases → (search text, Filters), at fixed instants."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from index.search.query_parse import parse_question

ROME = ZoneInfo("Europe/Rome")
# Wednesday 3 April 2024, 10:00 in Rome: CEST began on Sunday 31 March, so "last week"
# (25–31 March) starts in CET (UTC+1) and ends in CEST (UTC+2).
NOW = datetime(2024, 4, 3, 10, 0, tzinfo=ROME)
KNOWN = {"ansa", "reuters", "la repubblica", "corriere.it"}


def parse(text: str, now: datetime = NOW, known: set[str] | None = None):
    return parse_question(text, now=now, tz=ROME, known_sources=known or set())


def local(y: int, m: int, d: int) -> datetime:
    """UTC instant of local midnight in Rome."""
    return datetime(y, m, d, tzinfo=ROME).astimezone(UTC)


def days(f) -> tuple[date | None, date | None]:
    """Filters' bounds as Rome calendar days (date_to exclusive)."""

    def d(x: datetime | None) -> date | None:
        if x is None:
            return None
        assert x.tzinfo is not None and x.utcoffset().total_seconds() == 0
        loc = x.astimezone(ROME)
        assert (loc.hour, loc.minute, loc.second) == (0, 0, 0), "not a local midnight"
        return loc.date()

    return d(f.date_from), d(f.date_to)


# -- operators ------------------------------------------------------------------------------


def test_source_operators_multiple_quoted_and_case_insensitive():
    q, f = parse('elezioni SOURCE:ANSA outlet:"La Repubblica" fonte:agi,Reuters regionali')
    assert q == "elezioni regionali"
    assert f.sources == ["ansa", "la repubblica", "agi", "reuters"]
    assert f.date_from is None and f.date_to is None and f.langs == []


def test_source_operator_with_typographic_quotes_and_trailing_punctuation():
    q, f = parse("chi ha vinto fonte:“Il Sole 24 Ore” source:ansa?")
    assert f.sources == ["il sole 24 ore", "ansa"]
    assert q == "chi ha vinto?"


@pytest.mark.parametrize(
    ("text", "langs"),
    [("lang:it x", ["it"]), ("lingua:EN x", ["en"]), ("language:italiano x", ["it"]),
     ("lang:it,en x", ["it", "en"])],
)  # fmt: skip
def test_lang_operators(text, langs):
    q, f = parse(text)
    assert q == "x"
    assert f.langs == langs


def test_after_is_inclusive_before_is_exclusive():
    q, f = parse("Meloni after:2024-01-01 before:2024-02-01")
    assert q == "Meloni"
    assert f.date_from == local(2024, 1, 1) == datetime(2023, 12, 31, 23, tzinfo=UTC)
    assert f.date_to == local(2024, 2, 1)  # 31 January is the last day kept


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("since:2023-05-07 x", (date(2023, 5, 7), None)),
        ("dal:2023-05 x", (date(2023, 5, 1), None)),
        ("da:2023 x", (date(2023, 1, 1), None)),
        ("after:07/05/2023 x", (date(2023, 5, 7), None)),
        ("before:2023-05 x", (None, date(2023, 5, 1))),
        ("before:2023 x", (None, date(2023, 1, 1))),
        ("until:2024-02-10 x", (None, date(2024, 2, 11))),
        ("until:2024-02 x", (None, date(2024, 3, 1))),  # through the end of February
        ("al:2023 x", (None, date(2024, 1, 1))),
        ("fino:31/03/2024 x", (None, date(2024, 4, 1))),
        ("since:yesterday x", (date(2024, 4, 2), None)),
    ],
)
def test_date_operators_and_formats(text, expected):
    q, f = parse(text)
    assert q == "x"
    assert days(f) == expected


@pytest.mark.parametrize(
    "text",
    ["http://x.org/a:b", "https://example.com/da:2023", "after:foo", "lang:xx1", "after:2023-13-01",
     "until:31/02/2024", "ora:12", "nota: da:"],
)  # fmt: skip
def test_unknown_or_malformed_operators_stay_text(text):
    q, f = parse(f"{text} tail")
    assert q == f"{text} tail"
    assert f.is_empty()


def test_operator_and_phrase_constraints_intersect():
    _, f = parse("after:2024-03-10 il mese scorso")
    assert days(f) == (date(2024, 3, 10), date(2024, 4, 1))


# -- natural phrases ------------------------------------------------------------------------

W = date  # shorter rows below


@pytest.mark.parametrize(
    ("text", "query", "start", "end"),
    [
        # days
        ("cosa è successo oggi a Roma?", "cosa è successo a Roma?", W(2024, 4, 3), W(2024, 4, 4)),
        ("what happened today in Rome", "what happened in Rome", W(2024, 4, 3), W(2024, 4, 4)),
        ("cosa è successo ieri a Roma?", "cosa è successo a Roma?", W(2024, 4, 2), W(2024, 4, 3)),
        ("yesterday's news about Gaza", "news about Gaza", W(2024, 4, 2), W(2024, 4, 3)),
        ("notizie dell'altro ieri", "notizie", W(2024, 4, 1), W(2024, 4, 2)),
        ("l'altroieri Meloni", "Meloni", W(2024, 4, 1), W(2024, 4, 2)),
        ("news from the day before yesterday", "news", W(2024, 4, 1), W(2024, 4, 2)),
        # weeks (Monday–Sunday); last week crosses the DST change
        ("this week in Gaza", "in Gaza", W(2024, 4, 1), W(2024, 4, 8)),
        ("notizie di questa settimana", "notizie", W(2024, 4, 1), W(2024, 4, 8)),
        ("what happened last week in Gaza", "what happened in Gaza", W(2024, 3, 25), W(2024, 4, 1)),
        ("notizie della settimana scorsa", "notizie", W(2024, 3, 25), W(2024, 4, 1)),
        ("la settimana passata Meloni", "Meloni", W(2024, 3, 25), W(2024, 4, 1)),
        ("la scorsa settimana Meloni", "Meloni", W(2024, 3, 25), W(2024, 4, 1)),
        # months and years
        ("this month inflation", "inflation", W(2024, 4, 1), W(2024, 5, 1)),
        ("inflazione questo mese", "inflazione", W(2024, 4, 1), W(2024, 5, 1)),
        ("last month inflation", "inflation", W(2024, 3, 1), W(2024, 4, 1)),
        ("inflazione il mese scorso", "inflazione", W(2024, 3, 1), W(2024, 4, 1)),
        ("this year elections", "elections", W(2024, 1, 1), W(2025, 1, 1)),
        ("elezioni quest'anno", "elezioni", W(2024, 1, 1), W(2025, 1, 1)),
        ("elezioni quest’anno", "elezioni", W(2024, 1, 1), W(2025, 1, 1)),
        ("elections last year", "elections", W(2023, 1, 1), W(2024, 1, 1)),
        ("elezioni dell'anno scorso", "elezioni", W(2023, 1, 1), W(2024, 1, 1)),
        # rolling windows: from local midnight N days back, through today
        ("last 3 days Gaza", "Gaza", W(2024, 3, 31), W(2024, 4, 4)),
        ("Gaza negli ultimi 3 giorni", "Gaza", W(2024, 3, 31), W(2024, 4, 4)),
        ("Gaza negli ultimi tre giorni", "Gaza", W(2024, 3, 31), W(2024, 4, 4)),
        ("ultimi 5 giorni Gaza", "Gaza", W(2024, 3, 29), W(2024, 4, 4)),
        ("Gaza in the past 2 weeks", "Gaza", W(2024, 3, 20), W(2024, 4, 4)),
        ("Gaza nelle ultime 2 settimane", "Gaza", W(2024, 3, 20), W(2024, 4, 4)),
        ("Gaza in the last month", "Gaza", W(2024, 3, 3), W(2024, 4, 4)),
        ("Gaza nell'ultimo mese", "Gaza", W(2024, 3, 3), W(2024, 4, 4)),
        ("Gaza nell'ultima settimana", "Gaza", W(2024, 3, 27), W(2024, 4, 4)),
        ("Gaza in the last 24 hours", "Gaza", W(2024, 4, 2), W(2024, 4, 4)),
        ("3 days ago Gaza", "Gaza", W(2024, 3, 31), W(2024, 4, 1)),
        ("tre giorni fa Gaza", "Gaza", W(2024, 3, 31), W(2024, 4, 1)),
        # month + year
        ("news in March 2024", "news", W(2024, 3, 1), W(2024, 4, 1)),
        ("Meloni a marzo 2024", "Meloni", W(2024, 3, 1), W(2024, 4, 1)),
        ("Meloni nel marzo 2024", "Meloni", W(2024, 3, 1), W(2024, 4, 1)),
        ("March 2024 Meloni", "Meloni", W(2024, 3, 1), W(2024, 4, 1)),
        ("marzo 2024 Meloni", "Meloni", W(2024, 3, 1), W(2024, 4, 1)),
        ("Meloni Dec 2023", "Meloni", W(2023, 12, 1), W(2024, 1, 1)),
        ("Meloni dic 2023", "Meloni", W(2023, 12, 1), W(2024, 1, 1)),
        ("Meloni sept. 2023", "Meloni", W(2023, 9, 1), W(2023, 10, 1)),
        # month without a year: the most recent one not in the future
        ("Meloni a marzo", "Meloni", W(2024, 3, 1), W(2024, 4, 1)),
        ("Meloni in May", "Meloni", W(2023, 5, 1), W(2023, 6, 1)),
        # single days
        ("Meloni on 5 March 2024", "Meloni", W(2024, 3, 5), W(2024, 3, 6)),
        ("Meloni on March 5, 2024", "Meloni", W(2024, 3, 5), W(2024, 3, 6)),
        ("Meloni il 5 marzo 2024", "Meloni", W(2024, 3, 5), W(2024, 3, 6)),
        ("Meloni il primo marzo 2024", "Meloni", W(2024, 3, 1), W(2024, 3, 2)),
        ("Meloni 5/3/2024", "Meloni", W(2024, 3, 5), W(2024, 3, 6)),
        ("Meloni 2024-03-05", "Meloni", W(2024, 3, 5), W(2024, 3, 6)),
        ("Meloni il 5 marzo", "Meloni", W(2024, 3, 5), W(2024, 3, 6)),
        ("Meloni il 25 aprile", "Meloni", W(2023, 4, 25), W(2023, 4, 26)),
        # open ranges
        ("Meloni since 2023-01-01", "Meloni", W(2023, 1, 1), None),
        ("Meloni dal 2023", "Meloni", W(2023, 1, 1), None),
        ("Meloni since 2023", "Meloni", W(2023, 1, 1), None),
        ("Meloni from 2023", "Meloni", W(2023, 1, 1), None),
        ("Meloni dal 5 marzo", "Meloni", W(2024, 3, 5), None),
        ("Meloni dall'anno scorso", "Meloni", W(2023, 1, 1), None),
        ("Meloni after March 2024", "Meloni", W(2024, 4, 1), None),
        ("Meloni dopo il 2023", "Meloni", W(2024, 1, 1), None),
        ("Meloni before 2020", "Meloni", None, W(2020, 1, 1)),
        ("Meloni prima del 2020", "Meloni", None, W(2020, 1, 1)),
        ("Meloni prima del 5 marzo 2024", "Meloni", None, W(2024, 3, 5)),
        ("Meloni until March 2024", "Meloni", None, W(2024, 4, 1)),
        ("Meloni fino a marzo 2024", "Meloni", None, W(2024, 4, 1)),
        ("Meloni fino al 2022", "Meloni", None, W(2023, 1, 1)),
        # closed ranges
        ("Meloni tra gennaio e marzo 2024", "Meloni", W(2024, 1, 1), W(2024, 4, 1)),
        ("Meloni between Jan and Mar 2024", "Meloni", W(2024, 1, 1), W(2024, 4, 1)),
        ("Meloni from January to March 2024", "Meloni", W(2024, 1, 1), W(2024, 4, 1)),
        ("Meloni da gennaio a marzo 2024", "Meloni", W(2024, 1, 1), W(2024, 4, 1)),
        ("Meloni tra novembre e febbraio 2024", "Meloni", W(2023, 11, 1), W(2024, 3, 1)),
        ("Meloni dal 1 al 5 marzo 2024", "Meloni", W(2024, 3, 1), W(2024, 3, 6)),
        ("Meloni tra il 2020 e il 2022", "Meloni", W(2020, 1, 1), W(2023, 1, 1)),
        ("Meloni from 2020 to 2022", "Meloni", W(2020, 1, 1), W(2023, 1, 1)),
        ("Meloni dal 2020 al 2022", "Meloni", W(2020, 1, 1), W(2023, 1, 1)),
    ],
)
def test_phrases(text, query, start, end):
    q, f = parse(text)
    assert q == query
    assert days(f) == (start, end)
    assert f.sources == [] and f.langs == []


@pytest.mark.parametrize(
    "text",
    ["What happened in 1973?", "cosa è successo nel 1973", "elezioni nel 2023", "in 2023",
     "the 2023 elections", "Theresa May said", "5 set vinti", "il mar Mediterraneo",
     "da 2000 a 3000 euro", "tra 5 e 10 anni", "up to 5 people", "2020-2022 budget"],
)  # fmt: skip
def test_not_a_filter(text):
    q, f = parse(text)
    assert f.is_empty(), f
    assert q == text


def test_exact_utc_boundaries_across_spring_dst():
    _, f = parse("last week")
    assert f.date_from == datetime(2024, 3, 24, 23, 0, tzinfo=UTC)  # Mon 25 Mar, CET
    assert f.date_to == datetime(2024, 3, 31, 22, 0, tzinfo=UTC)  # Mon 1 Apr, CEST


def test_exact_utc_boundaries_across_autumn_dst():
    now = datetime(2024, 10, 30, 9, 0, tzinfo=ROME)  # CET resumed on Sunday 27 October
    _, f = parse("la settimana scorsa", now=now)
    assert f.date_from == datetime(2024, 10, 20, 22, 0, tzinfo=UTC)  # Mon 21 Oct, CEST
    assert f.date_to == datetime(2024, 10, 27, 23, 0, tzinfo=UTC)  # Mon 28 Oct, CET
    _, f = parse("ieri", now=now)
    assert days(f) == (date(2024, 10, 29), date(2024, 10, 30))


def test_year_and_month_boundaries():
    now = datetime(2024, 1, 2, 8, 0, tzinfo=ROME)  # a Tuesday
    assert days(parse("last week", now=now)[1]) == (date(2023, 12, 25), date(2024, 1, 1))
    assert days(parse("il mese scorso", now=now)[1]) == (date(2023, 12, 1), date(2024, 1, 1))
    assert days(parse("l'anno scorso", now=now)[1]) == (date(2023, 1, 1), date(2024, 1, 1))
    assert days(parse("ultimi 3 giorni", now=now)[1]) == (date(2023, 12, 30), date(2024, 1, 3))
    assert days(parse("l'altro ieri", now=now)[1]) == (date(2023, 12, 31), date(2024, 1, 1))
    assert days(parse("a dicembre", now=now)[1]) == (date(2023, 12, 1), date(2024, 1, 1))
    # one month back from 31 March clamps to 29 February (leap year)
    now = datetime(2024, 3, 31, 12, 0, tzinfo=ROME)
    assert days(parse("the past month", now=now)[1]) == (date(2024, 2, 29), date(2024, 4, 1))
    assert days(parse("questo mese", now=now)[1]) == (date(2024, 3, 1), date(2024, 4, 1))


def test_today_follows_the_users_time_zone_not_utc():
    # 00:30 in Rome on 3 April is still 2 April in UTC.
    now = datetime(2024, 4, 2, 22, 30, tzinfo=UTC)
    q, f = parse_question("oggi", now=now, tz=ROME)
    assert days(f) == (date(2024, 4, 3), date(2024, 4, 4))
    naive = datetime(2024, 4, 3, 0, 30)  # naive means local time in tz
    assert parse_question("oggi", now=naive, tz=ROME)[1] == f


def test_phrases_inside_a_longer_question_keep_the_other_words():
    q, f = parse("Quali sono le ultime notizie su Gaza della settimana scorsa, secondo te?")
    assert q == "Quali sono le ultime notizie su Gaza, secondo te?"
    assert days(f) == (date(2024, 3, 25), date(2024, 4, 1))


# -- outlets in prose -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "query", "sources"),
    [
        ("according to ANSA inflation rose", "inflation rose", ["ansa"]),
        ("secondo l'ANSA l'inflazione è salita", "l'inflazione è salita", ["ansa"]),
        ("secondo la Repubblica chi ha vinto?", "chi ha vinto?", ["la repubblica"]),
        ("cosa scrive Repubblica secondo Repubblica", "cosa scrive Repubblica", ["la repubblica"]),
        ("news from Reuters about Gaza", "news about Gaza", ["reuters"]),
        ("notizie da Reuters e ANSA su Gaza", "notizie su Gaza", ["reuters", "ansa"]),
        ("cosa dice il Corriere? secondo il Corriere", "cosa dice il Corriere?", ["corriere.it"]),
    ],
)
def test_outlets_named_in_prose(text, query, sources):
    q, f = parse(text, known=KNOWN)
    assert q == query
    assert f.sources == sources


@pytest.mark.parametrize(
    "text", ["news from Rome", "notizie da Roma", "secondo me", "according to the minister"]
)
def test_unknown_outlets_are_not_filters(text):
    q, f = parse(text, known=KNOWN)
    assert f.is_empty()
    assert q == text


def test_outlet_and_date_together():
    q, f = parse("secondo l'ANSA cosa è successo ieri a Roma?", known=KNOWN)
    assert q == "cosa è successo a Roma?"
    assert f.sources == ["ansa"]
    assert days(f) == (date(2024, 4, 2), date(2024, 4, 3))


def test_only_filters_gives_empty_query():
    q, f = parse("ieri source:ansa")
    assert q == ""
    assert f.sources == ["ansa"]


def test_outlet_aliases_drop_domains_articles_and_suffixes():
    known = {"bbc news", "wikinews (meantime)", "ansa.it", "the guardian"}
    q, f = parse("according to the BBC and the Guardian, what did Wikinews say?", known=known)
    assert f.sources == ["bbc news", "the guardian"]
    assert q == "what did Wikinews say?"
    q, f = parse("secondo Wikinews e ANSA cosa fa GM?", known=known)
    assert f.sources == ["wikinews (meantime)", "ansa.it"]
    assert q == "cosa fa GM?"
