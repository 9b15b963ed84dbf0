"""Cleaning: normalisation, debris removal at the edges, titles and languages."""

from __future__ import annotations

import json
import random
import re
import unicodedata
from pathlib import Path

import pytest

from index.ingest.cleaning import (
    TRANSLATION,
    clean_article,
    derive_title,
    normalize_lang,
    normalize_text,
)
from index.ingest.loaders import iter_articles
from index.models import Article, LoadError
from index.sample import HERE as SAMPLE_DIR

DEV_ARTICLES = Path(__file__).parents[2] / "eval" / "squad-it-dev" / "articles.jsonl"
SEED = SAMPLE_DIR / "seed-it-000_a8b3790d3ac96f0c.txt"
SEED_TITLE = "ISIS dichiara Guerra su Twitter e Facebook con Jack Dorsey e Mark Zuckerberg"
ENGLISH_HEADLINE = "Twitter's Jack Dorsey: 'Hell no' to joining Facebook's Libra"

BODY = (
    "The city council voted on Tuesday to approve a new tram line linking the central "
    "station with the university district, ending a decade of debate.\n\n"
    "Opposition councillors criticised the cost and asked for an independent review."
)


def cleaned(text: str, title: str = "", lang: str | None = "en") -> Article:
    result = clean_article(Article(id="t", text=text, title=title, lang=lang, origin="t.txt"))
    assert isinstance(result, Article), result
    return result


