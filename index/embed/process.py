"""An embedder whose model runs in a child process.

In the bot, query encoding shares one interpreter lock with everything else: the event loop
(Telegram updates, HTTP, quotes, rendering) and the SQLite and Chroma threads. The encoder's
Python glue between numpy/torch calls then waits for the lock, and the bot's throughput is
capped by the lock rather than by the two cores. Out of process, the model encodes at its
own speed and the bot's lock is left to the bot (bench/bot_bench.py: p95 at 150 questions/s
went from ~750 ms to ~150 ms). Token counting (chunking) stays in-process: it is cheap and
needs no weights.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from index.embed.base import Embedder, Span
from index.embed.factory import make_embedder
from index.embed.threads import single_thread_up_to
from index.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["EncoderError", "ProcessEmbedder"]

_START_TIMEOUT_S = 300.0  # loading torch and a model on a slow disk


# The settings that choose and configure the model (see make_embedder); nothing else, and
# never a secret, crosses to the child.
MODEL_FIELDS = ("embedding_model", "query_prompt", "passage_prompt", "embed_batch_size")


class EncoderError(RuntimeError):
    """The encoder process could not load its model, or died, or failed on a batch."""


def _serve(conn: Connection, fields: dict[str, Any]) -> None:
    """The child: one model, one request at a time, until the pipe closes."""
    model = make_embedder(Settings(_env_file=None, **fields))  # type: ignore[call-arg]
    try:
        model.embed_queries(["warm-up"])
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    # Questions come in small batches while the bot needs the other core: one thread each
    # (threads idle between BLAS/OpenMP calls spin). Indexing batches use every core.
    many = 1 << 30
    while True:
        try:
            kind, texts = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if kind == "q":
                with single_thread_up_to(many):
                    out = model.embed_queries(texts)
            else:
                out = model.embed_passages(texts)
            conn.send(("ok", out))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ProcessEmbedder:
    """The embedder named by ``settings``, encoding in a child process (started on first use
    or by :meth:`start`, restarted once if it dies)."""

    def __init__(self, settings: Settings, local: Embedder | None = None) -> None:
        self.settings = settings
        # Identity and token counts come from an in-process instance that never loads weights.
        self.local = local or make_embedder(settings)
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None

    # -- the Embedder protocol --

    @property
    def model_id(self) -> str:
        return self.local.model_id

    @property
    def dim(self) -> int:
        return self.local.dim

    @property
    def max_tokens(self) -> int:
        return self.local.max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.local.count_tokens(texts)

    def token_spans(self, text: str) -> list[Span]:
        return self.local.token_spans(text)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._call("q", texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._call("p", texts)

    # -- the child --

    def start(self) -> None:
        with self._lock:
            self._ensure()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _call(self, kind: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            for attempt in (1, 2):
                conn = self._ensure()
                try:
                    conn.send((kind, list(texts)))
                    status, value = conn.recv()
                except (EOFError, OSError) as exc:
                    self._stop()
                    if attempt == 2:
                        raise EncoderError(f"the encoder process died twice: {exc}") from exc
                    log.warning("the encoder process died; starting a new one")
                    continue
                if status != "ok":
                    raise EncoderError(f"encoder process: {value}")
                return np.asarray(value, dtype=np.float32)
        raise AssertionError("unreachable")

    def _ensure(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            return self._conn
        self._stop()
        ctx = multiprocessing.get_context("spawn")  # never fork a process holding threads
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_serve,
            args=(child, {f: getattr(self.settings, f) for f in MODEL_FIELDS}),
            name="newsbot-encoder", daemon=True,
        )
        proc.start()
        child.close()
        if not parent.poll(_START_TIMEOUT_S):
            proc.kill()
            raise EncoderError("the encoder process did not start")
        try:
            status, value = parent.recv()
        except EOFError as exc:
            proc.join(5)
            raise EncoderError(f"the encoder process exited (code {proc.exitcode})") from exc
        if status != "ready":
            proc.join(5)
            raise EncoderError(f"encoder process: {value}")
        self._proc, self._conn = proc, parent
        log.info("encoder process started", extra={"kv": {"pid": proc.pid,
                                                          "model": self.model_id}})
        return parent

    def _stop(self) -> None:
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if conn is not None:
            conn.close()  # the child's recv() ends and it exits
        if proc is not None:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
