"""The growing synthetic store of bench/scale_bench.py: query_bench's corpus, built so that
it can be extended from N to M chunks without starting over.

query_bench draws its 100k store from one random sequence; at a million chunks that build
(one Zipf draw and one Snowball stem per word) takes hours on a shared 2-core machine. Here
article ``i`` comes from its own seed, so the store can grow by checkpoints (100k, 300k,
1M...) and be measured at each; the text of a chunk is a run of sentences drawn from its
topic's pool of 400 (drawn and stemmed once), so the keyword index still sees Zipf word
frequencies and topic words, and no two chunks are the same text. Vectors, dates, outlets
and near-duplicates are as in query_bench: the topic's vector (encoded with the real model)
plus noise, uniform over 2024-2025, 20 outlets of Zipf sizes, 5% near-duplicates.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench import query_bench as qb
from index.embed import Embedder
from index.models import Article, Chunk
from index.settings import Settings
from index.storage import keywords
from index.storage.store import ArticleWrite, Store
from index.storage.vectors import VectorStore

BUILD_KEY = "scale_bench"
BUILD_VERSION = "1"
SENTENCES_PER_TOPIC = 400
BATCH_CHUNKS = 5000  # Chroma refuses adds above 5461


@dataclass(slots=True)
class Pool:
    langs: list[str]  # per topic
    sentences: list[list[str]]  # per topic
    stems: list[list[str]]  # per topic, the FTS5 body of each sentence
    lengths: list[np.ndarray]  # per topic, words per sentence
    vectors: np.ndarray  # per topic, unit


def _pool(embedder: Embedder, cache: Path, seed: int) -> Pool:
    rng = np.random.default_rng([seed, 0])
    vocab = qb.vocabulary()
    topics: list[qb.Topic] = []
    for t in range(qb.TOPICS):
        lang = "it" if t % 5 < 3 else "en"
        words, _ = vocab[lang]
        pool = [w for w in words[150:4000] if w not in keywords.STOPWORDS]
        topics.append(qb.Topic(lang, list(rng.choice(pool, size=qb.TOPIC_WORDS, replace=False))))
    sentences, stems, lengths = [], [], []
    for topic in topics:
        words, p = vocab[topic.lang]
        text = qb.draw_sentences(rng, words, p, topic, SENTENCES_PER_TOPIC * 16)
        sents = [s.strip() for s in text.split(".") if s.strip()]
        sents = [s + "." for s in sents]
        sentences.append(sents)
        stems.append([keywords.analyze(s, topic.lang) for s in sents])
        lengths.append(np.array([s.count(" ") + 1 for s in sents]))
    vec_file = cache / f"topics-{embedder.model_id.replace(':', '_').replace('/', '_')}.npy"
    if vec_file.exists():
        vecs = np.load(vec_file)
    else:
        vecs = embedder.embed_passages([" ".join(t.words) for t in topics])
        cache.mkdir(parents=True, exist_ok=True)
        np.save(vec_file, vecs)
    return Pool([t.lang for t in topics], sentences, stems, lengths, np.asarray(vecs))


def _topic_of(seed: int, a_i: int) -> int:
    return int(np.random.default_rng([seed, 1, a_i]).integers(0, qb.TOPICS))


def _article(pool: Pool, seed: int, a_i: int, n: int, dim: int) -> tuple[ArticleWrite, np.ndarray, list[dict[str, Any]]]:
    t_i = _topic_of(seed, a_i)
    rng = np.random.default_rng([seed, 2, a_i])
    lang = pool.langs[t_i]
    sents, stems, lens = pool.sentences[t_i], pool.stems[t_i], pool.lengths[t_i]
    texts, bodies = [], []
    title_i = int(rng.integers(0, len(sents)))
    title = sents[title_i].rstrip(".")
    for _ in range(n):
        want = int(rng.integers(110, 190))
        picks: list[int] = []
        words = 0
        while words < want:
            j = int(rng.integers(0, len(sents)))
            picks.append(j)
            words += int(lens[j])
        texts.append(" ".join(sents[j] for j in picks))
        # analyze() of a concatenation is the concatenation of analyze(): tokens never span
        # the spaces between sentences.
        bodies.append(" ".join([stems[title_i], *(stems[j] for j in picks)]))
    aid = f"scale-{a_i:07d}"
    chunks: list[Chunk] = []
    text = ""
    for o, ct in enumerate(texts):
        if text:
            text += "\n"
        chunks.append(Chunk(aid, o, len(text), len(text) + len(ct), ct))
        text += ct
    published = qb.FIRST_DAY + timedelta(seconds=int(rng.integers(0, qb.DAYS * 86400)))
    outlet_p = 1.0 / np.arange(1, len(qb.OUTLETS) + 1) ** 0.9
    source = qb.OUTLETS[int(rng.choice(len(qb.OUTLETS), p=outlet_p / outlet_p.sum()))]
    canonical = None
    if a_i > 0 and rng.random() < qb.NEAR_DUP_SHARE:
        for _ in range(50):  # an earlier article of the same topic, if one is near
            j = int(rng.integers(max(0, a_i - 4000), a_i))
            if _topic_of(seed, j) == t_i:
                canonical = f"scale-{j:07d}"
                break
    art = Article(
        id=aid, text=text, title=title, url=f"https://{source}.example/{aid}",
        published=published, source=source, lang=lang, origin="bench",
    )  # fmt: skip
    cids = [f"{aid}::{a_i:012x}::{c.ord}" for c in chunks]
    write = ArticleWrite(
        article=art, content_hash=f"{a_i:012x}", raw_hash=None, chunks=chunks, chunk_ids=cids,
        fts_bodies=bodies, band_keys=[], canonical_id=canonical,
        dup_kind="near" if canonical else None, similarity=0.9 if canonical else None,
    )  # fmt: skip
    noise = qb.unit_rows(rng.standard_normal((n, dim)))
    vecs = qb.unit_rows(0.6 * pool.vectors[t_i] + 0.8 * noise)
    meta = {"article_id": aid, "ts": int(published.timestamp()), "source": source, "lang": lang}
    return write, vecs, [meta] * n


async def built_chunks(settings: Settings) -> int:
    """Chunks of the growing store built so far (0: none, or another build)."""
    if not settings.sqlite_path.exists():
        return 0
    store = await Store.open(settings.sqlite_path)
    try:
        key = await store.get_meta(BUILD_KEY)
    finally:
        await store.close()
    if not key or not key.startswith(f"{BUILD_VERSION}|"):
        return 0
    return int(key.split("|")[1])


async def grow(settings: Settings, embedder: Embedder, target: int, seed: int = 7) -> float:
    """Extend the store at ``settings.data_dir`` to ``target`` chunks (whole articles of
    query_bench's 20); the seconds it took."""
    have = await built_chunks(settings)
    if have >= target:
        return 0.0
    t0 = time.perf_counter()
    pool = _pool(embedder, settings.data_dir, seed)
    store = await Store.open(settings.sqlite_path)
    vectors = VectorStore.open(settings, embedder.model_id, embedder.dim)
    await store.set_meta("embedding_model", f"{embedder.model_id}|{embedder.dim}")
    run_id, _ = await store.begin_run()
    per = qb.CHUNKS_PER_ARTICLE
    a_i, written = have // per, have
    batch: list[ArticleWrite] = []
    ids: list[str] = []
    vecs: list[np.ndarray] = []
    metas: list[dict[str, Any]] = []
    last = time.perf_counter()
    while written < target:
        w, v, m = _article(pool, seed, a_i, per, embedder.dim)
        batch.append(w)
        ids.extend(w.chunk_ids)
        vecs.append(v)
        metas.extend(m)
        a_i += 1
        written += per
        if len(ids) + per > BATCH_CHUNKS or written >= target:
            import asyncio

            await asyncio.to_thread(vectors.upsert, ids, np.concatenate(vecs), metas)
            await store.write_articles(batch, run_id)
            await store.set_meta(BUILD_KEY, f"{BUILD_VERSION}|{written}")
            batch, ids, vecs, metas = [], [], [], []
            if time.perf_counter() - last > 30 or written >= target:
                last = time.perf_counter()
                print(f"  built {written}/{target} chunks ({last - t0:.0f}s)", file=sys.stderr,
                      flush=True)  # fmt: skip
    await store.finish_run(run_id, {"bench": True})
    await store.db.execute("PRAGMA optimize")
    await store.close()
    return time.perf_counter() - t0
