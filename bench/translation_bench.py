"""What the word translation (index/search/translation.py) adds to a question's search, and
how the translations look, on a store already holding an eval set's articles.

    python bench/translation_bench.py DATA_DIR EVAL_DIR [--questions 100] [--show 5]

For the first N questions of each question file, in the same run: ``Retriever.search`` with
the translation off, then on with a cold word-vector cache (a fresh translator per
question: every vocabulary word encoded), then on with the cache the earlier questions
filled (as a long-running bot has it). Prints the median and 90th-percentile ms of each, the
median added ms against off, and a few questions' translations. Quality is measured by
``newsbot eval``, not here.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.evaluation import load_questions  # noqa: E402
from index.ingest.cleaning import default_language_detector  # noqa: E402
from index.models import Filters  # noqa: E402
from index.runtime import build_retriever, open_services  # noqa: E402
from index.search.translation import TranslateParams, WordTranslator  # noqa: E402
from index.settings import Settings  # noqa: E402


def _stats(ms: list[float]) -> str:
    ms = sorted(ms)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"median {statistics.median(ms):7.1f} ms  p90 {p90:7.1f} ms"


async def run(data_dir: Path, eval_dir: Path, n: int, show: int) -> None:
    settings = Settings(_env_file=None, data_dir=data_dir)
    services = await open_services(settings)
    vectors = await services.vectors()
    on = build_retriever(settings, services.store, services.embedder, vectors)
    off = on.with_params(dataclasses.replace(on.params, translate=TranslateParams(weight=0.0)))
    detect = default_language_detector()
    for qf in sorted(eval_dir.glob("questions-*.jsonl")):
        qs = [q["question"] for q in load_questions(qf)[:n]]
        langs = [detect(q) for q in qs]
        await off.search(qs[0], Filters(), question_lang=langs[0])  # warm the model
        times: dict[str, list[float]] = {"off": [], "on, cold cache": [], "on, warm cache": []}
        shown = 0
        for q, lang in zip(qs, langs, strict=True):
            t0 = time.perf_counter()
            await off.search(q, Filters(), question_lang=lang)
            t1 = time.perf_counter()
            warm = on.translator
            on.translator = WordTranslator(services.embedder)
            await on.search(q, Filters(), question_lang=lang)
            t2 = time.perf_counter()
            on.translator = warm
            s = await on.search(q, Filters(), question_lang=lang)
            t3 = time.perf_counter()
            times["off"].append(1000 * (t1 - t0))
            times["on, cold cache"].append(1000 * (t2 - t1))
            times["on, warm cache"].append(1000 * (t3 - t2))
            if shown < show and lang:
                tr = await on.translate(q, lang, [(r.chunk_id, r.score) for r in s.ranked], [],
                                        s.records)
                if tr:
                    shown += 1
                    print(f"  {q}\n    " + "; ".join(
                        f"{w} → {', '.join(f'{t} {c:.2f}' for t, c in got)}"
                        for w, got in tr.items()))
        print(f"{qf.name} (n={len(qs)}):")
        base = statistics.median(times["off"])
        for name, ms in times.items():
            print(f"  {name:15s} {_stats(ms)}  added median {statistics.median(ms) - base:+7.1f} ms")
    await services.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--show", type=int, default=5)
    args = ap.parse_args()
    asyncio.run(run(args.data_dir, args.eval_dir, args.questions, args.show))


if __name__ == "__main__":
    main()
