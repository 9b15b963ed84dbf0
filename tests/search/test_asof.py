"""``asof:`` and ``--asof``: a question answered as of a moment (relative dates and recency
resolve against it; later articles are not excluded), shown back in the filters line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from index.embed import make_embedder
from index.models import Answer, Filters
from index.render.answer_json import answer_to_json
from index.render.answers import describe_filters
from index.render.plain import render_plain
from index.render.telegram_html import render_telegram_html
from index.runtime import build_retriever, open_services
from index.search.query_parse import parse_question_full
from index.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ROME = ZoneInfo("Europe/Rome")
NOW = datetime(2026, 3, 12, 10, 0, tzinfo=ROME)

ARTICLES = [
    {"id": "strike-old", "lang": "it", "source": "ANSA", "url": "https://ansa.example/1",
     "published": "2024-04-30T09:00:00+02:00", "title": "Sciopero dei treni in Lombardia",
     "text": "I sindacati hanno proclamato uno sciopero dei treni regionali in Lombardia. "
             "Il servizio è rimasto sospeso per otto ore e molti pendolari sono rimasti a casa."},
    {"id": "strike-new", "lang": "it", "source": "ANSA", "url": "https://ansa.example/2",
     "published": "2025-06-10T09:00:00+02:00", "title": "Nuovo sciopero dei treni",
     "text": "Un nuovo sciopero dei treni regionali ha fermato la Lombardia per un giorno "
             "intero. I pendolari hanno protestato davanti alla stazione centrale."},
]


def test_asof_operator_sets_the_moment_relative_dates_resolve_against():
    p = parse_question_full("sciopero dei treni ieri asof:2024-05-01", now=NOW, tz=ROME)
    assert p.query == "sciopero dei treni"
    assert p.filters.as_of is not None
    assert p.filters.as_of.astimezone(ROME).date().isoformat() == "2024-05-01"
    # "ieri" is the day before the asof date, not before the clock.
    assert p.filters.date_from is not None and p.filters.date_to is not None
    assert p.filters.date_from.astimezone(ROME).date().isoformat() == "2024-04-30"
    assert p.filters.date_to.astimezone(ROME).date().isoformat() == "2024-05-01"


def test_asof_alone_restricts_nothing_and_bad_values_stay_in_the_text():
    p = parse_question_full("AsOf:2024-05 treni", now=NOW, tz=ROME)
    assert p.query == "treni" and p.filters.is_empty() and p.filters.shown()
    assert p.filters.as_of is not None and p.filters.as_of.date().isoformat() == "2024-05-31"
    bad = parse_question_full("treni asof:domenica", now=NOW, tz=ROME)
    assert bad.query == "treni asof:domenica" and bad.filters.as_of is None


@pytest.mark.parametrize(("lang", "words"), [("en", "as of 1 May 2024"),
                                             ("it", "situazione all'1 maggio 2024")])
def test_asof_is_shown_in_the_filters_line(lang, words):
    as_of = datetime(2024, 5, 1, 23, 59, 59, tzinfo=ROME)
    f = Filters(sources=["ansa"], as_of=as_of)
    desc = describe_filters(f, lang, ROME)
    assert words in desc.replace("º", "") and "ansa" in desc
    answer = Answer("q", "q", Filters(as_of=as_of), [])
    assert words in render_plain(answer, lang=lang, tz=ROME).replace("º", "")
    assert answer_to_json(answer)["filters"]["as_of"] == as_of.isoformat()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("asof")
    corpus = tmp / "news.jsonl"
    corpus.write_text("".join(json.dumps(a) + "\n" for a in ARTICLES), encoding="utf-8")

    async def build() -> None:
        services = await open_services(Settings(_env_file=None, data_dir=tmp / "data"))
        try:
            await services.index([corpus])
        finally:
            await services.close()

    asyncio.run(build())
    return tmp


@pytest.fixture
async def retriever(store_dir):
    settings = Settings(_env_file=None, data_dir=store_dir / "data")
    services = await open_services(settings, make_embedder(settings))
    r = build_retriever(settings, services.store, services.embedder, await services.vectors(),
                        tz=ROME)
    yield r
    await services.close()


async def test_asof_question_resolves_ieri_against_it(retriever):
    answer = await retriever.answer("sciopero dei treni ieri asof:2024-05-01", now=NOW)
    assert [h.article_id for h in answer.hits][:1] == ["strike-old"]
    assert "strike-new" not in {h.article_id for h in answer.hits}  # "ieri" is a filter
    html = "".join(render_telegram_html(answer, lang="it", tz=ROME))
    assert "situazione all" in html


async def test_asof_does_not_exclude_later_articles(retriever):
    answer = await retriever.answer("sciopero dei treni in Lombardia asof:2024-05-01", now=NOW)
    assert {"strike-old", "strike-new"} <= {h.article_id for h in answer.hits}


async def test_asof_argument_is_the_json_api_moment(retriever):
    as_of = datetime(2024, 5, 1, 23, 59, 59, tzinfo=ROME)
    answer = await retriever.answer("sciopero dei treni ieri", now=NOW, as_of=as_of)
    assert answer.filters.as_of == as_of
    assert answer.hits and answer.hits[0].article_id == "strike-old"
    assert answer_to_json(answer)["filters"]["as_of"].startswith("2024-05-01T23:59:59")


def test_ask_cli_asof_json(store_dir):
    env = {**os.environ, "NEWSBOT_DATA_DIR": str(store_dir / "data"), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "bot.cli", "ask", "sciopero dei treni ieri", "--json",
         "--asof", "2024-05-01"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    assert payload["filters"]["as_of"].startswith("2024-05-01T23:59:59")
    assert payload["filters"]["date_from"] is not None
    assert [h["article_id"] for h in payload["hits"]][:1] == ["strike-old"]
    bad = subprocess.run(
        [sys.executable, "-m", "bot.cli", "ask", "treni", "--asof", "maggio"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 2 and "--asof takes a date" in bad.stderr


async def test_this_week_in_an_archive_older_than_the_week_means_its_latest_news(retriever):
    """NOW is nine months after the newest article: "questa settimana" cannot be met, and a
    prior centred on NOW would weigh both strikes alike; centred on the archive's newest
    article, the latest strike leads. As of a moment the archive has news after, the prior
    stays on that moment."""
    latest = await retriever.answer("sciopero dei treni in Lombardia questa settimana", now=NOW)
    assert [h.article_id for h in latest.hits][:1] == ["strike-new"]
    then = await retriever.answer(
        "sciopero dei treni in Lombardia questa settimana asof:2024-05-03", now=NOW
    )
    assert [h.article_id for h in then.hits][:1] == ["strike-old"]
