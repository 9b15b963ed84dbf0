"""Fusion tuning: cache each question's dense and keyword candidates once, then score
fusion variants in memory (seconds instead of minutes per variant).

    python bench/tune_fusion.py DATA_DIR EVAL_DIR [--model minilm]

DATA_DIR must already hold the EVAL_DIR articles (e.g. after `newsbot eval EVAL_DIR
--data-dir DATA_DIR`). Prints hit@1/3/5 per question file for bm25, dense and a grid of
fusion parameters. Article-level ranking only (passages → first article occurrence), which is
what hit@k measures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import pickle
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.embed import make_embedder  # noqa: E402
from index.models import Filters  # noqa: E402
from index.runtime import build_retriever, open_services  # noqa: E402
from index.search.fusion import FusionParams, fuse, match_fraction  # noqa: E402
from index.settings import Settings  # noqa: E402
from index.storage import keywords  # noqa: E402


async def collect(data_dir: Path, eval_dir: Path, model: str) -> dict:
    settings = Settings(_env_file=None, data_dir=data_dir, embedding_model=model)
    services = await open_services(settings, make_embedder(settings))
    vectors = await services.vectors()
    r = build_retriever(settings, services.store, services.embedder, vectors)
    out: dict = {}
    for qf in sorted(eval_dir.glob("questions-*.jsonl")):
        qs = [json.loads(line) for line in qf.open()]
        vecs = services.embedder.embed_queries([q["question"] for q in qs])
        rows = []
        for q, v in zip(qs, vecs, strict=True):
            dense = await r.store_candidates.dense(v, Filters(), r.params.dense_candidates)
            groups = keywords.query_terms(q["question"])
            bm25 = await services.store.fts_search(keywords.fts_match(q["question"]), 60)
            cov = await r.coverage(groups) if bm25 else 0.0
            recs = await services.store.chunk_records([c for c, _ in dense] + [c for c, _ in bm25])
            art = {c: rec.article_id for c, rec in recs.items()}
            mf = {c: match_fraction(groups, recs[c]) for c, _ in bm25[:3] if c in recs}
            rows.append((q["article_id"], dense, bm25, cov, art, mf))
        out[qf.name] = rows
    await services.close()
    return out


def hits(order: list[str], art: dict, gold: str, ks=(1, 3, 5)) -> list[int]:
    seen: list[str] = []
    for c in order:
        a = art.get(c)
        if a and a not in seen:
            seen.append(a)
        if len(seen) >= max(ks):
            break
    return [int(gold in seen[:k]) for k in ks]


def evaluate(data: dict, fn) -> dict:
    res = {}
    for name, rows in data.items():
        tot = [0, 0, 0]
        for gold, dense, bm25, _cov, art, mf in rows:
            order = fn(dense, bm25, max(mf.values(), default=0.0))
            for i, h in enumerate(hits(order, art, gold)):
                tot[i] += h
        res[name] = [round(t / len(rows), 3) for t in tot]
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args()
    cache = args.cache or (args.data_dir / f"tune-{args.model}.pkl")
    if cache.exists():
        data = pickle.loads(cache.read_bytes())
    else:
        data = asyncio.run(collect(args.data_dir, args.eval_dir, args.model))
        cache.write_bytes(pickle.dumps(data))

    print("bm25 ", evaluate(data, lambda d, b, c: [x for x, _ in b]))
    print("dense", evaluate(data, lambda d, b, c: [x for x, _ in d]))
    grid = itertools.product([0.5, 1.0, 2.0], [1.0, 2.0], [0.0, 1.0])
    for dw, dp, bp in grid:
        p = FusionParams(dense_weight=dw, dense_power=dp, bm25_power=bp)
        r = evaluate(data, lambda d, b, m, p=p: [x.chunk_id for x in fuse(d, b, m, p)])
        print(f"fuse dense_weight={dw} dense_power={dp} bm25_power={bp}", r)


if __name__ == "__main__":
    main()
