"""Exact and near-duplicate detection on real news texts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.ingest import dedup
from index.ingest.cleaning import clean_article
from index.models import Article
from index.sample import HERE as SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wikinews() -> list[dict]:
    with (SAMPLE_DIR / "wikinews-gum.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def syndicated_copy(text: str) -> str:
    """What another outlet runs: its own byline on top and one sentence rewritten."""
    sentences = re.split(r"(?<=[.!?])\s+", text)
    sentences[3] = "A spokesperson declined to comment further when reached on Monday."
    return "By Staff Reporter\n\n" + " ".join(sentences)


def cleaned(article_id: str, title: str, text: str) -> Article:
    result = clean_article(Article(id=article_id, title=title, text=text, lang="en"))
    assert isinstance(result, Article)
    return result


# ---------------------------------------------------------------------------------------------
# Exact duplicates
# ---------------------------------------------------------------------------------------------


def test_content_hash_ignores_case_and_whitespace_only(wikinews: list[dict]) -> None:
    row = wikinews[0]
    base = dedup.content_hash(row["title"], row["text"])
    assert len(base) == 64 and int(base, 16) >= 0
    spaced = re.sub(r" ", "  ", row["text"]).upper()
    assert dedup.content_hash(row["title"].lower(), "\n" + spaced + "\n") == base
    assert dedup.content_hash(row["title"], row["text"] + " Updated.") != base
    assert dedup.content_hash(row["title"] + " (updated)", row["text"]) != base  # title counts


# ---------------------------------------------------------------------------------------------
# Near duplicates
# ---------------------------------------------------------------------------------------------


def test_syndicated_copy_is_a_near_duplicate(wikinews: list[dict]) -> None:
    first, second = wikinews[0], wikinews[1]
    original = cleaned(first["id"], first["title"], first["text"])
    other = cleaned(second["id"], second["title"], second["text"])
    copy = cleaned("copy", "A completely different headline", syndicated_copy(first["text"]))
    assert copy.title != original.title
    sig_original, sig_other, sig_copy = (dedup.minhash(a.text) for a in (original, other, copy))

    similarity = dedup.estimate_jaccard(sig_original, sig_copy)
    assert dedup.NEAR_DUPLICATE_THRESHOLD <= similarity < 1.0
    assert dedup.estimate_jaccard(sig_original, sig_other) < 0.1
    assert set(dedup.band_keys(sig_original)) & set(dedup.band_keys(sig_copy))

    index = dedup.NearDuplicateIndex()
    index.add(original.id, sig_original)
    index.add(other.id, sig_other)
    found = index.find(sig_copy)
    assert [aid for aid, _ in found] == [original.id]
    assert found[0][1] == pytest.approx(similarity)


def test_different_articles_are_not_near_duplicates(wikinews: list[dict]) -> None:
    index = dedup.NearDuplicateIndex()
    for row in wikinews:
        sig = dedup.minhash(row["text"])
        assert index.find(sig) == [], row["id"]
        index.add(row["id"], sig)
    assert len(index) == len(wikinews)


def test_find_ranks_closer_copies_first(wikinews: list[dict]) -> None:
    text = wikinews[2]["text"]
    sentences = re.split(r"(?<=[.!?])\s+", text)
    light = " ".join(sentences[:-1])  # last sentence cut
    heavy = " ".join(sentences[: len(sentences) * 3 // 4])  # last quarter cut
    index = dedup.NearDuplicateIndex()
    index.add("heavy", dedup.minhash(heavy))
    index.add("light", dedup.minhash(light))
    found = index.find(dedup.minhash(text))
    assert [aid for aid, _ in found] == ["light", "heavy"]
    assert found[0][1] > found[1][1]


def test_short_texts_are_not_judged() -> None:
    short = "The council approved the tram line on Tuesday after a long debate."
    sig = dedup.minhash(short)
    assert sig.dtype == np.uint64 and sig.shape == (dedup.NUM_PERM,)
    assert dedup.band_keys(sig) == []
    assert dedup.estimate_jaccard(sig, sig) == 0.0
    index = dedup.NearDuplicateIndex()
    index.add("short", sig)
    assert len(index) == 0 and index.find(sig) == []


def test_signature_ignores_case_and_punctuation(wikinews: list[dict]) -> None:
    text = wikinews[3]["text"]
    shouted = re.sub(r"[.,;:!?\"']", " ", text).upper()
    assert np.array_equal(dedup.minhash(text), dedup.minhash(shouted))


def test_band_keys_fit_sqlite_and_are_stable_across_processes(wikinews: list[dict]) -> None:
    text = wikinews[4]["text"]
    keys = dedup.band_keys(dedup.minhash(text))
    assert len(keys) == dedup.BANDS == 32 and len(set(keys)) == 32
    assert all(-(2**63) <= k < 2**63 for k in keys)
    script = (
        "import sys, json; from index.ingest import dedup; "
        "print(json.dumps(dedup.band_keys(dedup.minhash(sys.stdin.read()))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], input=text, capture_output=True, text=True, cwd=ROOT,
        env={"PYTHONHASHSEED": "12345", "PATH": ""}, check=True, timeout=60,
    )
    assert json.loads(out.stdout) == keys


def test_signatures_do_not_depend_on_the_word_hash_cache(
    wikinews: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [row["text"] for row in wikinews[:12]]
    warm = [dedup.minhash(t) for t in texts + texts][len(texts):]  # words cached by then
    monkeypatch.setattr(dedup, "WORD_HASHES_CACHED", 0)  # starts over at every signature
    cold = [dedup.minhash(t) for t in texts]
    assert all(np.array_equal(a, b) for a, b in zip(warm, cold, strict=True))
    assert len({a.tobytes() for a in cold}) == len(texts)
