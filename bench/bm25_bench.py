"""The in-memory BM25 (index/search/keyword_memory.py): ``top``'s chosen path (the range
scored, an outlet's mask pruned) against scoring every posting (``top(..., exhaustive=True)``),
paired in one process, CPU time per call.

The questions are the query bench's (bench/query_bench.py ``make_questions``: a random
passage's words, per question kind), turned into the keyword side's terms and filters as
the retriever turns them (``parse_question``, ``keywords.fts_match``, the copy's
``select``); the translated second pass is not reproduced. The copy is read from a store's
saved snapshot (``memory-copy.npz``) without Chroma. Each call's result is checked to be
identical (rows, float64 scores bit for bit, order). No run of postings' parts is kept
between calls (``VALUES_CACHED``), so every call is a first pass with nothing kept.

    python bench/bm25_bench.py /tmp/newsbot-scale/usem3-100000 [more store dirs]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import bench.query_bench as qb  # noqa: E402
import index.search.keyword_memory as keyword_memory  # noqa: E402
from index.search.chunk_matrix import ChunkMatrix  # noqa: E402
from index.search.copy_snapshot import SNAPSHOT_NAME  # noqa: E402
from index.search.fusion import FusionParams  # noqa: E402
from index.search.npz_file import decode_lines, read_meta  # noqa: E402
from index.search.query_parse import parse_question  # noqa: E402
from index.storage import keywords  # noqa: E402
from index.storage.store import Store, or_terms  # noqa: E402


def read_copy(path: Path) -> ChunkMatrix:
    """The saved copy, its vectors never fetched (only its filters and postings are used)."""
    with np.load(path, allow_pickle=False) as z:
        meta = read_meta(z)
        ids = decode_lines(z["ids"], int(meta["chunks"]))
        arrays = {k: z[k] for k in z.files if k not in ("meta", "ids", "vocab")}
        vocab = decode_lines(z["vocab"], len(arrays["kw_indptr"]) - 1)
    return ChunkMatrix.restore(ids, meta["source_keys"], meta["langs"], arrays, lambda c: {},
                               precision=meta["precision"], vocab=vocab)  # fmt: skip


async def questions(store_dir: Path, n: int) -> dict[str, list[tuple[list[str], Any]]]:
    store = await Store.open(store_dir / "newsbot.sqlite3")
    try:
        out: dict[str, list[tuple[list[str], Any]]] = {}
        for kind in qb.KINDS:
            out[kind] = []
            for q in await qb.make_questions(store, kind, n, seed=21):
                query, filters = parse_question(q.text, now=qb.NOW, tz=qb.TZ,
                                                known_sources=qb.OUTLETS)  # fmt: skip
                terms = or_terms(keywords.fts_match(query))
                if terms:
                    out[kind].append((terms, filters))
        return out
    finally:
        await store.close()


def run(store_dir: Path, n: int, repeats: int) -> None:
    qs = asyncio.run(questions(store_dir, n))
    t0 = time.perf_counter()
    m = read_copy(store_dir / SNAPSHOT_NAME)
    k = m.keywords
    assert k is not None
    print(f"{store_dir.name}: {len(m)} rows, {len(k.vocab)} terms, copy read in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
    limit = FusionParams().bm25_candidates
    # Every call cold: kept parts would make the repeats free, and the translated second
    # pass they are kept for is not reproduced here.
    keyword_memory.VALUES_CACHED = 0
    for kind, items in qs.items():
        plan: list[float] = []
        sels = []
        for _, f in items:
            c0 = time.thread_time()
            sels.append(None if f.is_empty() else m.select(f))
            plan.append(time.thread_time() - c0)
        for (terms, _), sel in zip(items, sels, strict=True):  # warm: the terms' bounds
            k.top(terms, limit, *(() if sel is None else (sel.lo, sel.hi, sel.mask)))
        old: list[float] = []
        new: list[float] = []
        for rep in range(repeats):
            for i, ((terms, _), sel) in enumerate(zip(items, sels, strict=True)):
                args = () if sel is None else (sel.lo, sel.hi, sel.mask)
                got = {}
                for way in (("old", "new") if (i + rep) % 2 else ("new", "old")):
                    fn = partial(k.top, exhaustive=True) if way == "old" else k.top
                    c0 = time.thread_time()
                    got[way] = fn(terms, limit, *args)
                    (old if way == "old" else new).append(time.thread_time() - c0)
                a, b = got["old"], got["new"]
                if a[0].tolist() != b[0].tolist() or a[1].tobytes() != b[1].tobytes():
                    raise SystemExit(f"different results for {terms} ({kind})")
        terms_n = statistics.median(len(t) for t, _ in items)
        print(f"  {kind:10s} {len(items)} questions (median {terms_n:.0f} terms): CPU ms per "
              f"call, median old {1e3 * statistics.median(old):.2f} new "
              f"{1e3 * statistics.median(new):.2f} (mean {1e3 * statistics.mean(old):.2f} / "
              f"{1e3 * statistics.mean(new):.2f}, p95 {1e3 * qb.percentile(old, 0.95):.2f} / "
              f"{1e3 * qb.percentile(new, 0.95):.2f}), ratio of medians "
              f"{statistics.median(old) / max(statistics.median(new), 1e-9):.1f}; filter plan "
              f"(select) {1e3 * statistics.median(plan):.2f}", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stores", nargs="+", type=Path)
    ap.add_argument("--questions", type=int, default=30, help="per question kind")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    for path in args.stores:
        run(path, args.questions, args.repeats)


if __name__ == "__main__":
    main()
