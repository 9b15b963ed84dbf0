"""The word translation's word vectors saved in the data dir (index/search/word_cache.py):
read back exactly, ignored when damaged or of another model, and a restart starts warm."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from index.embed import make_embedder
from index.search.translation import TranslateParams, WordTranslator
from index.search.word_cache import WORDS_NAME, load_words, save_words
from index.settings import Settings

XL = TranslateParams(weight=1.0, bar=0.55, per_word=2)
WORDS = ["church", "built", "river"]
VOCAB = ["chiesa", "costruita", "fiume", "vescovo", "porto", "gru", "collina"]


@pytest.fixture(scope="module")
def embedder():
    return make_embedder(Settings(_env_file=None))


class Counting:
    """The real encoder, counting the words it is asked to encode."""

    def __init__(self, embedder) -> None:  # type: ignore[no-untyped-def]
        self.inner = embedder
        self.model_id, self.dim = embedder.model_id, embedder.dim
        self.encoded: list[str] = []

    def embed_words(self, words):  # type: ignore[no-untyped-def]
        self.encoded += words
        return self.inner.embed_words(words)


def test_a_restart_reads_the_same_vectors_and_translates_alike(tmp_path: Path, embedder) -> None:
    path = tmp_path / WORDS_NAME
    first = WordTranslator(embedder, path=path)
    before = first.translate(WORDS, VOCAB, XL)
    assert first.save() > 0 and path.exists()
    assert first.save() == 0  # nothing new since

    counting = Counting(embedder)
    restarted = WordTranslator(counting, path=path)  # type: ignore[arg-type]
    assert restarted.translate(WORDS, VOCAB, XL) == before
    assert counting.encoded == []  # every word came from the file
    np.testing.assert_array_equal(restarted.vectors(VOCAB), first.vectors(VOCAB))
    saved = load_words(path, {"model": embedder.model_id, "dim": embedder.dim})
    assert saved is not None and set(saved) == set(WORDS) | set(VOCAB)
    assert all(saved[w].dtype == np.float16 for w in saved)
    assert "church" in before and before["church"][0][0] == "chiesa"


def test_a_damaged_or_foreign_file_is_ignored_with_a_log_line(tmp_path: Path, embedder, caplog
                                                              ) -> None:
    path = tmp_path / WORDS_NAME
    key = {"model": embedder.model_id, "dim": embedder.dim}
    vecs = embedder.embed_words(VOCAB).astype(np.float16)
    save_words(path, VOCAB, vecs, key)
    assert load_words(path, {**key, "model": "another-model"}) is None
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the vectors: the zip's CRC-32 no longer fits
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="index.search.word_cache"):
        assert load_words(path, key) is None
    assert "damaged" in caplog.text
    path.write_bytes(b"not a zip file")
    counting = Counting(embedder)
    translator = WordTranslator(counting, path=path)  # type: ignore[arg-type]
    expected = WordTranslator(embedder).translate(WORDS, VOCAB, XL)
    assert translator.translate(WORDS, VOCAB, XL) == expected  # encoded again, same result
    assert sorted(counting.encoded) == sorted(WORDS + VOCAB)
    assert translator.save() > 0 and load_words(path, key) is not None  # replaced, whole


def test_no_path_no_file(tmp_path: Path, embedder) -> None:
    translator = WordTranslator(embedder)
    translator.translate(WORDS, VOCAB, XL)
    assert translator.save() == 0 and list(tmp_path.iterdir()) == []
