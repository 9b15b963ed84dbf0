"""Text analysis for the keyword (BM25) side: folding, stop words, Snowball stemming.

Chunks are indexed as stems of their article's language. A question's language is often
unknowable (short, names only, or asked in English about Italian news), so each question
term is expanded to its stems in every supported language and OR-ed: a stem that exists in
no document costs nothing, and the right one matches.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import Stemmer

SNOWBALL = {
    "it": "italian",
    "en": "english",
    "fr": "french",
    "de": "german",
    "es": "spanish",
    "pt": "portuguese",
    "nl": "dutch",
}
QUERY_LANGS = ("it", "en")

_WORD = re.compile(r"\w+", re.UNICODE)

STOPWORDS = frozenset(
    ["a", "ad", "agli", "ai", "al", "alla", "alle", "allo", "anche", "avere", "che", "chi", "ci", "coi", "col", "come", "con", "contro", "cosa", "cui", "da", "dagli", "dai", "dal", "dalla", "dalle", "dallo", "degli", "dei", "del", "della", "delle", "dello", "di", "dove", "dunque", "e", "ed", "era", "erano", "essere", "fa", "fra", "fu", "furono", "gli", "ha", "hanno", "hai", "ho", "i", "il", "in", "io", "la", "le", "lei", "li", "lo", "loro", "lui", "ma", "mi", "mia", "mio", "ne", "negli", "nei", "nel", "nella", "nelle", "nello", "noi", "non", "nostro", "o", "per", "perche", "piu", "poi", "quale", "quali", "qual", "quando", "quanti", "quanto", "quella", "quelle", "quelli", "quello", "questa", "queste", "questi", "questo", "se", "sei", "si", "sia", "siamo", "sono", "stata", "stati", "stato", "su", "sua", "sue", "sugli", "sui", "sul", "sulla", "sulle", "suo", "suoi", "te", "ti", "tra", "tu", "tua", "tuo", "un", "una", "uno", "vi", "voi", "e'", "c", "l", "un'", "quale", "qual", "cos", "cosa", "chi", "dell", "dall", "nell", "sull", "all", "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "an", "be", "this", "which", "or", "from", "it", "are", "were", "his", "her", "its", "their", "has", "have", "had", "not", "but", "what", "who", "whom", "whose", "when", "where", "why", "how", "did", "does", "do", "been", "being", "than", "then", "there", "these", "those", "they", "them", "he", "she", "we", "you", "your", "our", "i", "me", "my", "into", "about", "after", "also", "any", "can", "could", "would", "should", "may", "might", "will", "shall", "so", "such", "some"]
)


class _DropCombining(dict[int, int | None]):
    """A ``str.translate`` table deleting combining marks, filled lazily per code point."""

    def __missing__(self, cp: int) -> int | None:
        out = None if unicodedata.combining(chr(cp)) else cp
        self[cp] = out
        return out


_DROP_COMBINING = _DropCombining()
# The combining marks among U+0300-U+036F (all but the grapheme joiner): what NFKD leaves of
# Latin letters' accents. A C-speed pass over them first, so that accented Latin text (most
# of the corpus) skips the per-character translate, ~10x slower.
_LATIN_MARKS = re.compile(
    "[" + "".join(chr(cp) for cp in range(0x300, 0x370) if unicodedata.combining(chr(cp))) + "]"
)


def fold(text: str) -> str:
    """Case-fold and strip diacritics, as FTS5's unicode61 remove_diacritics does."""
    folded = text.casefold()
    if folded.isascii():  # NFKD leaves ASCII alone and ASCII has no combining marks
        return folded
    decomposed = unicodedata.normalize("NFKD", folded)
    stripped = _LATIN_MARKS.sub("", decomposed)
    if stripped.isascii():  # nothing else left that could be a combining mark
        return stripped
    return stripped.translate(_DROP_COMBINING)


def tokens(text: str) -> list[str]:
    return _WORD.findall(fold(text))


@lru_cache(maxsize=16)
def stemmer(lang: str) -> Stemmer.Stemmer | None:
    """The Snowball stemmer of a language, if there is one."""
    name = SNOWBALL.get(lang)
    return Stemmer.Stemmer(name) if name else None


def stem_words(words: list[str], lang: str | None) -> list[str]:
    st = stemmer(lang or "")
    return list(st.stemWords(words)) if st else words


def analyze(text: str, lang: str | None) -> str:
    """The FTS5 body of a passage: its stems, space-separated (stop words kept for phrases)."""
    return " ".join(stem_words(tokens(text), lang))


_VARIANTS: dict[str, frozenset[str]] = {}
VARIANTS_CACHED = 1 << 17  # words; the cache starts over when full


def query_variants(word: str) -> frozenset[str]:
    """A folded word and its Snowball stems in every query language."""
    v = _VARIANTS.get(word)
    return v if v is not None else variants_of([word])[word]


def variants_of(words: Iterable[str]) -> dict[str, frozenset[str]]:
    """:func:`query_variants` of many words: the new ones are stemmed in one call per
    language (a passage brings ~100 words never seen; one call per word costs 5x more)."""
    cache = _VARIANTS
    out: dict[str, frozenset[str]] = {}
    new: list[str] = []
    for w in words:
        v = cache.get(w)
        if v is None:
            new.append(w)
        else:
            out[w] = v
    if new:
        new = list(dict.fromkeys(new))
        stems = [stem_words(new, lang) for lang in QUERY_LANGS]
        if len(cache) + len(new) > VARIANTS_CACHED:
            cache.clear()
        for i, w in enumerate(new):
            v = frozenset([w, *(s[i] for s in stems)])
            cache[w] = out[w] = v
    return out


@lru_cache(maxsize=4096)
def content_words(text: str) -> tuple[str, ...]:
    """The question's folded words that search for something: stop words, repeats and
    single letters dropped (single digits kept)."""
    out: list[str] = []
    seen: set[str] = set()
    for w in tokens(text):
        if w in STOPWORDS or w in seen or (len(w) == 1 and not w.isdigit()):
            continue
        seen.add(w)
        out.append(w)
    return tuple(out)


@lru_cache(maxsize=4096)
def _query_terms(text: str) -> tuple[frozenset[str], ...]:
    return tuple(query_variants(w) for w in content_words(text))


def query_terms(text: str) -> list[set[str]]:
    """Per question word (stop words dropped): its stems in every query language."""
    return [set(g) for g in _query_terms(text)]


@lru_cache(maxsize=4096)
def fts_match(text: str) -> str:
    """An FTS5 MATCH expression OR-ing every stem variant; safe for any user text.

    Each term is double-quoted (FTS5 string syntax), so operators and punctuation typed by a
    user can never change the query's meaning or raise a syntax error.
    """
    variants: list[str] = []
    for group in _query_terms(text):
        variants.extend(sorted(group))
    uniq = list(dict.fromkeys(variants))
    return " OR ".join('"' + v.replace('"', '""') + '"' for v in uniq)
