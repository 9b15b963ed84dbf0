"""What a follow learns from the stories it alerted: the articles that passed its gate are
kept in the bot state (``alert_follow_stories``, migration ``m003_alert_memory``), bounded
in number and age, across restarts, and forgotten with the follow; later reports of those
stories pass through them without the follow's words (``Bars.story``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.alerts.delivery import new_article_ids
from bot.alerts.matching import Bars, FollowIndex, follow_terms, load_batch, story_scores
from bot.alerts.store import MEMORY_SIZE, MEMORY_TTL, AlertStore, Follow
from index.digest.grouping import grouping_params_for
from index.runtime import open_services
from index.settings import Settings
from tests.support.bot import write_articles

NOW = datetime(2025, 11, 27, 12, 0, tzinfo=UTC)


def _follow(chat_id: int, words: str) -> Follow:
    return Follow(id=0, chat_id=chat_id, chat_type="private", title=words, query=words,
                  words=words, sources=[], langs=[], lang="en", model_id="m",
                  vector=np.zeros(3, dtype=np.float32), terms=[[words.lower()]], weights=[1.0],
                  created_at=NOW)


def _render(lines: list[str], lang: str) -> str:
    return "\n".join(lines)


async def test_a_follow_remembers_its_newest_alerted_articles_across_restarts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.sqlite3"
    db = await AlertStore.open(path)
    try:
        a = await db.add_follow(_follow(1, "Cyclone"))
        b = await db.add_follow(_follow(2, "Typhoon"))
        for day in range(MEMORY_SIZE + 3):  # one article a day, the oldest fall out
            await db.commit_batch([], [], [f"c{day}"], None, NOW + timedelta(hours=day),
                                  _render, [(a, f"c{day}")])
        await db.commit_batch([], [], ["t0"], None, NOW + timedelta(hours=30), _render,
                              [(b, "t0"), (999, "ghost")])  # 999: no such follow
    finally:
        await db.close()
    db = await AlertStore.open(path)  # a restart
    try:
        memory = await db.memory(NOW)
        assert memory[a] == [f"c{d}" for d in range(MEMORY_SIZE + 2, 2, -1)]
        assert memory[b] == ["t0"] and 999 not in memory
        # Older than MEMORY_TTL, a story is forgotten.
        later = NOW + timedelta(hours=30) + MEMORY_TTL - timedelta(hours=1)
        await db.commit_batch([], [], [], None, later, _render)
        assert list(await db.memory(NOW)) == [b]
        # Unfollowing forgets what the follow learned.
        await db.remove_follows([b])
        assert await db.memory(NOW) == {}
    finally:
        await db.close()


def article(slug: str, text: str, day: str) -> dict[str, str]:
    return {"id": slug, "title": "", "text": text, "url": f"https://wire.example/{slug}",
            "published": day, "source": "Wire", "lang": "en"}


FIRST = article(
    "ditwah", "Cyclone Ditwah makes landfall in Sri Lanka, killing at least 40 people in "
    "Kandy and Badulla as floods and landslides cut off villages in the central highlands.",
    "2025-11-28")
LATER = article(
    "toll", "The death toll from the cyclone's floods and landslides in Sri Lanka rises to 334, "
    "with hundreds missing in Kandy and Badulla, as the army reaches cut-off villages.",
    "2025-11-30")
OTHER = article(
    "quake", "A magnitude 6.1 earthquake strikes off the coast of Japan's Hokkaido, "
    "with no reports of damage or casualties, the meteorological agency says.",
    "2025-11-30")
FILLER = [
    article("bank", "The central bank held interest rates steady and said inflation was "
            "easing in the euro area.", "2025-11-30"),
    article("derby", "City won the derby two goals to one with a late header from their "
            "captain at the stadium.", "2025-11-30"),
]


@pytest.mark.slow
async def test_a_later_report_of_an_alerted_story_passes_without_the_follows_words(
    tmp_path: Path,
) -> None:
    follow_words = "Cyclone Ditwah"
    services = await open_services(Settings(_env_file=None, data_dir=tmp_path / "data"))
    try:
        await services.index([write_articles(tmp_path / "a.jsonl", [FIRST])])
        first_ids, _, first_run = await new_article_ids(services.store, 0, 0)
        await services.index([write_articles(tmp_path / "b.jsonl", [LATER, OTHER, *FILLER])])
        later_ids, _, _ = await new_article_ids(services.store, first_run, 0)
        retriever = await services.retriever()
        vectors = await services.vectors()
        vector = np.asarray(await retriever.encoder.encode(follow_words), dtype=np.float32)
        terms, weights = await follow_terms(services.store, follow_words)
        follow = Follow(id=7, chat_id=1, chat_type="private", title=follow_words,
                        query=follow_words, words=follow_words, sources=[], langs=[],
                        lang="en", model_id=services.embedder.model_id, vector=vector,
                        terms=terms, weights=weights)
        index = FollowIndex.build([follow])
        params = grouping_params_for(services.embedder.model_id)
        bars = Bars.for_model(services.embedder.model_id)
        assert bars.story is not None
        first = await load_batch(services.store, vectors, first_ids)
        batch = await load_batch(services.store, vectors, later_ids)
        story = await story_scores(services.store, vectors, index, batch,
                                   {7: [first.articles[0].id]}, params)
        forgot = await story_scores(services.store, vectors, index, batch, {}, params)
    finally:
        await services.close()
    # The first report names the cyclone and passes the gate by itself: it is remembered.
    got, gate = index.decide(first, bars)
    assert got == {0: [0]} and gate[0, 0]
    row = {a.url: r for r, a in enumerate(batch.articles)}
    toll, quake = row[LATER["url"]], row[OTHER["url"]]
    # The toll report never names it: the gate alone lets it by, the remembered story not.
    assert toll not in index.match(batch, bars).get(0, [])
    assert story[0, toll] >= bars.story[0] > story[0, quake], story
    got, gate = index.decide(batch, bars, story)
    assert got.get(0, []) == [toll] and not gate[0, toll]  # not learned from: no drift
    assert not forgot.any()
