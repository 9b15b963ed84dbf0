"""Exact and near-duplicate detection for articles: pure functions, and the run's pass that
checks each pending article against the stored ones and the run's earlier ones.

Exact duplicates share ``content_hash``. Near duplicates — syndicated copies of one story
with a new headline, a byline or a reworded sentence — are found with MinHash over word
5-shingles and LSH banding:

* 128 permutations: the Jaccard estimate has a standard error of about 0.044 at 0.5.
* 32 bands of 4 rows: two texts become candidates with probability 1 - (1 - J^4)^32, i.e.
  23% at J = 0.3, 87% at J = 0.5, 99% at J = 0.6, 99.99% at J = 0.7. The S-curve's middle
  is (1/32)^(1/4) ≈ 0.42, under ``NEAR_DUPLICATE_THRESHOLD`` = 0.6, so copies at or above
  the threshold are almost always found while unrelated pairs rarely need checking.
* 0.6, not 0.5: a syndicated copy with a new headline, a byline and a reworded sentence
  scores 0.8-0.95, while two short wire items about *different* events written from one
  template (Senate vs Chamber passing the same bill) already reach 0.56.

Signatures and band keys are deterministic across processes (fixed seeds, no ``hash()``),
because they are stored and compared with those of later runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import numpy as np

from index.ingest.pending import Pending
from index.ingest.report import IndexReport
from index.storage.store import Store

NUM_PERM = 128
BANDS = 32
ROWS = NUM_PERM // BANDS
SHINGLE_WORDS = 5
MIN_WORDS = 30  # shorter texts share too few shingles for a fair judgement
NEAR_DUPLICATE_THRESHOLD = 0.6
SEED = 20240229

WORD_HASHES_CACHED = 1 << 18  # words; the cache starts over when full (~40 MB at most)
_WORD_HASHES: dict[str, int] = {}
_MAX = np.iinfo(np.uint64).max
_WORD = re.compile(r"\w+")
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_POLY = np.uint64(0x100000001B3)  # FNV prime: combines five word hashes into one shingle


def content_hash(title: str, text: str) -> str:
    """Hash of the normalised title and text: equal hashes mean the same article content.

    The title is included on purpose: the indexer uses this hash to notice a changed
    article, and a corrected headline is a change. Copies that differ only in headline are
    caught as near duplicates instead (their texts have Jaccard 1.0).
    """
    payload = f"{_normalize(title)}\n{_normalize(text)}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def minhash(text: str) -> np.ndarray:
    """The 128-value MinHash signature (``uint64``) of the text's word 5-shingles.

    Texts under ``MIN_WORDS`` words get an all-ones signature that ``band_keys`` and
    ``estimate_jaccard`` recognise as "too short to judge".
    """
    words = _WORD.findall(text.casefold())
    if len(words) < MIN_WORDS:
        return np.full(NUM_PERM, _MAX, dtype=np.uint64)
    shingles = _shingle_hashes(_word_hashes(words))
    permuted = shingles[None, :] * _MULTIPLIERS[:, None]
    permuted += _OFFSETS[:, None]
    return permuted.min(axis=1)


def band_keys(sig: np.ndarray) -> list[int]:
    """One signed 64-bit key per band (fits SQLite INTEGER); texts sharing a key are candidates.

    The band number is part of each key, so equal rows in different bands do not collide.
    """
    if _too_short(sig):
        return []
    rows = np.ascontiguousarray(sig, dtype=np.uint64).reshape(BANDS, ROWS)
    return [
        int.from_bytes(
            hashlib.blake2b(band.tobytes(), digest_size=8, person=b"band%04d" % number).digest(),
            "little",
            signed=True,
        )
        for number, band in enumerate(rows)
    ]


def estimate_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two texts' shingle sets; 0.0 if either is too short."""
    if a.shape != b.shape or _too_short(a) or _too_short(b):
        return 0.0
    return float(np.count_nonzero(a == b)) / a.size


class NearDuplicateIndex:
    """In-memory LSH index: which earlier signatures are near duplicates of a new one."""

    def __init__(self, threshold: float = NEAR_DUPLICATE_THRESHOLD) -> None:
        self.threshold = threshold
        self._buckets: dict[int, list[str]] = {}
        self._signatures: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def add(self, article_id: str, sig: np.ndarray) -> None:
        """Index a signature; too-short texts are not indexed (they never match)."""
        keys = band_keys(sig)
        if not keys or article_id in self._signatures:
            return
        self._signatures[article_id] = sig
        for key in keys:
            self._buckets.setdefault(key, []).append(article_id)

    def find(self, sig: np.ndarray) -> list[tuple[str, float]]:
        """Indexed ids at or above the threshold, most similar first (ties by id)."""
        candidates = {aid for key in band_keys(sig) for aid in self._buckets.get(key, ())}
        scored = [(aid, estimate_jaccard(sig, self._signatures[aid])) for aid in candidates]
        hits = [(aid, sim) for aid, sim in scored if sim >= self.threshold]
        return sorted(hits, key=lambda hit: (-hit[1], hit[0]))


# ---------------------------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------------------------


def _normalize(text: str) -> str:
    return " ".join(text.casefold().split())


