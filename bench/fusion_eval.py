"""Score fusion and recency variants on captures from bench/fusion_capture.py, in memory.

    python bench/fusion_eval.py CAPTURE.pkl [CAPTURE.pkl ...]

Article-level hit@1/3/5 per question file (passages → first occurrence of each article),
for bm25, dense, the fusion with the match fraction only ("old"), with the list evidence
("new"), and with the date filter of dated questions replaced by the recency prior.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.search.fusion import Evidence, evidence, fuse, params_for  # noqa: E402
from index.search.recency import recency_cue, recency_weights  # noqa: E402

KS = (1, 3, 5)


def article_hits(order: list[str], meta: dict, gold: set[str]) -> list[int]:
    seen: list[str] = []
    for c in order:
        m = meta.get(c)
        if m and m[0] not in seen:
            seen.append(m[0])
        if len(seen) >= max(KS):
            break
    return [int(bool(gold & set(seen[:k]))) for k in KS]


Ranker = Callable[[dict, str], list[str]]


def score(rows: list[dict], fn: Ranker) -> list[float]:
    tot = [0] * len(KS)
    for row in rows:
        variant = "soft" if "soft" in row["lists"] and row.get("use_soft") else "hard"
        for i, h in enumerate(article_hits(fn(row, variant), row["meta"], row["gold"])):
            tot[i] += h
    return [round(t / len(rows), 3) for t in tot]


def bm25(row: dict, v: str) -> list[str]:
    return [c for c, _ in row["lists"][v][1]]


def dense(row: dict, v: str) -> list[str]:
    return [c for c, _ in row["lists"][v][0]]


def fused(model: str, *, confident: bool = True, recency: bool = False) -> Ranker:
    p = params_for(model)

    def run(row: dict, v: str) -> list[str]:
        d, b = row["lists"][v]
        d, b = d[: p.dense_candidates], b[: p.bm25_candidates]
        langs = {c: m[1] for c, m in row["meta"].items()}
        arts = {c: m[0] for c, m in row["meta"].items()}
        ev = (evidence(d, b, row["match"][v], row.get("lang"), langs, arts) if confident
              else Evidence(match=row["match"][v]))
        boost = None
        cue = recency_cue(row["question"]) if recency else None
        if cue is not None:
            dates = {c: m[2] for c, m in row["meta"].items()}
            boost = recency_weights(dates, row["now"], cue)
        return [r.chunk_id for r in fuse(d, b, ev, p, boost=boost)]

    return run


def main() -> None:
    for path in sys.argv[1:]:
        data = pickle.loads(Path(path).read_bytes())
        model = data["model"]
        print(f"== {path} ({model})")
        for name, rows in data["files"].items():
            print(f"  {name} n={len(rows)}")
            print("    bm25    ", score(rows, bm25))
            print("    dense   ", score(rows, dense))
            print("    old     ", score(rows, fused(model, confident=False)))
            print("    new     ", score(rows, fused(model)))
            for row in rows:  # vague time words: no date filter, a recency prior instead
                row["use_soft"] = True
            print("    new+time", score(rows, fused(model, recency=True)))


if __name__ == "__main__":
    main()
