"""An embedder whose model runs in a child process.

In the bot, query encoding shares one interpreter lock with everything else: the event loop
(Telegram updates, HTTP, quotes, rendering) and the SQLite and Chroma threads. The encoder's
Python glue between numpy/torch calls then waits for the lock, and the bot's throughput is
capped by the lock rather than by the two cores. Out of process, the model encodes at its
own speed and the bot's lock is left to the bot (bench/bot_bench.py: p95 at 150 questions/s
went from ~750 ms to ~150 ms). Token counting (chunking) stays in-process: it is cheap and
needs no weights.

One child serves both the questions and the indexing runs of the bot's live sources and
``/reindex``, one request at a time. Passages are therefore sent in slices sized to take
about ``PASSAGE_SLICE_S`` each (from the time per passage of the slices before), and a
question waiting for the child goes before the next slice: it waits for one slice at most,
not for a whole indexing batch of 128 passages (bench/live_bench.py).

While questions come (one in the child, or one ended less than ``QUESTION_WINDOW_S`` ago),
indexing also leaves the machine to them: after each slice it pauses twice as long as the
slice took, so it takes at most a third of a core and the answers' own work (search,
quotes, rendering, in the bot's process) gets the rest; and its slices are shorter
(``QUESTION_SLICE_S``), as a question arriving during one waits for the rest of it. The indexing run's in-process stages (chunking,
stemming, writes) are paced with it, as each waits for the next encoded batch. With no
question around, passages go at full speed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator, Sequence
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
PASSAGE_SLICE_S = 0.02  # about how long a question may wait behind indexing
MAX_SLICE = 64
WORD_SLICE = 128  # words per request to the child (embed_words) ...
WORD_TAIL = 16  # ... and the shortest last slice (a shorter one joins the slice before)
QUESTION_WINDOW_S = 1.5  # after a question, indexing keeps yielding this long
QUESTION_SLICE_S = PASSAGE_SLICE_S / 4  # the slices while questions come
PASSAGE_SHARE = 1 / 3  # of the time indexing may keep the child while questions come


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
    # One thread for everything: the bot needs the other core (threads idle between
    # BLAS/OpenMP calls spin, and on a busy machine a 2-thread encode of 8 passages took 1.8 s
    # against 0.23 s on one). Indexing batches here are the bot's own (live sources,
    # /reindex), which run beside the answers; `newsbot index` encodes in its own process.
    many = 1 << 30
    while True:
        try:
            kind, texts = conn.recv()
        except (EOFError, OSError):
            return
        try:
            with single_thread_up_to(many):
                if kind == "w":
                    embed_words = getattr(model, "embed_words", None)
                    out = embed_words(texts) if callable(embed_words) else model.embed_queries(texts)
                else:
                    out = model.embed_queries(texts) if kind == "q" else model.embed_passages(texts)
            conn.send(("ok", out))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ProcessEmbedder:
    """The embedder named by ``settings``, encoding in a child process (started on first use
    or by :meth:`start`, restarted once if it dies)."""

    def __init__(
        self,
        settings: Settings,
        local: Embedder | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.pause = pause
        # Identity and token counts come from an in-process instance that never loads weights.
        self.local = local or make_embedder(settings)
        # One request in the child at a time; questions go before waiting passage slices.
        self._turn = threading.Condition()
        self._busy = False
        self._questions_waiting = 0
        self._passage_s = PASSAGE_SLICE_S / 2  # seconds per passage, as last measured
        self._questions_in = 0  # questions between their call and their answer
        self._last_question = -float("inf")  # when the last one came or went (clock)
        self._proc: Any = None
        self._conn: Connection | None = None

    @property
    def process(self) -> Any:
        """The child (a ``multiprocessing`` process) while one runs, else None: what an
        operator or a test watches, or kills to see it replaced."""
        return self._proc

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
        self._question(+1)
        try:
            return self._call("q", texts)
        finally:
            self._question(-1)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        parts: list[np.ndarray] = []
        i = 0
        coming = self.questions_coming()
        while i < len(texts):
            slice_s = QUESTION_SLICE_S if coming else PASSAGE_SLICE_S
            n = max(1, min(MAX_SLICE, int(slice_s / self._passage_s)))
            t0 = time.perf_counter()
            parts.append(self._call("p", texts[i : i + n]))
            took = time.perf_counter() - t0
            self._passage_s = 0.5 * self._passage_s + 0.5 * took / len(parts[-1])  # load moves
            i += n
            coming = i < len(texts) and self.questions_coming()
            if coming:
                self.pause(took * (1 / PASSAGE_SHARE - 1))  # the rest to the questions
        return np.concatenate(parts) if parts else self._call("p", texts)

    def embed_words(self, words: Sequence[str]) -> np.ndarray:
        """Single words (index/search/translation.py), encoded by the child as the model
        encodes them in-process (``embed_words`` where it has one: on one core). ~600 words
        hold the child ~0.2-1 s, so they go in slices of ``WORD_SLICE`` taking turns like
        passage slices: another user's question waiting for the child goes first. USE v3
        gives a row the same bits in a slice of 128 as in one batch, but not as the lone
        row of a batch of one or two, so a short tail joins the slice before it."""
        cuts = [*range(0, len(words), WORD_SLICE), len(words)]
        if len(cuts) > 2 and cuts[-1] - cuts[-2] < WORD_TAIL:
            del cuts[-2]
        if len(cuts) <= 2:
            return self._call("w", words)
        return np.concatenate([self._call("w", words[i:j]) for i, j in itertools.pairwise(cuts)])

    def questions_coming(self) -> bool:
        """Whether a question is being encoded or one was less than ``QUESTION_WINDOW_S``
        ago: then indexing yields (see the module's docstring)."""
        with self._turn:
            return bool(self._questions_in) or (
                self.clock() - self._last_question < QUESTION_WINDOW_S
            )

    def _question(self, step: int) -> None:
        with self._turn:
            self._questions_in += step
            self._last_question = self.clock()

    # -- the child --

    def start(self) -> None:
        with self._my_turn(question=True):
            self._ensure()

    def close(self) -> None:
        with self._my_turn(question=True):
            self._stop()

    @contextlib.contextmanager
    def _my_turn(self, *, question: bool) -> Iterator[None]:
        """The child to this thread alone; a question is let in before any waiting passages."""
        with self._turn:
            self._questions_waiting += question
            try:
                while self._busy or (not question and self._questions_waiting):
                    self._turn.wait()
                self._busy = True
            finally:
                self._questions_waiting -= question
        try:
            yield
        finally:
            with self._turn:
                self._busy = False
                self._turn.notify_all()

    def _call(self, kind: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._my_turn(question=kind == "q"):
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
