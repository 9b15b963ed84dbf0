"""A question's words translated into its candidate passages' language by the multilingual
encoder itself.

An English question about Italian news shares only names, numbers and cognates with its
passages, so the keyword side (and the best-sentence re-ranking) sees almost nothing of it:
"When was the church built?" holds no word of "La chiesa fu costruita nel 1150". USE v3 puts
a word and its translation close together ("church"/"chiesa" 0.93, "built"/"costruito" 0.93,
against ~0.5 for unrelated words), so each content word of the question is encoded and
compared with the words of the first candidate passages written in another language; the
nearest ones above a similarity bar join the word's keyword variants. The vocabulary is
those passages' words only: the translations that can matter are there, and the cost
depends on a few passages, not on the archive's size. Word vectors are cached (words recur
across questions; a cold passage brings ~60 new words), and saved in the data dir
(index/search/word_cache.py), so a restart starts warm.

Only when the question's language is known and the candidates include passages in another
one: an Italian question on Italian news is never touched.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np

from index.embed import Embedder
from index.search.passage_words import passage_words
from index.search.word_cache import load_words, save_words
from index.storage import keywords
from index.storage.store import ChunkRecord, Store

__all__ = [
    "TranslateParams", "Translations", "WordTranslator", "foreign_vocabulary", "match_expression",
    "question_words", "translate_question", "translated_groups",
]  # fmt: skip

log = logging.getLogger(__name__)

Translations = dict[str, list[tuple[str, float]]]


@dataclass(frozen=True, slots=True)
class TranslateParams:
    weight: float = 0.0  # a translation's credit in the sentence match, as a share of the word's (0: off)
    bar: float = 0.55  # cosine a word and its translation must reach
    per_word: int = 2  # translations kept per question word, best first
    dense_passages: int = 10  # the candidates whose words are the vocabulary: dense head ...
    bm25_passages: int = 5  # ... and keyword head
    cache_words: int = 50_000  # word vectors kept (float16: 1 KB each)


MIN_LEN = 3  # shorter words are mostly function words and truncations
SAVE_AFTER = 5000  # new words that have the cache written again in the background


@lru_cache(maxsize=4096)
def _content_words(title: str, text: str) -> frozenset[str]:
    return frozenset(
        w for w in passage_words(title, text)
        if len(w) >= MIN_LEN and not w.isdigit() and w not in keywords.STOPWORDS
    )


def foreign_vocabulary(passages: Iterable[tuple[str, str, str | None]], lang: str) -> list[str]:
    """The content words of the ``(text, headline, language)`` passages not written in
    ``lang`` (the question's language), sorted."""
    out: set[str] = set()
    for text, title, plang in passages:
        if plang and plang != lang:
            out |= _content_words(title, text)
    return sorted(out)


def question_words(query: str) -> list[str]:
    """The question's words worth translating (digits and very short words carry over)."""
    return [w for w in keywords.content_words(query) if len(w) >= MIN_LEN and not w.isdigit()]


class WordTranslator:
    """Word vectors from the query encoder, cached; :meth:`translate` blocks (run it in a
    worker thread), :meth:`translate_cached` never encodes."""

    def __init__(self, embedder: Embedder, cache_words: int = 50_000,
                 path: Path | None = None) -> None:
        self.embedder = embedder
        self.cache_words = cache_words
        self.path = path  # where the cache is saved (index/search/word_cache.py); None: not
        # The cached words' float16 vectors as rows of one matrix (grown by doubling): a
        # question's ~600 vocabulary words are gathered at once, not stacked one by one.
        self._rows: dict[str, int] = {}
        self._mat = np.zeros((0, 0), np.float16)
        self._lock = threading.Lock()
        self._loaded = path is None
        self._unsaved = 0  # words encoded since the file was last written
        self._saving = threading.Lock()

    def _key(self) -> dict[str, object]:
        return {"model": self.embedder.model_id, "dim": self.embedder.dim}

    def _load(self) -> None:
        """The saved words, once, on first use (under ``_lock``): a restart starts warm."""
        self._loaded = True
        assert self.path is not None
        saved = load_words(self.path, self._key())
        if saved:
            for w, v in itertools.islice(saved.items(), self.cache_words - len(self._rows)):
                if w not in self._rows:
                    self._put(w, v)
            log.info("word vectors read from the data dir",
                     extra={"kv": {"words": len(self._rows), "path": str(self.path)}})

    def _put(self, word: str, vec: np.ndarray) -> None:
        """Cache ``vec`` (float16) as ``word``'s (under ``_lock``)."""
        n = len(self._rows)
        if n == len(self._mat):
            size = max(2 * n, 1024)
            if n < self.cache_words:
                size = min(size, self.cache_words)
            grown = np.zeros((size, len(vec)), np.float16)
            if n:
                grown[:n] = self._mat
            self._mat = grown
        self._mat[n] = vec
        self._rows[word] = n

    def _gather(self, words: Sequence[str]) -> np.ndarray | None:
        """The cached vectors of ``words`` as float32 rows, None if one is not cached
        (under ``_lock``)."""
        rows = list(map(self._rows.get, words))
        if None in rows:
            return None
        if not rows:
            return np.zeros((0, 0), np.float32)
        return self._mat[cast(list[int], rows)].astype(np.float32)

    def save(self) -> int:
        """Write the cache to :attr:`path` if words were encoded since it was last written;
        the file's size (0: nothing written). Blocking: run it off the event loop."""
        if self.path is None:
            return 0
        with self._saving:
            with self._lock:
                if not self._unsaved:
                    return 0
                unsaved, self._unsaved = self._unsaved, 0
                words = list(self._rows)  # in row order
                vecs = self._mat[: len(words)].copy() if words else np.zeros(
                    (0, self.embedder.dim), np.float16)
            try:
                return save_words(self.path, words, vecs, self._key())
            except OSError as exc:
                with self._lock:
                    self._unsaved += unsaved
                log.warning("the word vectors could not be saved",
                            extra={"kv": {"path": str(self.path), "error": str(exc)[:200]}})
                return 0

    def _save_in_background(self) -> None:
        if self._saving.locked():
            return
        threading.Thread(target=self.save, name="word-vectors-save", daemon=True).start()

    def _encode(self, words: list[str]) -> np.ndarray:
        """A backend's own word encode where it has one (USE v3: on one core), else its
        query encode."""
        embed_words = getattr(self.embedder, "embed_words", None)
        if callable(embed_words):
            return np.asarray(embed_words(words))
        return self.embedder.embed_queries(words)

    def vectors(self, words: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``words`` (rows), encoding only those not cached."""
        with self._lock:
            if not self._loaded:
                self._load()
            new = [w for w in dict.fromkeys(words) if w not in self._rows]
        if new:
            enc = np.asarray(self._encode(new), dtype=np.float32)
            with self._lock:
                if len(self._rows) + len(new) > self.cache_words:
                    self._rows.clear()
                for w, v in zip(new, enc, strict=True):
                    if w not in self._rows:  # else cached meanwhile by another question
                        self._put(w, v.astype(np.float16))
                self._unsaved += len(new)
                due = self.path is not None and self._unsaved >= SAVE_AFTER
            if due:
                self._save_in_background()
        with self._lock:
            got = self._gather(words)
        if got is None:  # evicted meanwhile by another question
            return np.asarray(self._encode(list(words)), dtype=np.float32)
        return got

    def _cached_vectors(self, words: Sequence[str]) -> np.ndarray | None:
        """:meth:`vectors` if every word is cached (and the saved cache was read), else
        None: never encodes."""
        with self._lock:
            return self._gather(words) if self._loaded else None

    def translate(self, words: Sequence[str], vocabulary: Sequence[str], p: TranslateParams
                  ) -> Translations:
        """Per question word, its nearest ``vocabulary`` words with cosine ≥ ``p.bar``
        (at most ``p.per_word``, best first, with their cosines); words without one are
        left out."""
        out = self._translate(words, vocabulary, p, self.vectors)
        assert out is not None
        return out

    def translate_cached(self, words: Sequence[str], vocabulary: Sequence[str],
                         p: TranslateParams) -> Translations | None:
        """:meth:`translate` if every word's vector is cached, else None: without an encode
        it is a few products (~0.7 ms), less than a worker-thread round trip."""
        return self._translate(words, vocabulary, p, self._cached_vectors)

    def _translate(
        self, words: Sequence[str], vocabulary: Sequence[str], p: TranslateParams,
        vectors: Callable[[Sequence[str]], np.ndarray | None],
    ) -> Translations | None:
        asked = set(words)
        vocab = [w for w in vocabulary if w not in asked]
        if not words or not vocab:
            return {}
        q = vectors(words)
        v = vectors(vocab) if q is not None else None
        if q is None or v is None:
            return None
        sims = q @ v.T
        out: Translations = {}
        k = min(p.per_word, len(vocab))
        for i, w in enumerate(words):
            top = np.argpartition(-sims[i], k - 1)[:k]
            best = sorted(((vocab[j], float(sims[i, j])) for j in top), key=lambda x: -x[1])
            kept = [(t, s) for t, s in best if s >= p.bar]
            if kept:
                out[w] = kept
        return out


def translated_groups(words: Sequence[str], translations: Mapping[str, Sequence[tuple[str, float]]]
                      ) -> list[set[str]]:
    """Per question word (``keywords.content_words`` order), its keyword variants and its
    translations' variants: what the keyword side searches and the match fraction counts."""
    out = []
    for w in words:
        g = set(keywords.query_variants(w))
        for t, _ in translations.get(w, ()):
            g |= keywords.query_variants(t)
        out.append(g)
    return out


def match_expression(groups: Sequence[set[str]]) -> str:
    """An FTS5 MATCH OR-ing every variant of every group, as ``keywords.fts_match`` writes
    a question's (each term quoted: safe for any text)."""
    terms = list(dict.fromkeys(v for g in groups for v in sorted(g)))
    return " OR ".join('"' + v.replace('"', '""') + '"' for v in terms)


async def translate_question(
    store: Store,
    translator: WordTranslator,
    p: TranslateParams,
    query: str,
    lang: str,
    dense: Sequence[tuple[str, float]],
    bm25: Sequence[tuple[str, float]],
    records: dict[str, ChunkRecord],
) -> Translations:
    """The words of ``query`` (asked in ``lang``) translated into the language of those of
    its first candidates written in another one; nothing if there are none. The candidates'
    passages are loaded into ``records``; an encoding runs in a worker thread."""
    words = question_words(query)
    if not words:
        return {}
    ids = list(dict.fromkeys(
        [c for c, _ in dense[: p.dense_passages]] + [c for c, _ in bm25[: p.bm25_passages]]
    ))
    missing = [c for c in ids if c not in records]
    if missing:
        records.update(await store.chunk_records(missing))
    vocab = foreign_vocabulary(
        ((records[c].text, records[c].title, records[c].lang) for c in ids if c in records),
        lang,
    )
    if not vocab:
        return {}
    cached = translator.translate_cached(words, vocab, p)
    if cached is not None:
        return cached
    return await asyncio.to_thread(translator.translate, words, vocab, p)
