"""How numbers, plurals and dates read in Italian and English (an editor's first hour)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot import texts
from bot.admin_handlers import local_time
from bot.commands import labels_lang
from index.digest.render import render_digest_plain
from index.digest.stories import Digest, Outlet, Story
from index.models import Filters
from index.render.answers import describe_filters
from index.render.i18n import date_prepositions, format_decimal, format_number, plural
from index.storage.store import ArticleRecord

ROME = ZoneInfo("Europe/Rome")


def test_numbers_are_written_as_each_language_writes_them():
    assert format_number(2167, "it") == "2.167" and format_number(2167, "en") == "2,167"
    assert format_number(999, "it") == "999"
    assert format_decimal(1.34, 1, "it") == "1,3"
    assert format_decimal(1.3, 1, "en") == "1.3"
    # Through the bot's templates: a float keeps its format spec, a count is grouped,
    # an id never is.
    assert "1,3 s" in texts.t("reindex_done", "it", target="x", seconds=1.3, added=2167,
                              updated=0, unchanged=0, removed=0, failed=0, chunks=0)
    assert "1.3 s" in texts.t("reindex_done", "en", target="x", seconds=1.3, added=1,
                              updated=0, unchanged=0, removed=0, failed=0, chunks=0)
    stats = texts.t("stats", "it", articles=2167, chunks=12000, last_run="—", today=1, up=0,
                    down=0, ratio="—", p50="—", p95="—")
    assert "2.167" in stats and "12.000" in stats


def test_plurals_and_elided_articles():
    assert plural(1, "articolo", "articoli") == "articolo"
    assert plural(2, "articolo", "articoli") == "articoli"
    assert date_prepositions("1 dicembre 2026")["p_on"] == "l'"
    assert date_prepositions("8 dicembre 2026")["p_from"] == "dall'"
    assert date_prepositions("2 dicembre 2026")["p_on"] == "il "
    day = datetime(2026, 12, 1, tzinfo=ROME).astimezone(UTC)
    one_day = Filters(date_from=day, date_to=day + timedelta(days=1))
    assert describe_filters(one_day, "it", ROME) == "l'1 dicembre 2026"
    assert describe_filters(one_day, "en", ROME) == "on 1 December 2026"


def test_a_digest_of_one_article_says_article_in_the_singular():
    since = datetime(2026, 12, 1, 7, tzinfo=UTC)
    lead = ArticleRecord("a1", "Il Lecco batte la Pro Patria", "Il Lecco ha vinto 2-1.",
                         "https://example.org/a1", since, "La Provincia", "it", None, None,
                         since)
    story = Story("s1", lead, "Il Lecco ha vinto 2-1.", 0, 22, ["a1"],
                  [Outlet("La Provincia", lead.url, "a1")], since, 1.0)
    digest = Digest(since, since + timedelta(days=1), [story], 1, 1, None, "daily")
    for lang, word, wrong in (("it", "1 notizia da 1 articolo", "1 articoli"),
                              ("en", "1 story from 1 article", "1 articles")):
        text = render_digest_plain(digest, lang=lang, tz=ROME)
        assert word in text, text
        assert wrong not in text
    many = Digest(since, since + timedelta(days=1), [story], 1, 2167, None, "daily")
    assert "da 2.167 articoli" in render_digest_plain(many, lang="it", tz=ROME)


def test_reindex_of_all_and_stats_times_read_naturally():
    assert "tutte le fonti" in texts.t("reindex_starting", "it",
                                       target=texts.target_label("all", "it"))
    assert texts.run_status("done", "it") == "completata"
    assert local_time("2026-12-03T07:15:00+00:00", ROME) == "2026-12-03 08:15"


def test_terminal_labels_take_the_question_language_and_the_locale_when_unsure():
    assert labels_lang("Chi ha vinto la partita del Lecco?", locale="en_GB.UTF-8") == "it"
    assert labels_lang("Who won the match in Lecco?", locale="it_IT.UTF-8") == "en"
    # One Italian word: Italian, not the English a language detector among all would say.
    assert labels_lang("alluvione", locale="") == "it"
    assert labels_lang("ceasefire", locale="") == "en"
    # A name says nothing: the locale does.
    assert labels_lang("Meloni", locale="it_IT.UTF-8") == "it"
    assert labels_lang("Meloni", locale="en_US.UTF-8") == "en"


def test_counts_of_one_and_dates_on_the_first_in_admin_texts():
    from bot.delivery_failures import DeliveryFailure, failures_html, notice_html
    from tests.support.fakebotapi import parse_html

    first = datetime(2026, 12, 1, 7, tzinfo=UTC)
    once = DeliveryFailure(kind="digest", chat_id=-1001, ref="", chat_title="Redazione",
                           what={"en": "digest", "it": "rassegna"}, since=first, last_at=first,
                           attempts=1, reason="Forbidden", reported_at=None)
    it = parse_html(failures_html([once], "it", ROME)).text
    assert "fallisce dall'1 dicembre 2026 08:00, 1 tentativo;" in it
    assert "failing since 1 December 2026 08:00, 1 attempt;" in parse_html(
        failures_html([once], "en", ROME)).text
    assert "Tentativi falliti: 1, dall'1 dicembre 2026 08:00" in parse_html(
        notice_html(once, ROME)).text
    assert texts.noun(1, "failed", "it") == "fallito" and texts.noun(2, "failed", "it") == "falliti"
    assert "conservate 1 giorno," in texts.forgetme_html({}, "it", 1)
    assert "kept 30 days," in texts.forgetme_html({}, "en", 30)
