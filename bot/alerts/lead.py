"""What an article's lead must hold for a follow: its distinctive words, as stems or word
forms, and for a follow typed with names one of those (the lead-word rule of
:mod:`bot.alerts.matching`; docs/alerts.md, "Matching").

A word form is an inflection or a gentilic of the word, not a longer different name:
"Cameroon" for "Cameroonian", "ucraino" for "Ucraina", never "Nigeria" for "Niger".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from index.storage import keywords

DISTINCTIVE_SHARE = 0.8  # a follow word this rare relative to its rarest is distinctive
ROOT_MIN = 4  # a word form matches on the word's first max(ROOT_MIN, len - ROOT_TRIM) letters
ROOT_TRIM = 3
_RAW_WORD = re.compile(r"\w+", re.UNICODE)




# What may follow a shared root in two forms of one word: English and Italian inflections
# and the gentilic endings ("cameroon"/"cameroonian", "ucraina"/"ucraino", "sudan"/"sudanese").
WORD_ENDINGS = frozenset({
    "", "s", "es", "e", "ed", "d", "ing", "er", "ers", "y", "ies", "i", "is", "ic", "ics",
    "ish", "ist", "ists", "n", "ns", "an", "ans", "ian", "ians", "ean", "eans", "ese", "esi",
    "a", "o", "ia", "on", "ano", "ana", "ani", "ane", "ino", "ina", "ini", "ine",
})
# Endings that make another name when added to a whole word ("niger" → "nigeria", "india" →
# "indiana"): a form only when the other word also has an ending ("russia"/"russo").
NAME_ENDINGS = frozenset({"a", "o", "ia", "on"})


def word_root(word: str) -> str:
    """The part of a word its other forms share: the gentilic's country, the verb's tenses
    ("cameroonian" → "cameroon", "ukrainian" → "ukrain", "kidnapping" → "kidnapp")."""
    return word if len(word) <= ROOT_MIN else word[: max(ROOT_MIN, len(word) - ROOT_TRIM)]


def is_word_form(word: str, other: str) -> bool:
    """Whether ``other`` is a form of ``word``: past their common beginning, each ends in an
    inflection or gentilic ending (:data:`WORD_ENDINGS`). A longer different name is not a
    form of the shorter: "Nigeria" is not "Niger", "Cameroonian" is "Cameroon"."""
    k = 0
    for a, b in zip(word, other, strict=False):
        if a != b:
            break
        k += 1
    if k < min(ROOT_MIN, len(word), len(other)):
        return False
    ends = (word[k:], other[k:])
    if ends[0] not in WORD_ENDINGS or ends[1] not in WORD_ENDINGS:
        return False
    return "" not in ends or not (NAME_ENDINGS & set(ends))


@dataclass(slots=True)
class LeadWords:
    """Which words a lead must hold for each follow (one of them, as a stem or a word form):
    each stem, and each word's root, to the follow rows; follows with none pass."""

    distinct: dict[str, list[int]] = field(default_factory=dict)
    roots: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # (row, word)
    wordless: list[int] = field(default_factory=list)  # follows with no word to require
    root_lengths: tuple[int, ...] = ()

    @classmethod
    def build(cls, groups_per_follow: Sequence[list[list[str]]]) -> LeadWords:
        out = cls()
        for i, groups in enumerate(groups_per_follow):
            if not groups:
                out.wordless.append(i)
            for group in groups:
                for term in group:
                    out.distinct.setdefault(term, []).append(i)
                # The folded word is its group's longest member (stems only shorten it).
                word = max(group, key=len)
                out.roots.setdefault(word_root(word), []).append((i, word))
        out.root_lengths = tuple(sorted({len(r) for r in out.roots}))
        return out

    def held(self, leads: Sequence[frozenset[str]], n_follows: int) -> np.ndarray:
        held = np.zeros((n_follows, len(leads)), dtype=bool)
        if not n_follows:
            return held
        distinct, roots = self.distinct, self.roots
        for a, words in enumerate(leads):
            rows: set[int] = set()
            for w in words:
                rows.update(distinct.get(w, ()))
                for k in self.root_lengths:
                    if k > len(w):
                        break
                    for f, word in roots.get(w[:k], ()):
                        if f not in rows and is_word_form(word, w):
                            rows.add(f)
            if rows:
                held[list(rows), a] = True
        held[self.wordless, :] = True
        return held


def name_words(text: str) -> frozenset[str]:
    """The names a follow was typed with: its capitalised words after the first (which
    may be capitalised only for starting it), folded. "2025 Czech parliamentary election" →
    {"czech"}; "Kidnapping in Nigeria" → {"nigeria"}; "gaza war" → none."""
    words = _RAW_WORD.findall(text)
    return frozenset(keywords.fold(w) for w in words[1:] if w[:1].isupper())


def distinctive_groups(
    terms: Sequence[Sequence[str]], weights: Sequence[float], names: frozenset[str] = frozenset()
) -> list[list[str]]:
    """A follow's rarest keyword group and those within :data:`DISTINCTIVE_SHARE` of it;
    among its names (``names``, :func:`name_words`) when it has any: a lead that holds only
    the follow's common words ("parliamentary election") is another story's."""
    if names and len(weights) == len(terms):
        named = [(g, w) for g, w in zip(terms, weights, strict=True) if names & set(g)]
        if named:
            terms, weights = [g for g, _ in named], [w for _, w in named]
    if not terms or len(weights) != len(terms):
        return [list(g) for g in terms if g][:1]
    top = max(weights)
    return [list(g) for g, w in zip(terms, weights, strict=True)
            if g and w >= DISTINCTIVE_SHARE * top - 1e-12]
