"""The fused head re-ranked by each passage's best sentence.

BM25 scores a whole passage (~150 words): a passage that spreads the question's words over
five sentences, or repeats words every passage of its article shares (the page's subject,
the headline), scores like the one with the sentence that answers. A question — a reader's,
or a SQuAD-style one — is most often answered by *one* sentence holding most of its rare
words. So each of the first ``head`` fused passages gains ``weight`` × the IDF-weighted share
of the question's words found in its best single sentence (on top of its fused score
divided by the best one): evidence the whole-passage scores do not have, measured at query
time on texts the reply loads anyway.

A question word matches a sentence word by any stem variant (Italian and English, as the
keyword side matches), or failing that by its first ``prefix`` letters: Snowball keeps
"petrolifera" and "petrolio", "elettrico" and "elettricità" apart, and a question seldom uses
the passage's own derivation. The same five letters join many cognates across the two
languages ("presidente"/"president", "università"/"university"; not "popolazione"/
"population"): an English question's only words found in Italian text. A sentence that also holds the kind of thing the question asks for (a name
for "chi", a number for "quanti": index/search/answer_types.py) gains ``type_bonus`` more.

Measured on eval/squad-it-dev and eval/en-news-dev (docs/retrieval.md, "Best sentence").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, TypeVar

from index.ingest.chunking import split_sentences
from index.search import answer_types
from index.storage import keywords

__all__ = [
    "QuestionTerms", "Scored", "SentenceParams", "best_sentence", "clear_cache", "question_terms",
    "rerank",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class SentenceParams:
    weight: float = 0.0  # 0: off
    head: int = 20  # fused passages re-ranked
    prefix: int = 5  # letters of a prefix match (words at least this long)
    type_bonus: float = 0.1


@dataclass(frozen=True, slots=True)
class QuestionTerms:
    """The question's words (stop words dropped) as the keyword side sees them: stem
    variants and a prefix each, with an IDF weight each."""

    variants: tuple[frozenset[str], ...]
    prefixes: tuple[str | None, ...]
    weights: tuple[float, ...]
    kind: answer_types.Kind | None
    asked: frozenset[str]
    # Per word, its translations into the passages' language (translation.py) and the share
    # of the word's weight a sentence holding only a translation gains.
    foreign: tuple[frozenset[str], ...] = ()
    foreign_credit: float = 1.0

    def all_variants(self) -> list[str]:
        return sorted({v for g in self.variants for v in g})


def question_terms(
    query: str,
    question: str,
    doc_freq: Mapping[str, int],
    n_docs: int,
    p: SentenceParams,
    translations: Mapping[str, Sequence[tuple[str, float]]] | None = None,
    credit: float = 1.0,
) -> QuestionTerms:
    """``doc_freq``: chunks holding each stem variant (as the keyword index stores them);
    a word no chunk holds weighs as the rarest possible. ``translations``: per word, its
    translations (translation.py); a translated word weighs as its rarest variant or
    translation, so an English word absent from Italian text weighs as its Italian one."""
    words = keywords.content_words(query)
    variants = tuple(keywords.query_variants(w) for w in words)
    tr = translations or {}
    foreign = tuple(frozenset(t for t, _ in tr.get(w, ())) for w in words)
    weighed = tuple(
        g.union(*(keywords.query_variants(t) for t in f)) if f else g
        for g, f in zip(variants, foreign, strict=True)
    )
    prefixes = tuple(w[: p.prefix] if len(w) >= p.prefix else None for w in words)
    n = max(n_docs, 1)

    def idf(df: int) -> float:
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    weights = tuple(
        max((idf(doc_freq[v]) for v in g if doc_freq.get(v, 0) > 0), default=idf(0))
        for g in weighed
    )
    return QuestionTerms(
        variants, prefixes, weights, answer_types.question_kind(question),
        answer_types.fold_words(question), foreign if any(foreign) else (), credit,
    )


@lru_cache(maxsize=8192)
def _sentences(text: str, prefix: int) -> tuple[
    tuple[frozenset[str], frozenset[str], str], ...
]:
    """Per sentence of a passage: its folded words, their prefixes, and its text (cached:
    the same head passages come back for many questions). The passage's words are not
    stemmed: the prefix catches their inflections as well as stems would (measured alike on
    both dev sets), at a third of the cost."""
    out = []
    for s, e in split_sentences(text):
        sentence = text[s:e]
        words = keywords.tokens(sentence)
        forms = frozenset(words)
        pre = frozenset([w[:prefix] for w in forms if len(w) >= prefix])
        out.append((forms, pre, sentence))
    return tuple(out)


def clear_cache() -> None:
    """Forget the sentences of the passages seen so far (bench/sentence_eval.py times the
    re-ranking cold)."""
    _sentences.cache_clear()


def best_sentence(
    text: str, terms: QuestionTerms, p: SentenceParams, title: str = ""
) -> float:
    """The IDF-weighted share of the question's words in the passage's best sentence (plus
    ``type_bonus`` if that sentence also holds the kind of answer asked for). The headline
    counts as one more sentence: a question may be the headline in other words."""
    total = sum(terms.weights)
    if total <= 0:
        return 0.0
    best = 0.0
    sentences = _sentences(text, p.prefix)
    if title:
        sentences = _sentences(title, p.prefix) + sentences
    foreign = terms.foreign or (frozenset(),) * len(terms.variants)
    for forms, pre, sentence in sentences:
        got = 0.0
        for g, x, w, f in zip(terms.variants, terms.prefixes, terms.weights, foreign,
                              strict=True):
            if not g.isdisjoint(forms) or (x is not None and x in pre):
                got += w
            elif f and not f.isdisjoint(forms):
                got += w * terms.foreign_credit
        got /= total
        if (
            got > 0 and p.type_bonus and terms.kind is not None and got + p.type_bonus > best
            and answer_types.sentence_answers(terms.kind, sentence, terms.asked)
        ):
            got += p.type_bonus
        best = max(best, got)
    return best


class Scored(Protocol):
    """A ranked passage (fusion.Ranked), re-scored in place."""

    chunk_id: str
    score: float


S = TypeVar("S", bound=Scored)


def rerank(
    ranked: Sequence[S],
    texts: Mapping[str, tuple[str, str]],
    terms: QuestionTerms,
    p: SentenceParams,
    *,
    boost: Mapping[str, float] | None = None,
) -> list[S]:
    """``ranked`` (best first) with its first ``p.head`` re-scored: score ÷ best score +
    weight × :func:`best_sentence` (times the passage's recency factor in ``boost``, so that
    the prior still holds). ``texts``: chunk id → (text, headline); a passage without one,
    and every passage past the head, follows the head in its old order."""
    if p.weight <= 0 or not ranked or not terms.variants:
        return list(ranked)
    top = max(ranked[0].score, 1e-9)
    scored: list[S] = []
    rest: list[S] = []
    for r in ranked[: p.head]:
        known = texts.get(r.chunk_id)
        if known is None:
            rest.append(r)
            continue
        bonus = p.weight * best_sentence(known[0], terms, p, known[1])
        if boost:
            bonus *= boost.get(r.chunk_id, 1.0)
        r.score = r.score / top + bonus
        scored.append(r)
    scored.sort(key=lambda r: -r.score)
    floor = min((r.score for r in scored), default=0.0)
    rest.extend(ranked[p.head :])
    for r in rest:
        r.score = min(r.score / top, floor)
    return scored + rest
