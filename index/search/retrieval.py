"""Hybrid retrieval: a question parsed, its dense and keyword candidates gathered
(index/search/candidates.py), fused (index/search/fusion.py), gated and quoted
(index/search/hits.py).

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from index.digest.stories import build_digest
from index.embed import Embedder
from index.embed.threads import blas_on_one_thread
from index.ingest.cleaning import default_language_detector
from index.models import Answer, Filters, Hit
from index.search.candidates import Candidates
from index.search.chunk_matrix import ChunkMatrix
from index.search.corpus_copy import CorpusCopy
from index.search.encoder import Nearest, QueryEncoder
from index.search.fusion import (
    MODEL_PARAMS,
    FusionParams,
    Ranked,
    Search,
    best_match,
    evidence,
    fuse,
    match_fraction,
    params_for,
)
from index.search.hits import FIRST_RECORDS, build_hits, load_records, story_hits
from index.search.memory_candidates import MemoryCandidates
from index.search.padding import earned
from index.search.query_parse import is_filler, parse_question_full
from index.search.recency import WEEK_CUE, RecencyCue, recency_cue, recency_weights
from index.search.sentence_match import question_terms, rerank
from index.search.store_candidates import StoreCandidates
from index.search.translation import (
    Translations,
    WordTranslator,
    match_expression,
    question_words,
    translate_question,
    translated_groups,
)
from index.search.word_cache import WORDS_NAME
from index.settings import Settings
from index.storage import keywords
from index.storage.store import ChunkRecord, Store
from index.storage.vectors import VectorStore, VectorsUnavailable

__all__ = [
    "MODEL_PARAMS", "FusionParams", "Mode", "Nearest", "QueryEncoder", "Ranked", "Retriever",
    "Search", "fuse", "match_fraction", "params_for",
]  # fmt: skip

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "bm25"]


# A question that is only a period ("cosa è successo oggi?") gets its top stories from at
# most this many of its newest articles (index/digest/stories.py groups them all pairwise), and a
# period open at the start ("prima del 2020") starts here.
PERIOD_ARTICLES = 3000
PERIOD_START = datetime(1900, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CorpusFacts:
    sources: frozenset[str]  # outlet keys a question may name
    newest: datetime | None  # the newest dated article: where a recency prior may centre


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
        blas_on_one_thread()  # a question's products are small (index/embed/threads.py)
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.vectors = vectors
        self.params = params or params_for(embedder.model_id)
        # The settings' zone unless told otherwise: "oggi" means the same day everywhere.
        self.tz = tz or ZoneInfo(settings.timezone)
        self.encoder = QueryEncoder(embedder, vectors)
        self.translator = WordTranslator(embedder, self.params.translate.cache_words,
                                         settings.data_dir / WORDS_NAME)
        self._facts: CorpusFacts | None = None
        self._facts_stamp: object = None
        self.store_candidates = StoreCandidates(store, vectors, self.params)
        self.memory = CorpusCopy(settings, store, vectors)

    async def corpus_facts(self) -> CorpusFacts:
        """What a question is read against, read again only when the corpus changed (other
        processes index too), not once per question."""
        stamp = await self.store.corpus_stamp()
        if self._facts is None or stamp != self._facts_stamp:
            self._facts = CorpusFacts(
                sources=frozenset(await self.store.source_keys()),
                newest=await self.store.newest_published(),
            )
            self._facts_stamp = stamp
        return self._facts

    async def known_sources(self) -> frozenset[str]:
        """The outlets a question may name."""
        return (await self.corpus_facts()).sources

    async def _recency_moment(self, now: datetime, cue: RecencyCue | None) -> datetime:
        """Where a recency prior is centred. An archive whose news all predates the cue's
        window (the built-in sample, a feed no longer read) holds nothing of "this week":
        the question can only mean the latest the archive has, so the prior is centred on
        its newest article; around ``now`` it would weigh every passage alike."""
        if cue is None:
            return now
        newest = (await self.corpus_facts()).newest
        if newest is None or newest >= now - timedelta(days=cue.window_days):
            return now
        return newest

    def invalidate(self) -> None:
        """Forget cached corpus facts after a re-index."""
        self._facts = None
        self.store_candidates.invalidate()
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
        await asyncio.to_thread(self.translator.save)

    async def candidates(self) -> Candidates:
        """Where this question's candidates come from: the in-memory copy while it matches
        the store, else Chroma and SQLite."""
        m = await self.memory.current()
        if m is None:
            return self.store_candidates
        return MemoryCandidates(m, self.store_candidates)

    def with_params(self, params: FusionParams) -> Retriever:
        """A retriever over the same corpus with other fusion parameters (a digest's wide
        topic search), sharing this one's batching encoder; it keeps no in-memory copy."""
        other = Retriever(
            self.settings, self.store, self.embedder, self.vectors, params=params, tz=self.tz
        )
        other.encoder = self.encoder
        other.translator = self.translator
        return other

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
        as_of: datetime | None = None,
    ) -> Answer:
        """``now``: the clock (``newsbot eval`` passes each question's date); ``as_of``: a
        user's "answer as of this moment" (the JSON API, ``newsbot ask --asof``), shown back
        in the reply's filters line. An ``asof:`` operator in the question wins over both."""
        k = k or self.settings.answer_k
        if as_of is not None and as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=self.tz)
        now = as_of or now or datetime.now(self.tz)
        parsed = parse_question_full(
            question, now=now, tz=self.tz, known_sources=await self.known_sources()
        )
        query, filters = parsed.query, parsed.filters
        if filters.as_of is None and as_of is not None:
            filters.as_of = as_of
        now = filters.as_of or now
        if parsed.dated and is_filler(query):
            # Only a period ("cosa è successo oggi?", "what's new today?"): nothing to search
            # for, so the period's top stories, picked as a digest picks them.
            return await self.period_answer(question, query, filters, k=k, offset=offset, now=now)
        if not query.strip():
            query = question  # only outlet/language operators: their words are all there is
        cue = recency_cue(question) if mode == "hybrid" else None
        if parsed.vague_dates and mode == "hybrid":
            # "this week", "negli ultimi giorni" in a search: a recency prior around the
            # question's moment, not a calendar cut (the article a week-asked question
            # means may be last Friday's). The single modes keep the filter as parsed.
            filters = Filters(sources=filters.sources, langs=filters.langs,
                              as_of=filters.as_of)
            cue = WEEK_CUE
        moment = await self._recency_moment(now, cue)
        search = await self.search(query, filters, mode=mode, now=moment, recency=cue,
                                   question_lang=_question_lang(query), question=question)
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
            soft = Filters(sources=filters.sources, langs=filters.langs, as_of=filters.as_of)
            retry = await self.search(question, soft, mode=mode, now=moment, recency=cue,
                                      question_lang=_question_lang(question))
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
        if mode == "hybrid":
            hits = earned(hits, query)
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
        hits = await story_hits(self.store, digest.stories[offset : offset + k])
        return Answer(question, query, filters, hits, top_stories=True)

    async def load_records(self, search: Search, chunk_ids: Sequence[str]) -> None:
        """Add the passages of ``chunk_ids`` to ``search.records``."""
        await load_records(self.store, search, chunk_ids)

    async def build_hits(self, search: Search, query: str, limit: int) -> list[Hit]:
        return await build_hits(
            self.store, search, query, limit, cap=self.settings.max_passages_per_article
        )

    async def coverage(self, groups: list[set[str]]) -> float:
        """Fraction of question words (any variant) that occur anywhere in the keyword
        index (bench/tune_fusion.py weighs fusions by it)."""
        if not groups:
            return 0.0
        present = await self.store_candidates.present_terms(t for g in groups for t in g)
        return sum(1 for g in groups if g & present) / len(groups)

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

    async def by_best_sentence(
        self,
        ranked: list[Ranked],
        records: dict[str, ChunkRecord],
        query: str,
        question: str,
        *,
        boost: dict[str, float] | None = None,
        translations: Translations | None = None,
        cands: Candidates | None = None,
    ) -> list[Ranked]:
        """The fused head re-ranked by its passages' best sentences (sentence_match.py),
        loading the head's passages into ``records``; ``translations`` (translation.py)
        count as the words they translate; ``cands`` (the question's candidates) count the
        words' documents."""
        sp = self.params.sentence
        head = [r.chunk_id for r in ranked[: sp.head] if r.chunk_id not in records]
        if head:
            records.update(await self.store.chunk_records(head))
        words = keywords.content_words(query)
        variants = sorted({v for g in translated_groups(words, translations or {}) for v in g})
        doc_freq, n_docs = await asyncio.gather(
            (cands or self.store_candidates).doc_freqs(variants), self.store.chunk_count()
        )
        terms = question_terms(query, question, doc_freq, n_docs, sp, translations,
                               self.params.translate.weight)
        texts = {c: (r.text, r.title) for c, r in records.items()}
        return rerank(ranked, texts, terms, sp, boost=boost)

    async def translate(
        self,
        query: str,
        lang: str,
        dense: Sequence[tuple[str, float]],
        bm25: Sequence[tuple[str, float]],
        records: dict[str, ChunkRecord],
    ) -> Translations:
        """The question's words translated into its first candidates' other language, if
        any (translation.py); their passages are loaded into ``records``."""
        return await translate_question(self.store, self.translator, self.params.translate,
                                        query, lang, dense, bm25, records)

    async def search(
        self,
        query: str,
        filters: Filters,
        *,
        mode: Mode = "hybrid",
        now: datetime | None = None,
        recency: RecencyCue | None = None,
        question_lang: str | None = None,
        question: str | None = None,
    ) -> Search:
        """``recency``: the soft prior a question's time words ask for, around ``now``
        (index/search/recency.py); ``question_lang`` weighs the fusion (fusion.py);
        ``question`` (the words as asked, operators and dates included) tells the kind of
        answer wanted (sentence_match.py), ``query`` by default."""
        p = self.params
        question = question or query
        groups = keywords.query_terms(query)
        dense: list[tuple[str, float]] = []
        bm25: list[tuple[str, float]] = []
        cands = await self.candidates()

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
                # Either implementation would ask Chroma unfiltered: here in the encoder's
                # batch, one worker-thread hop for the model and the query.
                _, found = await self.encoder.nearest(query, p.dense_candidates)
                return found
            return await cands.dense(self.encoder.encode(query), filters, p.dense_candidates)

        head = FIRST_RECORDS
        records: dict[str, ChunkRecord] = {}
        match = keywords.fts_match(query)

        async def run_bm25() -> list[tuple[str, float]]:
            return await cands.keyword(match, filters, p.bm25_candidates)

        async def bm25_then_passages() -> list[tuple[str, float]]:
            found = await run_bm25()
            # FTS5 is usually done first: the passages of its head meanwhile.
            records.update(await self.store.chunk_records([c for c, _ in found[:head]]))
            return found

        if mode == "hybrid" and not cands.keyword_in_process(match):
            dense, bm25 = await asyncio.gather(run_dense(), bm25_then_passages())
        else:
            # In memory, BM25 costs ~0.7 ms: after the encoding rather than beside it. The
            # one-core USE v3 encode and Chroma's query hold the interpreter lock nearly
            # throughout: BM25 and the language check beside them made them 14% slower and
            # the two together no faster (docs/benchmarks.md, the answer path's hops).
            if mode != "bm25":
                dense = await run_dense()
            if mode != "dense":
                bm25 = await run_bm25()

        # Passages of the heads of both lists only: the fused top comes from them, and
        # build_hits loads any other it reaches. With those the translation reads (the same
        # rows it would read next: one SQLite round trip instead of two).
        translating = (
            mode == "hybrid" and p.translate.weight > 0 and bool(groups)
            and question_lang in keywords.QUERY_LANGS  # a detector's "ca" is Italian misread
        )
        wanted = [*bm25[:head], *dense[:head]]
        if translating and question_words(query):
            wanted += [*dense[: p.translate.dense_passages], *bm25[: p.translate.bm25_passages]]
        missing = [c for c, _ in wanted if c not in records]
        if missing:
            records.update(await self.store.chunk_records(list(dict.fromkeys(missing))))
        own_match = best_match(groups, bm25, records)
        fused_match = own_match
        translations: Translations = {}
        if translating and question_lang is not None:
            translations = await self.translate(query, question_lang, dense, bm25, records)
            if translations:
                # The keyword side again, each word OR-ed with its translations: the list
                # an Italian question in the same words would have had. The relevance gate
                # keeps the question's own words' match: a translation is a near word, and
                # an off-topic question finds near words anywhere.
                xgroups = translated_groups(keywords.content_words(query), translations)
                bm25 = await cands.keyword(match_expression(xgroups), filters,
                                           p.bm25_candidates)
                missing = [c for c, _ in bm25[:head] if c not in records]
                if missing:
                    records.update(await self.store.chunk_records(missing))
                fused_match = best_match(xgroups, bm25, records)
        if mode == "hybrid":
            boost = None
            if recency is not None:
                rest = [c for c, _ in [*bm25, *dense] if c not in records]
                if rest:
                    records.update(await self.store.chunk_records(list(dict.fromkeys(rest))))
                boost = recency_weights(
                    {c: r.published for c, r in records.items()},
                    now or datetime.now(self.tz), recency,
                )
            ev = evidence(
                dense, bm25, fused_match, question_lang,
                {c: r.lang for c, r in records.items()},
                {c: r.article_id for c, r in records.items()},
            )
            ranked = fuse(dense, bm25, ev, p, boost=boost)
            if p.sentence.weight > 0 and groups and ranked:
                ranked = await self.by_best_sentence(ranked, records, query, question,
                                                     boost=boost, translations=translations,
                                                     cands=cands)
        elif mode == "dense":
            ranked = [Ranked(c, v, dense=v) for c, v in dense]
        else:
            ranked = [Ranked(c, v, bm25=v) for c, v in bm25]
        best_dense = max((v for _, v in dense), default=0.0)
        gap = best_dense - sum(v for _, v in dense) / len(dense) if dense else 0.0
        return Search(ranked, best_dense, own_match, gap, records, keyword_only=degraded)


def _question_lang(text: str) -> str | None:
    """The question's language when the detector is sure (short questions often leave it
    unsure: then the fusion ignores languages)."""
    return default_language_detector()(text) if text.strip() else None
