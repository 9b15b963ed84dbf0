"""The encoder child process: the same vectors as in-process, survival of a dead child, and
errors that say what went wrong."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from index.embed import make_embedder
from index.embed.process import EncoderError, ProcessEmbedder
from index.settings import Settings

TEXTS = ["Chi guida General Motors?", "Mary Barra became chief executive of GM.", "zebra"]


@pytest.fixture
def hashing() -> Settings:
    return Settings(_env_file=None, embedding_model="hashing")  # type: ignore[call-arg]


def test_vectors_and_identity_match_the_in_process_model(hashing: Settings) -> None:
    local = make_embedder(hashing)
    child = ProcessEmbedder(hashing)
    try:
        assert (child.model_id, child.dim, child.max_tokens) == (
            local.model_id, local.dim, local.max_tokens
        )
        assert child.count_tokens(TEXTS) == local.count_tokens(TEXTS)
        np.testing.assert_array_equal(child.embed_queries(TEXTS), local.embed_queries(TEXTS))
        np.testing.assert_array_equal(child.embed_passages(TEXTS), local.embed_passages(TEXTS))
        assert child.embed_queries([]).shape == (0, local.dim)
        assert child._proc is not None and child._proc.pid != os.getpid()
    finally:
        child.close()
    assert child._proc is None


def test_a_killed_child_is_replaced_and_the_call_still_answers(hashing: Settings) -> None:
    child = ProcessEmbedder(hashing)
    try:
        first = child.embed_queries(TEXTS)
        proc = child._proc
        assert proc is not None and proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        again = child.embed_queries(TEXTS)
        np.testing.assert_array_equal(first, again)
        assert child._proc is not None and child._proc.pid != proc.pid
    finally:
        child.close()


def test_a_model_that_cannot_load_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "no-such-model"
    settings = Settings(_env_file=None, embedding_model=str(missing))  # type: ignore[call-arg]
    child = ProcessEmbedder(settings, local=make_embedder(
        Settings(_env_file=None, embedding_model="hashing")  # type: ignore[call-arg]
    ))
    with pytest.raises(EncoderError, match="encoder process") as err:
        child.start()
    assert "no-such-model" in str(err.value)
    child.close()
