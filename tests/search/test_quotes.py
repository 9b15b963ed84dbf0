"""Exact quotes from articles, and links that open the page at the passage."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from index.search import answer_types
from index.search.quotes import Quote, make_hit_quote, quote_sentences, text_fragment_url

ARTICLE = (
    "Roma, 5 marzo 2024.\n\n"
    "Il Consiglio dei ministri si è riunito ieri sera a Palazzo Chigi. "
    "Sul tavolo c'era la riforma della giustizia. "
    "Il ministro Nordio ha presentato il testo della separazione delle carriere. "
    "La seduta è durata tre ore.\n\n"
    "L'opposizione ha criticato la riforma. "
    "Secondo il Pd il governo vuole indebolire la magistratura.\n\n"
    "Domani il testo arriverà in Parlamento."
)


def para(n: int) -> tuple[int, int]:
    """Offsets of the n-th paragraph (0-based)."""
    start = 0
    for _ in range(n):
        start = ARTICLE.index("\n\n", start) + 2
    end = ARTICLE.find("\n\n", start)
    return start, len(ARTICLE) if end < 0 else end


def check(q: Quote, text: str = ARTICLE) -> tuple[str, str]:
    assert 0 <= q.start <= q.highlight_start < q.highlight_end <= q.end <= len(text)
    quote = text[q.start : q.end]
    assert quote == quote.strip() and quote  # exact substring, no dangling whitespace
    assert q.text(text) == quote
    return quote, text[q.highlight_start : q.highlight_end]


def test_best_sentence_is_highlighted_and_quote_is_exact():
    s, e = para(1)
    q = make_hit_quote(ARTICLE, s, e, "Chi ha presentato la separazione delle carriere?")
    quote, hl = check(q)
    assert hl == "Il ministro Nordio ha presentato il testo della separazione delle carriere."
    assert quote in ARTICLE
    # The whole paragraph fits: it is quoted whole, with no ellipsis.
    assert quote == ARTICLE[s:e]
    assert not q.ellipsis_before and not q.ellipsis_after


def test_accents_case_and_stems_are_folded():
    s, e = para(1)
    q = make_hit_quote(ARTICLE, s, e, "DURATA SEDUTE")
    assert check(q)[1] == "La seduta è durata tre ore."


def test_rare_terms_beat_frequent_ones():
    text = (
        "La riforma divide. La riforma è in aula. La riforma è stata votata dal Senato. "
        "La riforma piace. La riforma va avanti."
    )
    q = make_hit_quote(text, 0, len(text), "riforma senato", max_chars=40)
    assert check(q, text)[1] == "La riforma è stata votata dal Senato."


def test_ties_go_to_the_earlier_sentence():
    text = "Alpha beta one. Alpha beta two. Alpha beta three."
    q = make_hit_quote(text, 0, len(text), "beta", max_chars=16)
    assert check(q, text)[1] == "Alpha beta one."


def test_no_match_falls_back_to_the_chunks_first_sentence():
    s, e = para(2)
    q = make_hit_quote(ARTICLE, s, e, "xyzzy")
    assert check(q)[1] == "L'opposizione ha criticato la riforma."


def test_custom_stemmer_is_used():
    text = "Cats sleep. Dogs bark loudly."
    q = make_hit_quote(text, 0, len(text), "DOG", stem=lambda w: w.rstrip("s"), max_chars=20)
    assert check(q, text)[1] == "Dogs bark loudly."


def test_window_stays_within_max_chars_and_whole_sentences():
    s, e = para(1)
    for max_chars in (80, 120, 200):
        q = make_hit_quote(ARTICLE, s, e, "riforma della giustizia", max_chars=max_chars)
        quote, hl = check(q)
        assert len(quote) <= max_chars
        assert hl == "Sul tavolo c'era la riforma della giustizia."
        sents = {ARTICLE[a:b] for a, b in quote_sentences(ARTICLE)}
        assert quote.startswith(tuple(sents)) and quote.endswith(tuple(sents))
    q = make_hit_quote(ARTICLE, s, e, "riforma della giustizia", max_chars=120)
    assert q.ellipsis_before and q.ellipsis_after  # mid-paragraph on both sides


def test_ellipsis_flags_at_paragraph_and_article_edges():
    s, e = para(1)
    # first sentence of the paragraph, context cut after it
    q = make_hit_quote(ARTICLE, s, e, "Palazzo Chigi", max_chars=70)
    quote, _ = check(q)
    assert quote == "Il Consiglio dei ministri si è riunito ieri sera a Palazzo Chigi."
    assert not q.ellipsis_before and q.ellipsis_after
    # last sentence of the article
    s3, e3 = para(3)
    q = make_hit_quote(ARTICLE, s3, e3, "Parlamento")
    assert check(q)[0] == "Domani il testo arriverà in Parlamento."
    assert not q.ellipsis_before and not q.ellipsis_after
    # last sentence of a paragraph
    q = make_hit_quote(ARTICLE, s, e, "tre ore", max_chars=30)
    assert check(q)[0] == "La seduta è durata tre ore."
    assert q.ellipsis_before and not q.ellipsis_after


def test_context_does_not_cross_paragraphs_outside_the_chunk():
    s, e = para(2)
    q = make_hit_quote(ARTICLE, s, e, "magistratura", max_chars=2000)
    assert check(q)[0] == ARTICLE[s:e]


def test_long_sentence_is_cut_at_word_boundaries_around_the_rare_term():
    words = [f"parola{i}" for i in range(400)]
    words[250] = "Chernobyl"
    text = "Inizio. " + " ".join(words) + ". Fine."
    sent_start = text.index("parola0")
    q = make_hit_quote(text, sent_start, len(text) - 6, "Chernobyl", max_chars=300)
    quote, hl = check(q, text)
    assert len(quote) <= 300
    assert "Chernobyl" in quote
    assert hl == quote  # the window is the highlight
    assert text[q.start - 1] == " " and text[q.end] == " "  # whole words
    assert q.ellipsis_before and q.ellipsis_after


def test_one_giant_word_is_cut_anyway():
    text = "x" * 5000
    q = make_hit_quote(text, 0, 5000, "y", max_chars=700)
    assert q.end - q.start == 700
    assert q.ellipsis_after


def test_degenerate_inputs():
    assert make_hit_quote("", 0, 0, "q") == Quote(0, 0, 0, 0, False, False)
    q = make_hit_quote(ARTICLE, -10, 10_000, "")
    check(q)
    q = make_hit_quote(ARTICLE, len(ARTICLE), len(ARTICLE), "Parlamento")
    check(q)


def test_quote_sentences_keep_abbreviations_and_initials():
    text = "Il sig. Rossi e J. Smith sono arrivati. Il dott. Bianchi no! Poi «Basta.» Fine"
    got = [text[a:b] for a, b in quote_sentences(text)]
    assert got == [
        "Il sig. Rossi e J. Smith sono arrivati.",
        "Il dott. Bianchi no!",
        "Poi «Basta.»",
        "Fine",
    ]
    assert [text[a:b] for a, b in quote_sentences(text)][1] == "Il dott. Bianchi no!"


def test_lines_always_end_sentences():
    text = "Titolo senza punto\nPrima frase. Seconda frase.\n\nTerza"
    assert [text[a:b] for a, b in quote_sentences(text)] == [
        "Titolo senza punto",
        "Prima frase.",
        "Seconda frase.",
        "Terza",
    ]


# -- text fragments -------------------------------------------------------------------------


def test_text_fragment_short_passage_is_matched_whole():
    url = text_fragment_url("https://ex.com/a?b=1", "«Il ministro-ombra, Nordio & co.»")
    assert url == "https://ex.com/a?b=1#:~:text=Il%20ministro%2Dombra%2C%20Nordio%20%26%20co"


def test_text_fragment_long_passage_uses_start_and_end_words():
    text = "Uno due tre quattro cinque sei sette otto nove dieci undici dodici tredici."
    url = text_fragment_url("https://ex.com/p#old-anchor", text)
    assert url == (
        "https://ex.com/p#:~:text=Uno%20due%20tre%20quattro%20cinque,"
        "nove%20dieci%20undici%20dodici%20tredici"
    )
    assert "old-anchor" not in url


def test_text_fragment_encodes_non_ascii_and_reserved():
    url = text_fragment_url("https://ex.com/", "Città: più è già, l'1-2 & «così»")
    directive = url.split("#:~:text=", 1)[1]
    assert all(c.isascii() for c in directive)
    for ch in "-&, ":
        assert ch not in directive
    assert unquote(directive) == "Città: più è già, l'1-2 & «così"


@pytest.mark.parametrize("text", ["", "   ", "«»", "…"])
def test_text_fragment_without_words_is_the_plain_url(text):
    assert text_fragment_url("https://ex.com/x#y", text) == "https://ex.com/x"


# -- the kind of answer a question asks for ---------------------------------------------------


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Chi ha vinto la partita del Lecco?", "who"),
        ("Who is the new chief executive of General Motors?", "who"),
        ("Quale attrice interpreta il Maestro?", "who"),
        ("Quanti account ha chiuso Twitter?", "amount"),
        ("How many people were evacuated?", "amount"),
        ("Quando è iniziata la crisi petrolifera?", "when"),
        ("Qual è stato il primo anno in cui si giocò?", "when"),
        ("In what year did the strike end?", "when"),
        ("Dove si trova la sede?", "where"),
        ("In which city was the summit held?", "where"),
        ("Cosa ha detto il ministro?", None),
        ("Explain the budget vote", None),
    ],
)
def test_question_kind_in_italian_and_english(question: str, kind: str | None) -> None:
    assert answer_types.question_kind(question) == kind


def test_a_sentence_answers_only_with_something_the_question_lacks() -> None:
    asked = answer_types.fold_words("Quanti gol ha segnato il Lecco nel 2024?")
    assert answer_types.sentence_answers("amount", "Il Lecco ha vinto 2-1.", asked)
    assert not answer_types.sentence_answers("amount", "Nel 2024 il Lecco ha vinto.", asked)
    who = answer_types.fold_words("Chi ha battuto il Lecco?")
    assert answer_types.sentence_answers("who", "Ieri ha battuto la Pro Patria.", who)
    assert not answer_types.sentence_answers("who", "Il Lecco ha perso in casa.", who)
    assert answer_types.sentence_answers("when", "Si è giocato il 3 dicembre.", who)
    assert answer_types.sentence_answers("where", "La partita si è giocata a Varese.", who)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Chi ha vinto la partita del Lecco?", "Pro Patria"),
        ("Quanti gol ha fatto il Lecco nella partita?", "2-1"),
        ("Quando si è giocata la partita del Lecco?", "domenica"),
    ],
)
def test_the_highlight_holds_what_the_question_asks_for(question: str, expected: str) -> None:
    text = (
        "L'allenatore del Lecco ha commentato la partita con entusiasmo. "
        "Nella partita il Lecco ha superato la Pro Patria per 2-1 domenica."
    )
    q = make_hit_quote(text, 0, len(text), question)
    assert expected in text[q.highlight_start : q.highlight_end]
    assert "allenatore" not in text[q.highlight_start : q.highlight_end]
