"""Exact quotes: which part of a retrieved chunk to show, and a link that opens the page there.

A reply must quote the article, never paraphrase it, so a quote is only ever a pair of
offsets into the article's cleaned text; every decision here (best sentence, window, cuts)
moves offsets and never rewrites characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote as _percent

from index.search import answer_types
from index.storage import keywords

__all__ = ["Quote", "make_hit_quote", "quote_sentences", "text_fragment_url"]

# The chunker's splitter, so quotes and chunks agree on where sentences end.
from index.ingest.chunking import split_sentences as _chunker_split
from index.ingest.chunking import trim_span


@dataclass(frozen=True, slots=True)
class Quote:
    """Offsets into the article text (all absolute; ``Hit`` stores the highlight relative).

    ``ellipsis_before``/``ellipsis_after`` are set when the quote does not begin/end at the
    article's start/end or at a paragraph boundary, i.e. when a reader must be told that the
    text goes on.
    """

    start: int
    end: int
    highlight_start: int
    highlight_end: int
    ellipsis_before: bool
    ellipsis_after: bool

    def text(self, article_text: str) -> str:
        return article_text[self.start : self.end]


# -- sentences ------------------------------------------------------------------------------

# Words that end with a dot without ending a sentence (EN/IT titles, months, companies).
_LINE = re.compile(r"[^\n]+")


def _tidy(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Whitespace-free, line-free, non-empty spans, whatever splitter produced them."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        for line in _LINE.finditer(text, max(0, s), min(len(text), e)):
            a, b = trim_span(text, line.start(), line.end())
            if a < b:
                out.append((a, b))
    out.sort()
    return out


def quote_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans of ``text[start:end]`` (absolute offsets), split as the chunker does."""
    end = len(text) if end is None else end
    part = text if start == 0 and end == len(text) else text[start:end]
    spans = _chunker_split(part)
    if start:
        spans = [(a + start, b + start) for a, b in spans]
    return _tidy(text, spans)


# -- scoring --------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")

# Rarity is judged within the lines the chunk touches (plus this many characters around
# them), not over a whole long article: it is the costliest step of a reply, and the
# paragraph is the context that matters. 600 and 0 give the same answer@3 on the dev set
# (0.858 IT, 0.745 EN) and 0 halves the work (bench/query_bench.py).
RARITY_CONTEXT = 0


@lru_cache(maxsize=1 << 16)
def _folded(raw: str) -> tuple[str, ...]:
    """``keywords.tokens`` of one raw word: usually just the word, case and accents folded."""
    return tuple(keywords.tokens(raw))


# A folded word and its Snowball stems in every query language (cached per word).
_query_variants = keywords.query_variants


@dataclass(frozen=True, slots=True)
class _Passage:
    """Sentences of a stretch of an article, the folded words of each, and all of them by
    first character (Snowball stems keep it: see ``_Terms``)."""

    sents: list[tuple[int, int]]
    words: list[frozenset[str]]
    by_initial: dict[str, list[str]]


@lru_cache(maxsize=1024)
def _passage(text: str, start: int, end: int) -> _Passage:
    sents = quote_sentences(text, start, end)
    # Folding a whole sentence at once keeps the per-word work in C: this is the costliest
    # step of a reply (bench/query_bench.py).
    words = [frozenset(keywords.tokens(text[s:e])) for s, e in sents]
    by_initial: dict[str, list[str]] = {}
    for w in frozenset().union(*words):
        by_initial.setdefault(w[:1], []).append(w)
    return _Passage(sents, words, by_initial)


class _Terms:
    """Question terms and the variants each sentence word can match them by."""

    def __init__(self, question: str, stem: Callable[[str], str] | None) -> None:
        self.stem = stem
        self._cache: dict[str, frozenset[str]] = {}
        self._hits: dict[str, frozenset[int]] = {}
        if stem is None:
            # Stems in every query language: the question's language is often unknowable.
            self.groups = [frozenset(g) for g in keywords.query_terms(question)]
            # Snowball (it, en) keeps a word's first letter, so a word can only match a term
            # that starts like it: most words of a passage need no stemming at all.
            self.initials: set[str] | None = {f[:1] for g in self.groups for f in g}
        else:
            seen: dict[str, frozenset[str]] = {}
            for w in keywords.tokens(question):
                if w in keywords.STOPWORDS or (len(w) == 1 and not w.isdigit()):
                    continue
                seen.setdefault(w, frozenset({stem(w)}))
            self.groups = list(seen.values())
            self.initials = None

    def variants(self, word: str) -> frozenset[str]:
        if self.stem is None:
            return _query_variants(word)
        v = self._cache.get(word)
        if v is None:
            v = frozenset({self.stem(word)})
            self._cache[word] = v
        return v

    def hits(self, word: str) -> frozenset[int]:
        """Indexes of the question terms that the (folded) ``word`` matches."""
        h = self._hits.get(word)
        if h is None:
            if self.initials is not None and word[:1] not in self.initials:
                h = frozenset()
            else:
                forms = self.variants(word)
                h = frozenset(i for i, g in enumerate(self.groups) if g & forms)
            self._hits[word] = h
        return h

    def matched(self, text: str) -> set[int]:
        """Indexes of the question terms that occur in ``text``."""
        out: set[int] = set()
        for w in keywords.tokens(text):
            out |= self.hits(w)
        return out


