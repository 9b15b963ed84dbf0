"""The answer path's speed-ups change no output: folding, sentence splitting and the
re-ranking's read-ahead are checked against the plain definitions they replace."""

from __future__ import annotations

import json
import random
import re
import sys
import unicodedata
from pathlib import Path

from index.ingest import chunking
from index.ingest.chunking import split_sentences
from index.storage import keywords

SAMPLE = Path(__file__).resolve().parents[2] / "index" / "sample"
# Sentence-final punctuation as the splitter first wrote it: an alternation of its units.
ALTERNATION = re.compile(r"(?:\.{2,}|…|[.!?])+[\"'»”’)\]}]*(?=\s)")


def reference_fold(text: str) -> str:
    """FTS5's remove_diacritics as stated: case-fold, decompose, drop every combining mark."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _sample_texts(limit: int = 400) -> list[str]:
    out: list[str] = []
    for path in sorted(SAMPLE.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines()[:limit]:
            row = json.loads(line)
            out.append(f"{row.get('title', '')}\n{row.get('text', '')}")
    assert len(out) > limit
    return out


def test_fold_is_the_reference_for_every_code_point_and_the_sample():
    every = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000]
    # One at a time, then in runs (a mark after a letter, a letter after a mark).
    for i in range(0, len(every), 4096):
        block = every[i : i + 4096]
        assert [keywords.fold(c) for c in block] == [reference_fold(c) for c in block]
    rnd = random.Random(17)
    accents = "aeiouAEIOUàèéìòùÀÈÉÌÒÙçñÅåİıßΣσς\u0301\u0300\u0308\u034f\u0345 "
    mixed = ["".join(rnd.choice(every) for _ in range(30)) for _ in range(3000)]
    mixed += ["".join(rnd.choice(accents) for _ in range(30)) for _ in range(3000)]
    texts = _sample_texts()
    assert any(not t.isascii() for t in texts)
    for text in [*mixed, *texts]:
        assert keywords.fold(text) == reference_fold(text), text[:80]


def test_sentences_split_as_with_the_alternation(monkeypatch):
    """The stops are found by one character class; the alternation of the same units found
    them before: every split is the same, on the sample and on random runs of stops, closers,
    spaces and line breaks (each line a segment searched on its own)."""
    rnd = random.Random(5)
    alphabet = ".!?…‥\"'»”’)]} \n\taA,b"
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
             for _ in range(40_000)]  # fmt: skip
    texts += _sample_texts(200)
    now = [split_sentences(t) for t in texts]
    monkeypatch.setattr(chunking, "_CANDIDATE", ALTERNATION)
    assert [split_sentences(t) for t in texts] == now
    assert sum(len(s) > 1 for s in now) > len(texts) // 4  # many texts split somewhere
