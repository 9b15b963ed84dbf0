"""Which sentence of a story is quoted for it: the one sharing most rare words with the story."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from index.ingest.chunking import split_sentences
from index.storage import keywords
from index.storage.store import ArticleRecord

MAX_QUOTE = 500
MAX_SENTENCES_PER_ARTICLE = 12  # leads carry the story; the tail of a long article rarely does
MIN_QUOTE_CHARS = 40


def content_stems(text: str, lang: str | None) -> list[str]:
    words = [w for w in keywords.tokens(text) if w not in keywords.STOPWORDS and len(w) > 1]
    return keywords.stem_words(words, lang or "en")


def _sentences(text: str, limit: int) -> list[tuple[int, int]]:
    out = []
    for s, e in split_sentences(text):
        if "\n" in text[s:e]:
            # A heading glued to its paragraph: quote the paragraph's part only.
            s = text.rindex("\n", s, e) + 1
            while s < e and text[s].isspace():
                s += 1
        if e - s >= 1:
            out.append((s, e))
        if len(out) >= limit:
            break
    return out


def central_sentence(
    articles: Sequence[ArticleRecord], weights: dict[str, float] | None = None
) -> tuple[ArticleRecord, int, int]:
    """The sentence of the story's articles that shares most weighted words with the story.

    A centroid summary: every stem gets the story's count of it times its rarity in the
    period (``weights``, an IDF); a sentence scores the sum over its distinct stems, divided
    by the square root of their number so neither fragments nor run-ons win, with a small
    bonus for the lead sentences a news writer puts the story in. Returns the article and
    the sentence's offsets in its text; the text itself is never rewritten.
    """
    weights = weights or {}
    story: Counter[str] = Counter()
    cache: dict[str, list[tuple[int, int, list[str]]]] = {}
    for a in articles:
        sents = []
        for s, e in _sentences(a.text, MAX_SENTENCES_PER_ARTICLE):
            stems = content_stems(a.text[s:e], a.lang)
            sents.append((s, e, stems))
            story.update(set(stems))
        cache[a.id] = sents
        story.update(set(content_stems(a.title, a.lang)))
    best: tuple[float, ArticleRecord, int, int] | None = None
    for a in articles:
        title = keywords.fold(a.title).strip()
        for pos, (s, e, stems) in enumerate(cache[a.id]):
            distinct = set(stems)
            if not distinct:
                continue
            score = sum(story[w] * weights.get(w, 1.0) for w in distinct) / math.sqrt(
                len(distinct)
            )
            length = e - s
            if length < MIN_QUOTE_CHARS or keywords.fold(a.text[s:e]).strip() == title:
                score *= 0.3
            elif length > MAX_QUOTE:
                score *= 0.6
            if pos < 2:
                score *= 1.15
            if best is None or score > best[0] + 1e-9:
                best = (score, a, s, e)
    if best is None:
        a = articles[0]
        end = min(len(a.text), MAX_QUOTE)
        return a, 0, end
    return best[1], best[2], best[3]


def idf_weights(articles: Sequence[ArticleRecord]) -> dict[str, float]:
    df: Counter[str] = Counter()
    for a in articles:
        df.update(set(content_stems(f"{a.title}\n{a.text[:3000]}", a.lang)))
    n = len(articles)
    return {w: math.log((1.0 + n) / (1.0 + c)) + 0.1 for w, c in df.items()}
