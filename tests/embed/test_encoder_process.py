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
        assert child.process is not None and child.process.pid != os.getpid()
    finally:
        child.close()
    assert child.process is None


def test_a_killed_child_is_replaced_and_the_call_still_answers(hashing: Settings) -> None:
    child = ProcessEmbedder(hashing)
    try:
        first = child.embed_queries(TEXTS)
        proc = child.process
        assert proc is not None and proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        again = child.embed_queries(TEXTS)
        np.testing.assert_array_equal(first, again)
        assert child.process is not None and child.process.pid != proc.pid
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



def test_passages_go_to_the_child_in_slices_and_come_back_in_order(hashing: Settings) -> None:
    """Indexing in the bot shares the child with the questions: a long batch of passages is
    sent in slices, so that a question never waits for a whole batch."""
    from index.embed import process

    local = make_embedder(hashing)
    child = ProcessEmbedder(hashing)
    many = [f"passage number {i} about {TEXTS[i % 3]}" for i in range(40)]
    sent: list[tuple[str, int]] = []
    call = child._call

    def recording(kind: str, texts: list[str]) -> np.ndarray:
        sent.append((kind, len(texts)))
        return call(kind, texts)

    child._call = recording  # type: ignore[method-assign]
    try:
        got = child.embed_passages(many)
    finally:
        child.close()
    np.testing.assert_array_equal(got, local.embed_passages(many))
    assert len(sent) > 1 and sum(n for _, n in sent) == len(many), sent
    assert max(n for _, n in sent) <= process.MAX_SLICE


def test_a_waiting_question_goes_before_waiting_passages(hashing: Settings) -> None:
    import threading

    child = ProcessEmbedder(hashing)
    order: list[str] = []

    def take(kind: str) -> None:
        with child._my_turn(question=kind == "q"):
            order.append(kind)

    passages = threading.Thread(target=take, args=("p",))
    question = threading.Thread(target=take, args=("q",))
    with child._my_turn(question=False):  # a slice of passages is in the child
        passages.start()
        while not child._turn._waiters:  # type: ignore[attr-defined]
            threading.Event().wait(0.001)
        question.start()
        while child._questions_waiting == 0:
            threading.Event().wait(0.001)
    passages.join(10)
    question.join(10)
    assert order == ["q", "p"]
