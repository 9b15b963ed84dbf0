"""Dates in answers are true (issue 18): "oggi"/"ieri"/"today" are periods of publication in
the configured time zone, never keywords, and a question that is only a period gets that
period's top stories.

Real components: the default packaged embedder, SQLite FTS5 and embedded Chroma; the clock
is an explicit ``now=`` (2 December 2026, 15:00 in Rome).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from index.digest.stories import build_digest
from index.embed import make_embedder
from index.render.plain import render_plain
from index.render.telegram_html import render_telegram_html
from index.runtime import build_retriever, open_services
from index.search.query_parse import is_filler, parse_question_full, strip_relative_dates
from index.settings import Settings

ROME = ZoneInfo("Europe/Rome")
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=ROME)

BILANCIO = (
    "Il consiglio comunale di Milano ha approvato il bilancio 2027 dopo una seduta durata "
    "tutta la notte. Il sindaco ha detto che i fondi per il trasporto pubblico crescono del "
    "dieci per cento. L'opposizione ha votato contro e ha annunciato un ricorso al tribunale "
    "amministrativo."
)
ARTICLES = [
    # -- 2 December 2026 in Rome: five articles, four stories ------------------------------
    {"id": "today-bilancio", "lang": "it", "source": "ANSA", "url": "https://ansa.example/b",
     "published": "2026-12-02T09:00:00+01:00", "title": "Milano approva il bilancio 2027",
     "text": BILANCIO},
    {"id": "today-bilancio-copy", "lang": "it", "source": "Corriere Locale",
     "url": "https://corriere.example/b", "published": "2026-12-02T11:00:00+01:00",
     "title": "Bilancio, via libera dal consiglio comunale",
     "text": "Di Redazione\n\n" + BILANCIO},
    # 00:30 in Rome on 2 December is still 1 December in UTC.
    {"id": "today-0030", "lang": "it", "source": "La Stampa", "url": "https://stampa.example/f",
     "published": "2026-12-01T23:30:00Z", "title": "Incendio nella notte a Torino",
     "text": "Un incendio è scoppiato nella notte in un deposito di legname alla periferia di "
     "Torino. I vigili del fuoco hanno lavorato per ore per spegnere le fiamme. Nessuno è "
     "rimasto ferito, ma la strada provinciale è rimasta chiusa fino al mattino."},
    {"id": "today-ecb", "lang": "en", "source": "Reuters", "url": "https://reuters.example/ecb",
     "published": "2026-12-02T10:00:00Z", "title": "ECB keeps rates unchanged",
     "text": "The European Central Bank kept interest rates unchanged on Wednesday, citing "
     "easing inflation across the euro area. Its president said further cuts would depend on "
     "wage data. Markets in Frankfurt and Paris rose slightly after the announcement."},
    {"id": "today-neve", "lang": "it", "source": "Il Meteo", "url": "https://meteo.example/n",
     "published": "2026-12-02T13:00:00+01:00", "title": "Prima neve sulle Dolomiti",
     "text": "La prima neve della stagione è caduta sulle Dolomiti, con trenta centimetri a "
     "Cortina. Gli impianti di risalita apriranno sabato, una settimana prima del previsto. "
     "I gestori dei rifugi parlano di un inizio d'inverno eccezionale."},
    # -- 1 December 2026 in Rome -----------------------------------------------------------
    {"id": "yest-porto", "lang": "it", "source": "Il Secolo", "url": "https://secolo.example/p",
     "published": "2026-12-01T10:00:00Z", "title": "Record di container a Genova",
     "text": "Il porto di Genova ha registrato un record di container nel mese di novembre. "
     "L'autorità portuale attribuisce la crescita ai nuovi collegamenti con l'Asia. I "
     "sindacati chiedono più personale sulle banchine."},
    # 00:30 in Rome on 1 December: 30 November in UTC.
    {"id": "yest-0030", "lang": "it", "source": "ANSA", "url": "https://ansa.example/v",
     "published": "2026-11-30T23:30:00Z", "title": "Pallavolo, l'Italia vince a Tokyo",
     "text": "La nazionale di pallavolo femminile ha vinto il torneo di Tokyo battendo il "
     "Brasile in cinque set. La capitana ha dedicato la vittoria ai tifosi rimasti svegli in "
     "Italia. La squadra rientrerà a Roma giovedì."},
    # -- 2008: the words "oggi", "ieri", "today", "yesterday" again and again ------------------
    {"id": "old-oggi", "lang": "it", "source": "Borsa News", "url": "https://borsa.example/o",
     "published": "2008-10-10T09:00:00Z", "title": "Oggi la borsa crolla, come ieri",
     "text": "Oggi la borsa di Milano ha perso il cinque per cento. Oggi i titoli delle banche "
     "sono crollati ancora. Gli analisti dicono che oggi è il giorno peggiore dell'anno e che "
     "ieri il mercato aveva già perso molto. Oggi, come ieri, gli investitori vendono tutto. "
     "Ieri sera il governo ha promesso aiuti, ma oggi nessuno ci crede."},
    {"id": "old-today", "lang": "en", "source": "Markets Daily", "url": "https://md.example/t",
     "published": "2008-10-10T20:00:00Z", "title": "Today stocks fall again, as yesterday",
     "text": "Today stocks fell sharply on Wall Street. Today bank shares lost a fifth of their "
     "value. Traders said today was the worst day since 1987, and yesterday had already been "
     "bad. Yesterday the government promised help; today nobody believed it. What is new "
     "today is the fear."},
]
TODAY = {"today-bilancio", "today-bilancio-copy", "today-0030", "today-ecb", "today-neve"}
YESTERDAY = {"yest-porto", "yest-0030"}
OLD = {"old-oggi", "old-today"}


@pytest.fixture(scope="module")
def embedder():
    return make_embedder(Settings(_env_file=None))


def _settings(tmp: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp / "data", timezone="Europe/Rome")


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, embedder) -> Path:
    tmp = tmp_path_factory.mktemp("dates")
    corpus = tmp / "news.jsonl"
    corpus.write_text("".join(json.dumps(a) + "\n" for a in ARTICLES), encoding="utf-8")

    async def build() -> None:
        services = await open_services(_settings(tmp), embedder)
        try:
            report = await services.index([corpus])
            assert report.added == len(ARTICLES) and report.near_duplicates == 1
        finally:
            await services.close()

    asyncio.run(build())
    return tmp


@pytest.fixture
async def services(store_dir, embedder):
    s = await open_services(_settings(store_dir), embedder)
    yield s
    await s.close()


@pytest.fixture
async def retriever(services):
    # No tz=: the retriever takes NEWSBOT_TIMEZONE from the settings.
    return await services.retriever()


def _ids(answer) -> list[str]:
    return [h.article_id for h in answer.hits]


def _texts(answer, lang: str) -> str:
    return "\n".join(render_telegram_html(answer, lang=lang, tz=ROME)) + render_plain(
        answer, lang=lang, tz=ROME
    )


# -- the question is only a period: its top stories ------------------------------------------


async def test_what_happened_today_lists_todays_stories(retriever):
    assert retriever.tz == ROME
    answer = await retriever.answer("Cosa è successo oggi?", k=10, now=NOW)
    ids = _ids(answer)
    assert answer.top_stories and not answer.period_empty and answer.relaxed is None
    # the copy is folded into its story; the 00:30 article is today in Rome
    assert set(ids) <= TODAY and "today-0030" in ids and len(ids) == 4
    assert len(set(ids) & {"today-bilancio", "today-bilancio-copy"}) == 1
    # ranked by coverage: the story two outlets carried comes first, crediting the other one
    top = answer.hits[0]
    assert top.article_id in {"today-bilancio", "today-bilancio-copy"}
    assert {o.source for o in top.also_reported_by} & {"ANSA", "Corriere Locale"}
    assert top.source not in {o.source for o in top.also_reported_by}
    # each quote is the story's central sentence of its lead article, highlighted whole
    for h in answer.hits:
        text = (await retriever.store.article(h.article_id)).text
        assert text[h.quote_start : h.quote_start + len(h.quote)] == h.quote
        assert h.highlight == h.quote and h.chunk_id.startswith(h.article_id)
    shown = _texts(answer, "it")
    assert "Niente pubblicato" not in shown and "qualsiasi data" not in shown
    assert "Filtri: il 2 dicembre 2026" in shown
    assert "Incendio nella notte a Torino" in shown
    assert "La Stampa · 2 dicembre 2026" in shown  # its local date, not UTC's 1 December
    assert "Oggi la borsa" not in shown


async def test_what_happened_yesterday_in_the_bots_zone(retriever):
    answer = await retriever.answer("Che è successo ieri?", k=10, now=NOW)
    assert answer.top_stories
    assert set(_ids(answer)) == YESTERDAY  # 00:30 on 1 December in Rome included, and
    shown = _texts(answer, "it")  # 00:30 on 2 December (1 December in UTC) not
    assert "Niente pubblicato" not in shown and "Oggi la borsa" not in shown
    # In UTC, the same words mean other days: the zone is what decides.
    utc = build_retriever(retriever.settings, retriever.store, retriever.embedder,
                          retriever.vectors, tz=ZoneInfo("UTC"))
    assert "today-0030" in _ids(await utc.answer("Che è successo ieri?", k=10, now=NOW))
    assert "yest-0030" not in _ids(await utc.answer("Che è successo ieri?", k=10, now=NOW))


@pytest.mark.parametrize(
    "question", ["What's new today?", "any news today", "today", "oggi", "Novità di oggi?",
                 "cos'è successo oggi", "Notizie di oggi"],
)
async def test_period_only_questions_in_both_languages(retriever, question):
    answer = await retriever.answer(question, k=10, now=NOW)
    assert answer.top_stories and set(_ids(answer)) <= TODAY and len(answer.hits) == 4
    shown = _texts(answer, "en")
    assert "Nothing published" not in shown and "any date" not in shown
    assert "Today stocks" not in shown


async def test_top_stories_page_with_offset(retriever):
    every = _ids(await retriever.answer("What's new today?", k=4, now=NOW))
    first = _ids(await retriever.answer("What's new today?", k=2, now=NOW))
    more = _ids(await retriever.answer("What's new today?", k=2, offset=2, now=NOW))
    assert first + more == every
    assert await retriever.answer("What's new today?", k=2, offset=4, now=NOW) is not None


async def test_top_stories_keep_outlet_and_language_filters(retriever):
    answer = await retriever.answer("oggi source:reuters", now=NOW)
    assert _ids(answer) == ["today-ecb"]
    answer = await retriever.answer("notizie di oggi lang:it", k=10, now=NOW)
    assert set(_ids(answer)) <= TODAY - {"today-ecb"} and len(answer.hits) == 3


async def test_a_period_without_articles_says_so_truthfully(retriever):
    answer = await retriever.answer("Cosa è successo la settimana scorsa?", now=NOW)
    assert answer.hits == [] and answer.period_empty and answer.suggestion == "period"
    (html,) = render_telegram_html(answer, lang="it", tz=ROME)
    assert "Niente pubblicato dal 23 novembre 2026 al 29 novembre 2026." in html
    assert "Riprova senza i filtri" not in html
    en = render_plain(answer, lang="en", tz=ROME)
    assert en.startswith("Nothing published from 23 November 2026 to 29 November 2026.")
    assert "Try another period" in en


# -- the date is a filter, never a keyword -------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    ["Cosa ha fatto la borsa oggi?", "borsa titoli banche oggi", "borsa crollo ieri",
     "Why did stocks fall today?", "bank shares yesterday"],
)
async def test_relative_date_words_are_never_keywords(retriever, question):
    answer = await retriever.answer(question, k=10, now=NOW)
    assert not set(_ids(answer)) & OLD, "matched the date word, not the date"
    assert answer.relaxed is None and not answer.top_stories
    assert not answer.filters.is_empty()
    shown = _texts(answer, "it") + _texts(answer, "en")
    assert "qualsiasi data" not in shown and "any date" not in shown
    assert "Niente pubblicato" not in shown and "Nothing published" not in shown


async def test_relative_date_with_a_topic_searches_that_day(retriever):
    answer = await retriever.answer("Cosa ha approvato oggi il consiglio comunale di Milano?",
                                    now=NOW)
    assert answer.hits and answer.hits[0].article_id in {"today-bilancio", "today-bilancio-copy"}
    assert set(_ids(answer)) <= TODAY and not answer.top_stories
    answer = await retriever.answer("record di container al porto di Genova oggi", now=NOW)
    assert "yest-porto" not in _ids(answer) and answer.relaxed is None


async def test_relative_date_over_an_empty_period_says_nothing_was_published(retriever):
    answer = await retriever.answer("borsa Milano banche l'anno scorso", now=NOW)
    assert answer.hits == [] and answer.period_empty and answer.relaxed is None
    assert answer.suggestion == "filters"
    assert "Niente pubblicato dall'1 gennaio 2025 al 31 dicembre 2025." in _texts(answer, "it")


async def test_relaxed_prose_date_does_not_claim_an_empty_period(retriever):
    # December 2026 holds articles, none about the 2008 crash: the event date is set aside,
    # and the reply says nothing relevant was there, not that nothing was published.
    answer = await retriever.answer("perdite della borsa di Milano a dicembre 2026", now=NOW)
    assert answer.relaxed is not None and not answer.period_empty
    assert answer.hits and answer.hits[0].article_id == "old-oggi"
    shown = _texts(answer, "it")
    assert "Niente di pertinente dall'1 dicembre 2026 al 31 dicembre 2026" in shown
    assert "Niente pubblicato" not in shown
    assert "Nothing relevant from 1 December 2026" in _texts(answer, "en")


async def test_relaxed_prose_date_over_an_empty_period_may_say_so(retriever):
    answer = await retriever.answer("il crollo dei titoli delle banche nel marzo 2020", now=NOW)
    assert answer.relaxed is not None and answer.period_empty
    assert answer.hits and answer.hits[0].article_id == "old-oggi"
    assert "Nothing published from 1 March 2020 to 31 March 2020; showing matches from any date" \
        in _texts(answer, "en")


async def test_digest_topic_ignores_relative_date_words(retriever):
    since = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    until = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)

    async def stories(topic: str) -> list[str]:
        d = await build_digest(retriever.store, retriever.vectors, since=since, until=until,
                               max_stories=10, topic=topic, retriever=retriever)
        return [s.lead.id for s in d.stories]

    assert await stories("bilancio Milano oggi") == await stories("bilancio Milano")
    assert len(await stories("oggi")) == 4  # nothing but a date: no topic filter


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "filler"),
    [
        ("Cosa è successo oggi?", True), ("che e successo ieri", True), ("COSA È SUCCESSO", True),
        ("Cos'è successo questa settimana?", True), ("novità?", True), ("Ultime notizie", True),
        ("What's new today?", True), ("what happened yesterday", True), ("Any news?", True),
        ("news this week", True), ("oggi", True), ("", True),
        ("Cosa è successo oggi a Roma?", False), ("What happened in Valencia?", False),
        ("notizie su Gaza di oggi", False), ("news from Gaza today", False),
    ],
)
def test_filler_questions(question, filler):
    parsed = parse_question_full(question, now=NOW, tz=ROME)
    assert is_filler(parsed.query) is filler


def test_parse_tells_relative_prose_and_operator_dates():
    def kinds(text: str) -> tuple[bool, bool, bool]:
        p = parse_question_full(text, now=NOW, tz=ROME)
        return p.relative_dates, p.prose_dates, p.operator_dates

    assert kinds("Cosa è successo oggi?") == (True, False, False)
    assert kinds("alluvioni la settimana scorsa") == (True, False, False)
    assert kinds("news from yesterday") == (True, False, False)
    assert kinds("tra marzo 2024 e oggi") == (True, False, False)
    assert kinds("floods in March 2020") == (False, True, False)
    assert kinds("alluvioni dal 2023") == (False, True, False)
    assert kinds("floods after:2024-01-01") == (False, False, True)
    assert kinds("floods source:reuters") == (False, False, False)
    assert strip_relative_dates("Gaza oggi, in March 2024", now=NOW, tz=ROME) == (
        "Gaza, in March 2024"
    )


def test_timezone_is_an_index_setting(monkeypatch):
    monkeypatch.setenv("NEWSBOT_TIMEZONE", "America/New_York")
    assert Settings(_env_file=None).timezone == "America/New_York"
    from bot.settings import BotSettings

    assert BotSettings(_env_file=None).timezone == "America/New_York"
    monkeypatch.delenv("NEWSBOT_TIMEZONE")
    assert Settings(_env_file=None).timezone == "Europe/Rome"
