"""What holding the in-memory copy as int8 (or float16) costs in quality, on the dev set.

    python bench/compact_quality.py [--dir eval/squad-it-dev] [--precisions float32,int8,float16]

`newsbot eval` never loads the copy (one-shot commands take the Chroma and SQLite paths), and
the copy's vectors only answer filtered questions. So each dev question is asked here with a
date filter that keeps every passage (``before:2100-01-01``): its dense side is then scored
on the copy, as the bot scores "last week" questions, and its keyword side in memory. Printed
per precision: hit@1/3/5 and answer@3 of the same questions, and how often the dense top 60
of the copy is the float32 one (same ids in the same order).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.evaluation import evaluate_files  # noqa: E402
from index.models import Filters  # noqa: E402
from index.runtime import build_retriever, open_services  # noqa: E402
from index.settings import Settings  # noqa: E402

FILTER = "before:2100-01-01 "


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=ROOT / "eval" / "squad-it-dev")
    ap.add_argument("--precisions", default="float32,int8,float16")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="newsbot-compact-") as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp) / "data")  # type: ignore[call-arg]
        files = []
        for path in sorted(args.dir.glob("questions-*.jsonl")):
            out = Path(tmp) / path.name
            rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
            out.write_text("".join(
                json.dumps(dict(r, question=FILTER + r["question"]), ensure_ascii=False) + "\n"
                for r in rows), encoding="utf-8")  # fmt: skip
            files.append(out)
        services = await open_services(settings)
        try:
            await services.index([args.dir / "articles.jsonl"])
            vectors = await services.vectors()
            tz = ZoneInfo(settings.timezone)
            questions = [json.loads(x)["question"] for f in files
                         for x in f.read_text(encoding="utf-8").splitlines()]  # fmt: skip
            qvecs = services.embedder.embed_queries([q.removeprefix(FILTER) for q in questions])
            ranked: dict[str, list[list[str]]] = {}
            for precision in args.precisions.split(","):
                s = settings.model_copy(update={"dense_matrix_precision": precision})
                r = build_retriever(s, services.store, services.embedder, vectors, tz=tz)
                m = await r.vectors_in_memory()
                assert m is not None and m.precision == precision
                sel = m.select(Filters())
                ranked[precision] = [[c for c, _ in m.top(v, sel, 60)] for v in qvecs]
                results = await evaluate_files(r, files)
                same = sum(a == b for a, b in zip(ranked[precision], ranked["float32"],
                                                   strict=True)) if "float32" in ranked else None  # fmt: skip
                for res in results:
                    d = res.as_dict([1, 3, 5])
                    print(f"{precision:8s} {d['file']:20s} n={d['n']} hit@1 {d['hit@1']:.3f}"
                          f" hit@3 {d['hit@3']:.3f} hit@5 {d['hit@5']:.3f}"
                          f" answer@3 {d['answer@3']:.3f}", flush=True)  # fmt: skip
                print(f"{precision:8s} copy {m.vector_nbytes / 2**20:.1f} MB of vectors"
                      f" ({m.vector_nbytes // len(m)} bytes a row); dense top 60 = float32's"
                      f" for {same}/{len(qvecs)} questions", flush=True)  # fmt: skip
                await r.aclose()
        finally:
            await services.close()


if __name__ == "__main__":
    asyncio.run(main())