def _word_hashes(words: list[str]) -> np.ndarray:
    """Stable 64-bit word hashes (Python's ``hash`` is salted per process), remembered across
    articles: a run's articles share most of their words, and the hash was two thirds of a
    signature's cost."""
    cache = _WORD_HASHES
    if len(cache) > WORD_HASHES_CACHED:
        cache.clear()
    table: dict[str, int] = {}
    for word in set(words):
        h = cache.get(word)
        if h is None:
            h = cache[word] = _word_hash(word)
        table[word] = h
    return np.fromiter(map(table.__getitem__, words), dtype=np.uint64, count=len(words))


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def _shingle_hashes(words: np.ndarray) -> np.ndarray:
    """Distinct hashes of every run of ``SHINGLE_WORDS`` consecutive words."""
    count = words.size - SHINGLE_WORDS + 1
    combined = words[:count].copy()
    for offset in range(1, SHINGLE_WORDS):
        combined = combined * _POLY + words[offset : offset + count]
    return np.unique(_mix(combined))


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection on 64-bit values that scrambles every bit.

    Shingle hashes are mixed once, so the cheap affine permutations ``a·x + b mod 2^64``
    (``a`` odd: a bijection) applied 128 times afterwards behave like random ones; mixing
    all 128 × n values instead would cost five times as much.
    """
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX_1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX_2
    return x ^ (x >> np.uint64(31))


def _too_short(sig: np.ndarray) -> bool:
    return bool(sig.size == 0 or np.all(sig == _MAX))


def _permutation_keys(label: str) -> np.ndarray:
    """Keys from a hash, not a PRNG, so no library upgrade can change stored signatures."""
    digest = b"".join(
        hashlib.blake2b(f"{SEED}:{label}:{i}".encode(), digest_size=8).digest()
        for i in range(NUM_PERM)
    )
    return np.frombuffer(digest, dtype="<u8").astype(np.uint64)


_MULTIPLIERS = _permutation_keys("a") | np.uint64(1)
_OFFSETS = _permutation_keys("b")


async def mark_exact_duplicates(store: Store, pending: list[Pending], report: IndexReport) -> None:
    """Mark each pending article that has the content hash of a stored or earlier one.

    Only content hashes are compared, so this runs before anything is chunked: exact
    duplicates are never embedded.
    """
    stored_by_hash = await store.ids_by_content_hash(p.content_hash for p in pending)
    in_run: dict[str, str] = {}
    for p in pending:
        aid = p.article.id
        canon = stored_by_hash.get(p.content_hash)
        if canon == aid:
            canon = None
        canon = canon or in_run.get(p.content_hash)
        if canon and canon != aid:
            p.canonical_id, p.dup_kind, p.similarity = canon, "exact", 1.0
            report.duplicates += 1
            continue
        in_run.setdefault(p.content_hash, aid)


async def mark_near_duplicates(store: Store, pending: list[Pending], report: IndexReport) -> None:
    """Mark each pending article a near duplicate of a stored or earlier one.

    MinHash bands shared, then estimated Jaccard over ``NEAR_DUPLICATE_THRESHOLD``; a near
    duplicate points at its match's canonical copy. Exact duplicates (see
    :func:`mark_exact_duplicates`) are skipped. The stored side is read in two queries for the
    whole run, so it must run before the run writes any article.
    """
    todo = [p for p in pending if p.dup_kind != "exact"]
    await asyncio.to_thread(_sign, todo)
    members = await store.articles_by_band(sorted({k for p in todo for k in p.band_keys}))
    candidates = [_stored_candidates(p, members) for p in todo]
    sigs = await store.signatures(sorted(set().union(*candidates)))
    await asyncio.to_thread(_judge, todo, candidates, sigs, report)


def _sign(pending: list[Pending]) -> None:
    for p in pending:
        p.signature = minhash(p.article.text)
        p.band_keys = band_keys(p.signature)


def _stored_candidates(p: Pending, members: dict[int, set[str]]) -> list[str]:
    """Stored articles sharing a band with ``p``, in id order (ties go to the first)."""
    found = set().union(*(members.get(k, set()) for k in p.band_keys))
    found.discard(p.article.id)
    return sorted(found)


def _judge(
    todo: list[Pending],
    candidates: list[list[str]],
    sigs: dict[str, tuple[bytes, str | None]],
    report: IndexReport,
) -> None:
    near = NearDuplicateIndex()
    canonical_of: dict[str, str] = {}
    for p, stored in zip(todo, candidates, strict=True):
        if not p.band_keys or p.signature is None:
            continue
        aid = p.article.id
        best: tuple[str, float] | None = None
        for cid in stored:
            if cid not in sigs:
                continue
            blob, ccanon = sigs[cid]
            sim = estimate_jaccard(p.signature, np.frombuffer(blob, dtype=np.uint64))
            if sim >= NEAR_DUPLICATE_THRESHOLD and (best is None or sim > best[1]):
                best = (ccanon or cid, sim)
        for cid, sim in near.find(p.signature):
            if cid != aid and (best is None or sim > best[1]):
                best = (canonical_of.get(cid, cid), sim)
        if best and best[0] != aid:
            p.canonical_id, p.dup_kind, p.similarity = best[0], "near", best[1]
            canonical_of[aid] = best[0]
            report.near_duplicates += 1
        near.add(aid, p.signature)
