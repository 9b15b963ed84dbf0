"""Passages after the first are shown only when they earn their place (index/search/padding.py)."""

from __future__ import annotations

from index.models import Hit
from index.search.padding import earned


def hit(article: str, quote: str, score: float) -> Hit:
    return Hit(
        article_id=article, title=article, source=None, url=None, published=None, lang="it",
        quote=quote, quote_start=0, highlight_start=0, highlight_end=len(quote), score=score,
    )


QUESTION = "prezzo del biglietto per Vasco Rossi a San Siro"


def test_a_far_lower_passage_about_something_else_is_dropped() -> None:
    top = hit("vasco", "Il prezzo del biglietto per Vasco Rossi a San Siro parte da 60 euro.", 0.9)
    near = hit("vasco2", "San Siro esaurito per il concerto.", 0.7)
    far = hit("resale", "Nel Regno Unito la rivendita dei biglietti è regolata.", 0.3)
    kept = earned([top, near, far], QUESTION)
    assert [h.article_id for h in kept] == ["vasco", "vasco2"]


def test_a_low_scored_passage_quoting_the_question_as_fully_as_the_first_stays() -> None:
    top = hit("a", "Biglietto per Vasco Rossi a San Siro: il prezzo sale.", 0.9)
    low = hit("b", "Vasco Rossi a San Siro, il prezzo del biglietto è di 70 euro.", 0.2)
    off = hit("c", "Matteo Rossi eletto a San Marino.", 0.2)
    assert [h.article_id for h in earned([top, low, off], QUESTION)] == ["a", "b"]


def test_the_first_passage_is_always_kept() -> None:
    only = hit("a", "Qualcosa.", 0.1)
    assert earned([only], QUESTION) == [only]
    assert earned([], QUESTION) == []