# -- quotes ---------------------------------------------------------------------------------


def _para_start(text: str, i: int) -> bool:
    while i > 0 and text[i - 1] in " \t\r\f\v":
        i -= 1
    return i == 0 or text[i - 1] == "\n"


def _para_end(text: str, i: int) -> bool:
    n = len(text)
    while i < n and text[i] in " \t\r\f\v":
        i += 1
    return i == n or text[i] == "\n"


def _same_paragraph(text: str, a: int, b: int) -> bool:
    return "\n" not in text[a:b]


def _cut_long(text: str, s: int, e: int, anchor: int, max_chars: int) -> tuple[int, int]:
    """A window of at most ``max_chars`` inside ``[s, e)`` around ``anchor``, on word edges."""
    start = max(s, min(anchor - max_chars // 3, e - max_chars))
    if start > s and not text[start - 1].isspace():
        nxt = re.compile(r"\s").search(text, start, e)
        if nxt is not None and nxt.end() < anchor + 1:
            start = nxt.end()
    while start < e and text[start].isspace():
        start += 1
    end = min(e, start + max_chars)
    if end < e and not text[end].isspace():
        cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
        if cut > start:
            end = cut
    while end > start and text[end - 1].isspace():
        end -= 1
    if end <= start:  # one "word" longer than the window: cut it
        end = min(e, start + max_chars)
    return start, end


def make_hit_quote(
    article_text: str,
    chunk_start: int,
    chunk_end: int,
    question: str,
    *,
    max_chars: int = 700,
    stem: Callable[[str], str] | None = None,
) -> Quote:
    """The quote to show for a retrieved chunk: the sentence of the chunk that best answers
    ``question``, widened with whole neighbouring sentences while it fits in ``max_chars``.

    The best sentence matches the most question terms weighted by rarity around the chunk
    (within ``RARITY_CONTEXT`` characters: a term in every sentence is the topic, not the
    answer); ties go to the earlier sentence.
    Matching folds case and accents and compares stems (``stem``, or Snowball stems in every
    query language when None). Context is taken first from the chunk itself, then from the
    same paragraph, never across a paragraph outside the chunk.
    """
    text = article_text
    n = len(text)
    max_chars = max(1, max_chars)
    chunk_start = max(0, min(chunk_start, n))
    chunk_end = max(chunk_start, min(chunk_end, n))
    # Whole lines around the chunk: sentences never cross a line outside the chunk.
    lo_cut = text.rfind("\n", 0, max(0, chunk_start - RARITY_CONTEXT)) + 1
    hi_cut = text.find("\n", min(n, chunk_end + RARITY_CONTEXT))
    passage = _passage(text, lo_cut, n if hi_cut < 0 else hi_cut)
    sents = passage.sents
    if not sents:
        return Quote(0, 0, 0, 0, False, False)

    inside = [i for i, (s, e) in enumerate(sents) if s < chunk_end and e > chunk_start]
    if not inside:
        after = [i for i, (s, _) in enumerate(sents) if s >= chunk_start]
        inside = [after[0] if after else len(sents) - 1]

    terms = _Terms(question, stem)
    per_sentence: dict[int, set[int]] = {}
    if terms.groups:
        by_initial = passage.by_initial
        # Only words starting like a term can match it (the rest would hit nothing).
        initials = terms.initials if terms.initials is not None else by_initial
        candidates = [w for c in initials for w in by_initial.get(c, ())]
        if terms.stem is None:
            keywords.variants_of(candidates)  # stems the new words in one call per language
        found: dict[str, frozenset[int]] = {}
        for word in candidates:
            hit = terms.hits(word)
            if hit:
                found[word] = hit
        if found:
            keys = found.keys()
            for i, words in enumerate(passage.words):
                common = keys & words
                if common:
                    per_sentence[i] = set().union(*(found[w] for w in common))
    matches = {i: per_sentence.get(i, set()) for i in inside}
    weights = _rarity(per_sentence, len(sents), len(terms.groups))
    bonus = _type_bonus(question, text, sents, inside, weights)
    best = inside[0]
    best_score = -1.0
    for i in inside:
        score = sum(weights[t] for t in matches[i]) + bonus.get(i, 0.0)
        if score > best_score + 1e-9:
            best, best_score = i, score

    s, e = sents[best]
    if e - s > max_chars:
        anchor = _anchor(terms, text, s, e, matches[best], weights)
        start, end = _cut_long(text, s, e, anchor, max_chars)
        return _quote(text, start, end, start, end)

    lo = hi = best
    allowed = set(inside)
    for phase in ("chunk", "paragraph"):
        grew = True
        while grew:
            grew = False
            for step in (1, -1):
                j = hi + 1 if step == 1 else lo - 1
                if not 0 <= j < len(sents):
                    continue
                if phase == "chunk" and j not in allowed:
                    continue
                if phase == "paragraph":
                    a, b = (sents[hi][1], sents[j][0]) if step == 1 else (sents[j][1], sents[lo][0])
                    if not _same_paragraph(text, a, b):
                        continue
                new_lo, new_hi = (lo, j) if step == 1 else (j, hi)
                if sents[new_hi][1] - sents[new_lo][0] <= max_chars:
                    lo, hi = new_lo, new_hi
                    grew = True
    return _quote(text, sents[lo][0], sents[hi][1], s, e)


# How much holding the kind of thing the question asks for (a name for "chi", a number for
# "quanti", a date for "quando", a place for "dove") weighs, as a share of the rarest matched
# term: enough to choose between sentences that match the question alike, not enough to
# prefer a sentence that merely has a number over one that matches the question.
TYPE_BONUS = 0.5


def _type_bonus(
    question: str,
    text: str,
    sents: Sequence[tuple[int, int]],
    inside: Sequence[int],
    weights: Sequence[float],
) -> dict[int, float]:
    kind = answer_types.question_kind(question)
    if kind is None or TYPE_BONUS <= 0:
        return {}
    unit = TYPE_BONUS * (max(weights) if weights and max(weights) > 0 else 1.0)
    asked = answer_types.fold_words(question)
    return {
        i: unit
        for i in inside
        if answer_types.sentence_answers(kind, text[sents[i][0] : sents[i][1]], asked)
    }


def _quote(text: str, start: int, end: int, hs: int, he: int) -> Quote:
    return Quote(start, end, hs, he, not _para_start(text, start), not _para_end(text, end))


def _rarity(per_sentence: dict[int, set[int]], n_sents: int, n_terms: int) -> list[float]:
    """Inverse sentence frequency of each question term within the passage."""
    df = [0] * n_terms
    for found in per_sentence.values():
        for t in found:
            df[t] += 1
    return [math.log(1.0 + n_sents / d) if d else 0.0 for d in df]


def _anchor(
    terms: _Terms, text: str, s: int, e: int, matched: set[int], weights: list[float]
) -> int:
    """Where in a long sentence its rarest matched term first occurs (else its start)."""
    if not matched:
        return s
    target = max(matched, key=lambda t: (weights[t], -t))
    group = terms.groups[target]
    for m in _WORD.finditer(text, s, e):
        if any(terms.variants(w) & group for w in _folded(m.group(0))):
            return m.start()
    return s


# -- text fragments -------------------------------------------------------------------------

_LEADING = "\"'«“‘([¿¡-–—"
_TRAILING = ".,;:!?»”’'\")]…-–—"


def _encode(words: list[str]) -> str:
    """Percent-encoding of the Text Fragments spec: also ``-``, ``&`` and ``,``."""
    return _percent(" ".join(words), safe="").replace("-", "%2D")


def text_fragment_url(url: str, quote_text: str, *, words: int = 5) -> str:
    """``url`` with a ``#:~:text=`` directive that scrolls to and highlights ``quote_text``.

    Short passages are matched whole; longer ones by their first and last ``words`` words
    (``text=start,end``), which survives small differences in the middle between the page and
    the cleaned text. Edge punctuation is dropped because pages often use other quote marks.
    An existing ``#fragment`` is replaced.
    """
    base = url.split("#", 1)[0]
    edge = _LEADING + _TRAILING
    tokens = quote_text.split()
    while tokens and not tokens[0].strip(edge):
        tokens.pop(0)
    while tokens and not tokens[-1].strip(edge):
        tokens.pop()
    if not tokens:
        return base
    tokens[0] = tokens[0].lstrip(_LEADING)
    tokens[-1] = tokens[-1].rstrip(_TRAILING)
    if len(tokens) <= 2 * words:
        directive = _encode(tokens)
    else:
        directive = _encode(tokens[:words]) + "," + _encode(tokens[-words:])
    return f"{base}#:~:text={directive}"
