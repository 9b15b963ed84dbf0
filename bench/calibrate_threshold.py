"""Relevance threshold calibration: answerable dev questions vs off-topic questions.

    python bench/calibrate_threshold.py DATA_DIR EVAL_DIR [--model minilm]

For each (min_dense, min_match) pair prints the share of answerable questions that would get
"nothing found" (false refusals) and the share of off-topic questions (bench/data/
negatives.jsonl) that would still get passages (false answers).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.embed import make_embedder  # noqa: E402
from index.models import Filters  # noqa: E402
from index.runtime import open_services  # noqa: E402
from index.settings import Settings  # noqa: E402


async def scores(data_dir: Path, questions: list[str], model: str) -> list[tuple[float, float, float]]:
    settings = Settings(_env_file=None, data_dir=data_dir, embedding_model=model)
    services = await open_services(settings, make_embedder(settings))
    r = await services.retriever()
    out = []
    for i in range(0, len(questions), 64):
        res = await asyncio.gather(*(r.search(q, Filters()) for q in questions[i : i + 64]))
        out.extend((s.best_dense, s.best_match, s.dense_gap) for s in res)
    await services.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("--model", default="minilm")
    args = ap.parse_args()
    pos = []
    for qf in sorted(args.eval_dir.glob("questions-*.jsonl")):
        pos += [json.loads(line)["question"] for line in qf.open()]
    neg = [json.loads(line)["question"] for line in (ROOT / "bench/data/negatives.jsonl").open()]
    ps = asyncio.run(scores(args.data_dir, pos, args.model))
    ns = asyncio.run(scores(args.data_dir, neg, args.model))
    grid = itertools.product([0.2, 0.3], [0.06, 0.08, 0.09, 0.1, 0.12], [0.5, 0.6, 0.7])
    for td, tg, tm in grid:
        def ok(d: float, m: float, g: float, td=td, tg=tg, tm=tm) -> bool:
            return (d >= td and g >= tg) or m >= tm

        fr = sum(1 for x in ps if not ok(*x)) / len(ps)
        fa = sum(1 for x in ns if ok(*x)) / len(ns)
        print(
            f"min_dense={td:.2f} min_gap={tg:.2f} min_match={tm:.1f}  "
            f"false refusals={fr:.3f}  off-topic answered={fa:.3f}"
        )


if __name__ == "__main__":
    main()
