"""The fused head re-ranked by each passage's best sentence (index/search/sentence_match.py):
the rule on its own, then end to end on a small real store (default embedder, FTS5, Chroma)
where the keyword side prefers the passage that spreads the question's words around."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

from index.embed import make_embedder
from index.runtime import build_retriever, open_services
from index.search.fusion import Ranked
from index.search.sentence_match import SentenceParams, best_sentence, question_terms, rerank
from index.settings import Settings

SP = SentenceParams(weight=1.0, head=20, prefix=5, type_bonus=0.1)


def _terms(question: str, df: dict[str, int] | None = None, n: int = 100):
    return question_terms(question, question, df or {}, n, SP)


def test_one_sentence_holding_the_words_beats_the_same_words_spread_out():
    t = _terms("Quando i paesi arabi fermarono le esportazioni di petrolio?")
    together = "Il governo cadde. Nel 1973 i paesi arabi fermarono le esportazioni di petrolio."
    spread = ("I paesi europei discutevano. Gli arabi chiedevano prezzi alti. Le esportazioni "
              "calarono. Il petrolio mancava. Fermarono le fabbriche.")
    assert best_sentence(together, t, SP) > best_sentence(spread, t, SP)
    assert best_sentence(together, t, SP) > 1.0  # every word, and a year for "quando"


def test_rare_words_weigh_more_than_common_ones():
    df = {"filippin": 1, "filippine": 1, "scuol": 90, "scuole": 90, "school": 90}
    t = _terms("scuole nelle Filippine", df)
    assert best_sentence("Nelle Filippine si vota.", t, SP) > best_sentence(
        "Le scuole aprono.", t, SP)


def test_a_prefix_joins_derived_words_and_cognates():
    t = _terms("crisi petrolifera")
    assert best_sentence("Il prezzo del petrolio salì durante la crisi.", t, SP) == 1.0
    short = dataclasses.replace(SP, prefix=20)  # no word is that long: whole words only
    t2 = question_terms("crisi petrolifera", "crisi petrolifera", {}, 100, short)
    assert best_sentence("Il prezzo del petrolio salì durante la crisi.", t2, short) == 0.5
    en = _terms("Which president visited the university?")
    assert best_sentence("Il presidente visitò l'università.", en, SP) == 1.0


def test_the_headline_counts_as_a_sentence():
    t = _terms("Floods hit Valencia region")
    body = "Heavy rain fell on Sunday. The army helped."
    assert best_sentence(body, t, SP) == 0.0
    assert best_sentence(body, t, SP, "Floods hit Valencia region") == 1.0


def test_rerank_reorders_the_head_only_and_keeps_the_rest_in_order():
    t = _terms("Quando i paesi arabi fermarono le esportazioni di petrolio?")
    texts = {
        "spread": ("I paesi discutevano. Gli arabi pure. Il petrolio mancava.", ""),
        "answer": ("Nel 1973 i paesi arabi fermarono le esportazioni di petrolio.", ""),
    }
    ranked = [Ranked("spread", 2.0), Ranked("answer", 1.6), Ranked("x", 1.5), Ranked("y", 1.0)]
    out = rerank([dataclasses.replace(r) for r in ranked], texts, t, SP)
    assert [r.chunk_id for r in out] == ["answer", "spread", "x", "y"]
    assert [r.score for r in out] == sorted((r.score for r in out), reverse=True)
    # Off: unchanged; a recency factor scales the gain.
    off = rerank(ranked, texts, t, dataclasses.replace(SP, weight=0.0))
    assert [r.chunk_id for r in off] == ["spread", "answer", "x", "y"]
    old = rerank([dataclasses.replace(r) for r in ranked], texts, t, SP, boost={"answer": 0.1})
    assert [r.chunk_id for r in old][:2] == ["spread", "answer"]


# -- end to end -----------------------------------------------------------------------------

# Two "pages" of one subject, as Wikipedia-style sets split an article: the headline is the
# same, and the distractor repeats every question word, one per sentence.
TITLE = "Crisi energetica (1973)"
ARTICLES = [
    {
        "id": "oil-answer", "lang": "it", "source": "Wiki", "title": TITLE,
        "text": "La crisi ebbe effetti profondi sull'economia mondiale. Nell'ottobre 1973 i "
        "paesi arabi fermarono le esportazioni di petrolio verso gli Stati Uniti. Il prezzo del "
        "greggio quadruplicò nel giro di pochi mesi.",
    },
    {
        "id": "oil-spread", "lang": "it", "source": "Wiki", "title": TITLE,
        "text": "I paesi consumatori discussero a lungo. Altri paesi tacquero. Gli arabi "
        "chiedevano un prezzo più alto. Gli arabi minacciarono sanzioni. Le esportazioni di "
        "grano calarono. Le esportazioni di acciaio pure. Il petrolio restava al centro del "
        "dibattito. Il petrolio mancava. Molte fabbriche si fermarono.",
    },
    {
        "id": "other", "lang": "it", "source": "Wiki", "title": "Varsavia",
        "text": "Varsavia è la capitale della Polonia. La città è attraversata dalla Vistola.",
    },
]
QUESTION = "Quando i paesi arabi fermarono le esportazioni di petrolio?"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sentence")
    corpus = tmp / "pages.jsonl"
    corpus.write_text("".join(json.dumps(a) + "\n" for a in ARTICLES), encoding="utf-8")
    embedder = make_embedder(Settings(_env_file=None))

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
async def retriever(store_dir):
    embedder = make_embedder(Settings(_env_file=None))
    services = await open_services(Settings(_env_file=None, data_dir=store_dir / "data"),
                                   embedder)
    yield build_retriever(services.settings, services.store, embedder,
                          await services.vectors())
    await services.close()


async def test_the_passage_with_the_answering_sentence_ranks_first(retriever):
    assert retriever.params.sentence.weight > 0  # on for the default model
    keyword = await retriever.answer(QUESTION, mode="bm25")
    assert keyword.hits[0].article_id == "oil-spread"  # the case the rule is for
    off = retriever.with_params(
        dataclasses.replace(retriever.params, sentence=SentenceParams(weight=0.0)))
    without = await off.answer(QUESTION)
    assert without.hits[0].article_id == "oil-spread"
    answer = await retriever.answer(QUESTION)
    assert answer.hits[0].article_id == "oil-answer"
    assert "1973" in answer.hits[0].highlight
