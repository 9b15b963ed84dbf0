"""Passages after the first are shown only when they earn their place (index/search/padding.py)."""

from __future__ import annotations

from index.models import Hit
from index.search.padding import earned


def hit(article: str, quote: str, score: float, lang: str = "it") -> Hit:
    return Hit(
        article_id=article, title=article, source=None, url=None, published=None, lang=lang,
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


def test_one_shared_word_in_another_language_does_not_earn_a_place() -> None:
    """The first passage quotes one of the question's three words ("Lecco"; it says
    "superato", not "vinto"). Far lower English passages quoting one word too ("part", the
    stem of "partita") are not as relevant as the first: across languages one shared word
    is weak evidence."""
    question = "Chi ha vinto la partita del Lecco?"
    top = hit("lecco", "Il Lecco ha superato la Pro Patria per 2-1 al Rigamonti-Ceppi.", 1.39)
    ceasefire = hit("thai", "Thailand releases 18 prisoners as part of a ceasefire agreement.",
                    0.36, lang="en")
    tower = hit("rome", "A part of the Torre dei Conti tower collapses in Rome.", 0.35, lang="en")
    assert [h.article_id for h in earned([top, ceasefire, tower], question)] == ["lecco"]
    # Two of the three words in English, or one in the first passage's language, still count.
    match = hit("match", "Lecco's match was played at the Rigamonti-Ceppi.", 0.3, lang="en")
    same = hit("lecco2", "A Lecco la tifoseria ha festeggiato fino a notte.", 0.3)
    match_kept = earned([top, match, same, tower], "Chi ha vinto il match del Lecco?")
    assert [h.article_id for h in match_kept] == ["lecco", "match", "lecco2"]
