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


def record_calls(child: ProcessEmbedder, into: list) -> None:
    """Append each call the child is sent (its kind, how many texts) to ``into``."""
    call = child._call

    def recording(kind: str, texts: list[str]) -> np.ndarray:
        into.append((kind, len(texts)))
        return call(kind, texts)

    child._call = recording  # type: ignore[method-assign]


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
    record_calls(child, sent)
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


def test_word_encodes_go_in_even_slices_and_give_the_in_process_vectors() -> None:
    """The word translation's encodes (index/search/translation.py) through the bot's child:
    slices another question can go between, no tail of a word or two, and exactly the
    vectors of one in-process batch (257 words: 128 + 129, the lone last word joined)."""
    from index.embed import process

    settings = Settings(_env_file=None)  # the default model, the one that translates
    local = make_embedder(settings)
    words = [f"{w}{i}" for i in range(64) for w in ("chiesa", "fiume", "vescovo", "porto")]
    words.append("collina")
    child = ProcessEmbedder(settings, local)
    sent: list[tuple[str, int]] = []
    record_calls(child, sent)
    try:
        got = child.embed_words(words)
        few = child.embed_words(words[:3])
    finally:
        child.close()
    np.testing.assert_array_equal(got, local.embed_words(words))
    np.testing.assert_array_equal(few, local.embed_words(words[:3]))
    assert [k for k, _ in sent] == ["w"] * len(sent)
    sizes = [n for _, n in sent[:-1]]
    assert sizes == [process.WORD_SLICE, len(words) - process.WORD_SLICE], sizes
    assert sent[-1] == ("w", 3)
def test_indexing_pauses_between_slices_only_while_questions_come(hashing: Settings) -> None:
    """While questions come, passages leave the child (and the machine) idle after each
    slice; with none in the window, they never pause."""
    from index.embed import process

    now = [100.0]
    events: list[tuple[str, float]] = []
    child = ProcessEmbedder(hashing, clock=lambda: now[0],
                            pause=lambda s: events.append(("pause", s)))
    record_calls(child, events)
    many = [f"passage number {i} about {TEXTS[i % 3]}" for i in range(300)]
    try:
        child.embed_passages(many)  # no question yet
        assert all(kind == "p" for kind, _ in events) and len(events) > 1, events
        events.clear()

        child.embed_queries(TEXTS[:1])
        assert child.questions_coming()
        child.embed_passages(many)
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "q" and kinds[-1] == "p", kinds
        slices = kinds[1:]
        # p, pause, p, pause, …, p: a pause after every slice but the last
        assert slices == ["p", "pause"] * (slices.count("p") - 1) + ["p"], slices
        assert slices.count("p") > 1
        assert all(s >= 0 for kind, s in events if kind == "pause")
        events.clear()

        now[0] += process.QUESTION_WINDOW_S + 0.1  # the questions stopped a while ago
        assert not child.questions_coming()
        child.embed_passages(many)
        assert "pause" not in [kind for kind, _ in events] and len(events) > 1
    finally:
        child.close()


def test_a_question_in_the_child_counts_as_coming_whatever_the_clock(hashing: Settings) -> None:
    import threading

    now = [0.0]
    child = ProcessEmbedder(hashing, clock=lambda: now[0])
    seen: list[bool] = []
    inside = threading.Event()
    release = threading.Event()
    call = child._call

    def slow(kind: str, texts: list[str]) -> np.ndarray:
        inside.set()
        release.wait(10)
        return call(kind, texts)

    child._call = slow  # type: ignore[method-assign]
    asker = threading.Thread(target=child.embed_queries, args=(TEXTS[:1],))
    try:
        asker.start()
        assert inside.wait(10)
        now[0] += 1000.0  # long after the question came: it is still in the child
        seen.append(child.questions_coming())
        release.set()
        asker.join(10)
        now[0] += 1000.0
        seen.append(child.questions_coming())
    finally:
        release.set()
        child.close()
    assert seen == [True, False]
