"""A question's words translated into its candidates' language by the packaged multilingual
encoder (index/search/translation.py): the translations themselves, then end to end on a
small real store (default embedder, FTS5, Chroma), where an English question shares no word
with the Italian passage that answers it and an Italian question is left alone."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from pathlib import Path

import pytest

from index.embed import make_embedder
from index.ingest.cleaning import default_language_detector
from index.models import Filters
from index.runtime import build_retriever, open_services
from index.search.translation import (
    TranslateParams,
    WordTranslator,
    foreign_vocabulary,
    match_expression,
    translated_groups,
)
from index.settings import Settings

XL = TranslateParams(weight=1.0, bar=0.55, per_word=2)
CHURCH = ("La chiesa fu costruita nel 1290 per volere del vescovo. La facciata è decorata "
          "con mosaici dorati e il fiume scorre ai piedi della collina.")


@pytest.fixture(scope="module")
def embedder():
    return make_embedder(Settings(_env_file=None))


def test_english_words_find_their_italian_translations(embedder):
    vocab = foreign_vocabulary([(CHURCH, "Il duomo", "it")], "en")
    assert "chiesa" in vocab and "1290" not in vocab and "del" not in vocab
    tr = WordTranslator(embedder).translate(["church", "built", "river"], vocab, XL)
    assert tr["church"][0][0] == "chiesa"
    assert tr["river"][0][0] == "fiume"
    assert "costruita" in [t for t, _ in tr["built"]]
    assert all(s >= XL.bar for got in tr.values() for _, s in got)
    assert all(len(got) <= XL.per_word for got in tr.values())
    # A word with no translation among the passages' words is left out, not forced.
    assert "smartphone" not in WordTranslator(embedder).translate(["smartphone"], vocab, XL)


def test_passages_in_the_question_language_bring_no_vocabulary():
    assert foreign_vocabulary([(CHURCH, "Il duomo", "it")], "it") == []


def test_translations_join_the_words_keyword_variants():
    groups = translated_groups(["church", "built"], {"church": [("chiesa", 0.93)]})
    assert "chiesa" in groups[0] and "church" in groups[0]
    assert "chiesa" not in groups[1]
    match = match_expression(groups)
    assert '"chiesa"' in match and '"church"' in match and " OR " in match


def test_word_vectors_are_cached(embedder):
    class Counting:
        def __init__(self) -> None:
            self.calls: list[int] = []

        def embed_queries(self, texts):
            self.calls.append(len(texts))
            return embedder.embed_queries(texts)

    counting = Counting()
    tr = WordTranslator(counting)  # type: ignore[arg-type]
    tr.translate(["church"], ["chiesa", "fiume"], XL)
    tr.translate(["church", "river"], ["chiesa", "fiume"], XL)
    assert counting.calls == [1, 2, 1]  # only "river" was new the second time


def test_word_encodes_on_one_core_give_the_query_vectors(embedder):
    import numpy as np

    words = ["chiesa", "church", "fiume", "river", "costruita"]
    assert np.allclose(embedder.embed_words(words), embedder.embed_queries(words), atol=1e-5)


# -- end to end -----------------------------------------------------------------------------

ARTICLES = [
    {"id": "duomo", "lang": "it", "source": "Wiki", "title": "Il duomo", "text": CHURCH},
    {"id": "porto", "lang": "it", "source": "Wiki", "title": "Il porto",
     "text": "Il porto commerciale accoglie navi da tutto il Mediterraneo. Le gru scaricano "
     "container giorno e notte."},
    {"id": "calcio", "lang": "it", "source": "Wiki", "title": "La squadra",
     "text": "La squadra vinse il campionato all'ultima giornata. L'allenatore fu portato in "
     "trionfo dai tifosi."},
]
EN = "When was the church built by the bishop?"
IT = "Quando fu costruita la chiesa dal vescovo?"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, embedder) -> Path:
    tmp = tmp_path_factory.mktemp("translation")
    corpus = tmp / "pages.jsonl"
    corpus.write_text("".join(json.dumps(a) + "\n" for a in ARTICLES), encoding="utf-8")

    async def build() -> None:
        services = await open_services(Settings(_env_file=None, data_dir=tmp / "data"), embedder)
        try:
            report = await services.index([corpus])
            assert report.added == len(ARTICLES)
        finally:
            await services.close()

    asyncio.run(build())
    return tmp


@pytest.fixture
async def retriever(store_dir, embedder):
    services = await open_services(Settings(_env_file=None, data_dir=store_dir / "data"),
                                   embedder)
    yield build_retriever(services.settings, services.store, embedder,
                          await services.vectors())
    await services.close()


async def test_an_english_question_reaches_the_italian_keywords(retriever):
    assert retriever.params.translate.weight > 0  # on for the default model
    detect = default_language_detector()
    assert detect(EN) == "en" and detect(IT) == "it"  # what answer() passes as question_lang
    bare = await retriever.answer(EN, mode="bm25")
    assert "duomo" not in [h.article_id for h in bare.hits]  # no word in common
    search = await retriever.search(EN, Filters(), question_lang="en")
    first = search.ranked[0]
    assert search.records[first.chunk_id].article_id == "duomo"
    assert first.bm25 is not None  # found by the keyword side, through "chiesa"/"costruita"
    off = retriever.with_params(
        dataclasses.replace(retriever.params, translate=TranslateParams(weight=0.0)))
    without = await off.search(EN, Filters(), question_lang="en")
    assert all(r.bm25 is None for r in without.ranked
               if without.records.get(r.chunk_id) and
               without.records[r.chunk_id].article_id == "duomo")
    # The relevance gate reads the question's own words, translated or not.
    assert search.best_match == without.best_match
    answer = await retriever.answer(EN)
    assert answer.hits[0].article_id == "duomo"


async def test_an_italian_question_is_unaffected(retriever):
    search = await retriever.search(IT, Filters(), question_lang="it")
    assert await retriever.translate(IT, "it", [(r.chunk_id, 1.0) for r in search.ranked],
                                     [], search.records) == {}
    off = retriever.with_params(
        dataclasses.replace(retriever.params, translate=TranslateParams(weight=0.0)))
    without = await off.search(IT, Filters(), question_lang="it")
    assert [(r.chunk_id, r.score) for r in search.ranked] == [
        (r.chunk_id, r.score) for r in without.ranked]
    assert search.records[search.ranked[0].chunk_id].article_id == "duomo"


async def test_cached_words_translate_on_the_loop_with_the_heads_read(retriever, monkeypatch):
    """Once every word's vector is cached the translation runs without a worker thread, and
    its passages come with the lists' heads in one SQLite read: the same search either way."""
    cold = await retriever.search(EN, Filters(), question_lang="en")  # encodes the words
    phase = ["search"]
    reads: list[str] = []
    threads: list[int] = []
    chunk_records, cached = retriever.store.chunk_records, retriever.translator.translate_cached
    inside = retriever.translate

    async def counted(ids):
        reads.append(phase[0])
        return await chunk_records(ids)

    async def translating(*a, **k):
        phase[0] = "translation"  # until the words are compared: the translation's own reads
        return await inside(*a, **k)

    def on(*a, **k):
        phase[0] = "after"
        threads.append(threading.get_ident())
        out = cached(*a, **k)
        assert out is not None, "a word was not cached"
        return out

    def encoding(*a, **k):
        raise AssertionError("translated with an encode")

    monkeypatch.setattr(retriever.store, "chunk_records", counted)
    monkeypatch.setattr(retriever, "translate", translating)
    monkeypatch.setattr(retriever.translator, "translate_cached", on)
    monkeypatch.setattr(retriever.translator, "translate", encoding)
    warm = await retriever.search(EN, Filters(), question_lang="en")
    assert [(r.chunk_id, r.score) for r in warm.ranked] == [
        (r.chunk_id, r.score) for r in cold.ranked]
    assert warm.best_match == cold.best_match
    assert threads == [threading.get_ident()]  # translated once, on the event loop's thread
    assert reads[0] == "search" and "translation" not in reads


def test_cached_translation_is_the_translation_and_never_encodes(embedder):
    t = WordTranslator(embedder, 1000)
    words, vocab = ["church", "built"], ["chiesa", "costruita", "fiume", "vescovo"]
    assert t.translate_cached(words, vocab, XL) is None  # nothing cached: no encode either
    assert t.translate_cached(words, vocab, XL) is None  # and still nothing cached
    full = t.translate(words, vocab, XL)
    assert full and t.translate_cached(words, vocab, XL) == full
    assert t.translate_cached(words, [*vocab, "collina"], XL) is None  # one word not cached