def corpus_rows(name: str) -> list[dict]:
    with (SAMPLE_DIR / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# ---------------------------------------------------------------------------------------------
# The real seed article
# ---------------------------------------------------------------------------------------------


def test_seed_article_is_cleaned() -> None:
    (article,) = list(iter_articles([SEED]))
    assert isinstance(article, Article)
    result = clean_article(article)
    assert isinstance(result, Article)
    assert result.title == SEED_TITLE
    assert result.text.startswith("Per i CEO di Facebook")
    lines = result.text.split("\n")
    assert "Anonim" not in lines
    assert ENGLISH_HEADLINE not in result.text
    assert result.lang == "it"
    assert result.text.endswith("l'ultima serie di minacce sembra essere come al solito.")
    assert result.id == article.id and result.origin == article.origin


def test_seed_text_with_its_title_line_inside_is_cleaned_the_same() -> None:
    raw = SEED.read_text(encoding="utf-8")
    (from_file,) = list(iter_articles([SEED]))
    assert isinstance(from_file, Article)
    inline = Article(id="seed", title=SEED_TITLE, text=raw, origin="seed.jsonl:1")
    a, b = clean_article(inline), clean_article(from_file)
    assert isinstance(a, Article) and isinstance(b, Article)
    assert a.text == b.text


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


def test_normalize_text_whitespace_invisibles_and_unicode() -> None:
    raw = (
        "  Perche\u0301\u00a0il  sindaco\t\tha detto\u200b no.  \r\n\r\n\r\n\r\n"
        "Secondo\u00adparagrafo\x07 qui.\u2028Riga nuova.\n\n\n"
    )
    assert normalize_text(raw) == (
        "Perché il sindaco ha detto no.\n\nSecondoparagrafo qui.\nRiga nuova."
    )


def _normalize_line_by_line(text: str) -> str:
    """normalize_text as it was written first: the table over every character, then each
    line's spaces collapsed and trimmed; the faster one must give the same text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text).translate(TRANSLATION)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def test_normalize_text_equals_the_line_by_line_reference() -> None:
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    alphabet = [*"ab \u00e9\n\t\r.", *spaces, "\u200b", "\u00ad", "\x07", "e\u0301", "\ufeff"]
    rng = random.Random(17)
    texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 30))) for _ in range(20000)]
    texts += [json.loads(line)["text"] for line in DEV_ARTICLES.read_text("utf-8").splitlines()]
    differ = [t for t in texts if normalize_text(t) != _normalize_line_by_line(t)]
    assert differ == []
    assert sum(normalize_text(t) != t for t in texts) > 1000  # the texts do need normalising


def test_clean_article_normalises_title_and_keeps_other_fields() -> None:
    article = Article(id="x", title="  Tram\n approved\u200b ", text=BODY, url="https://u",
                      source="S", lang="EN-gb", origin="o", extra={"k": 1})
    result = clean_article(article)
    assert isinstance(result, Article)
    assert (result.title, result.lang, result.url, result.source, result.extra) == (
        "Tram approved", "en", "https://u", "S", {"k": 1})


# ---------------------------------------------------------------------------------------------
# Debris at the top and bottom
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("debris", [
    "By Jane Doe",
    "di Redazione",
    "Di Mario Rossi e Luca Bianchi",
    "Anonymous",
    "Mario Rossi",
    "Photo: Reuters/John Smith",
    "Foto: ANSA",
    "Tuesday, March 5, 2024",
    "5 marzo 2024, ore 10:30",
    "Updated: 2024-03-05 10:30",
    "Share this article",
    "Condividi su Facebook",
    "Facebook Twitter WhatsApp Email",
])
def test_head_debris_is_dropped(debris: str) -> None:
    result = cleaned(f"{debris}\n\n{BODY}", title="Tram approved")
    assert result.text == BODY


@pytest.mark.parametrize("debris", [
    "Read more",
    "Leggi anche: il sindaco risponde alle critiche",
    "© RIPRODUZIONE RISERVATA",
    "Share",
    "Photo: AP",
])
def test_tail_debris_is_dropped(debris: str) -> None:
    result = cleaned(f"{BODY}\n\n{debris}", title="Tram approved")
    assert result.text == BODY


def test_title_line_and_repeated_headline_are_dropped() -> None:
    text = (
        "Tram approved\n\nCouncil says yes to the tram\nCouncil says yes to the tram\n"
        "By Jane Doe\n5 March 2024\n\n" + BODY
    )
    assert cleaned(text, title="Tram Approved!").text == BODY


@pytest.mark.parametrize("line", [
    "Di nuovo in campo la maggioranza.",
    "By the numbers",
    "Share prices fell sharply on Monday.",
    "Rome, 5 March 2024",
    "The minister resigned.",
])
def test_real_lines_at_the_edges_are_kept(line: str) -> None:
    head = cleaned(f"{line}\n\n{BODY}")
    tail = cleaned(f"{BODY}\n\n{line}")
    assert head.text.startswith(line)
    assert tail.text.endswith(line)


def test_debris_like_lines_in_the_middle_are_kept() -> None:
    middle = "\n\n".join(f"Paragraph {i} of the story has several words in it." for i in range(12))
    text = f"{BODY}\n\n{middle}\n\nBy Jane Doe\n\nPhoto: Reuters\n\n{middle}\n\n{BODY}"
    result = cleaned(text)
    assert "\nBy Jane Doe\n" in result.text and "\nPhoto: Reuters\n" in result.text


def test_head_scan_stops_at_the_first_real_line() -> None:
    text = f"{BODY}\n\nBy Jane Doe\n\n{BODY}"
    assert "By Jane Doe" in cleaned(text).text


def test_only_debris_is_an_error() -> None:
    article = Article(id="x", title="T", text="By Jane Doe\n\nRead more\n\u200b", origin="f.jsonl:3")
    assert clean_article(article) == LoadError("f.jsonl:3", "empty text after cleaning")


def test_whitespace_only_is_an_error() -> None:
    article = Article(id="x", text=" \u00a0\n\t\u200b\n", origin="f.jsonl:4")
    assert clean_article(article) == LoadError("f.jsonl:4", "empty text after cleaning")


# ---------------------------------------------------------------------------------------------
# Titles and languages
# ---------------------------------------------------------------------------------------------


def test_missing_title_comes_from_the_first_sentence() -> None:
    result = cleaned("The U.S. Senate passed the bill on Monday. It now goes to the House.")
    assert result.title == "The U.S. Senate passed the bill on Monday"


def test_long_first_sentence_is_cut_at_a_word() -> None:
    sentence = "Ministers from twenty-seven countries met in Brussels " * 5 + "today."
    title = derive_title(sentence)
    assert len(title) <= 120 and title.endswith("…")
    assert sentence.startswith(title[:-1])
    assert title[-2] != " " and sentence[len(title) - 1] == " "


@pytest.mark.parametrize(("given", "expected"), [
    ("it-IT", "it"), ("EN", "en"), ("en_US", "en"), ("ita", "it"), ("Italian", "it"),
    ("", None), (None, None), ("x-klingon", None),
])
def test_normalize_lang(given: str | None, expected: str | None) -> None:
    assert normalize_lang(given) == expected


def test_given_language_is_kept_without_detection() -> None:
    def never(text: str) -> str | None:
        raise AssertionError("detection should not run when lang is given")

    result = clean_article(Article(id="x", text=BODY, lang="it-IT"), detect_language=never)
    assert isinstance(result, Article) and result.lang == "it"


def test_language_detection_italian_and_english() -> None:
    rows = corpus_rows("meantime-gm-stock-en-it.jsonl")
    italian = next(r for r in rows if r["lang"] == "it")
    english = next(r for r in rows if r["lang"] == "en")
    for row, expected in ((italian, "it"), (english, "en")):
        result = clean_article(Article(id=row["id"], title=row["title"], text=row["text"]))
        assert isinstance(result, Article) and result.lang == expected


def test_very_short_text_gets_no_language() -> None:
    result = clean_article(Article(id="x", text="OK 42"))
    assert isinstance(result, Article) and result.lang is None


def test_cleaning_keeps_every_sample_article() -> None:
    """Its speed is measured by bench/ingest_bench.py."""
    rows = corpus_rows("wikinews-gum.jsonl") + corpus_rows("current-events-2025q4.jsonl")[:307]
    articles = [Article(id=r["id"], title=r["title"], text=r["text"]) for r in rows]
    results = [clean_article(a) for a in articles]
    assert len(results) == 350 and all(isinstance(r, Article) for r in results)
