"""The word translation (index/search/translation.py) checked on page-split halves, through
the real answer path.

    python bench/translation_eval.py DATA_DIR EVAL_DIR [--files en] [--spec bar,per_word,dense,bm25 ...]

DATA_DIR must already hold EVAL_DIR's articles (``newsbot eval EVAL_DIR --data-dir DATA_DIR``).
Every question of the files whose name contains ``--files`` is answered as ``newsbot eval``
answers it (``Retriever.answer``, relevance gate and padding included), with the translation
off, with the model's shipped parameters, and with each ``--spec``. The questions are split
in two by the *subject* of their gold article, as bench/sentence_eval.py splits them (the
title without the "(n)" part numbering, alternate subjects in two halves), so a constant
chosen on half A can be checked on half B (docs/retrieval.md).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sentence_eval import read_store  # noqa: E402
from index.evaluation import FileResult, load_questions, score_answer  # noqa: E402
from index.runtime import build_retriever, open_services  # noqa: E402
from index.settings import Settings  # noqa: E402

KS = (1, 3, 5)


def subjects(db: Path) -> dict[str, str]:
    """Article id → its subject (the title without its "(n)" part number)."""
    titles = read_store(db)[3]
    return {i: re.sub(r"\s*\(\d+\)$", "", t or "") for i, t in titles.items()}


async def run(data_dir: Path, eval_dir: Path, files: str, specs: list[str]) -> None:
    settings = Settings(_env_file=None, data_dir=data_dir)
    services = await open_services(settings)
    base = build_retriever(settings, services.store, services.embedder,
                           await services.vectors())
    shipped = base.params.translate
    variants = {"off": dataclasses.replace(shipped, weight=0.0),
                f"shipped {dataclasses.astuple(shipped)}": shipped}
    for spec in specs:
        bar, per_word, nd, nb = spec.split(",")
        xl = dataclasses.replace(shipped, weight=shipped.weight or 1.0, bar=float(bar),
                                 per_word=int(per_word), dense_passages=int(nd),
                                 bm25_passages=int(nb))
        variants[f"spec {spec}"] = xl
    subject = subjects(data_dir / "newsbot.sqlite3")
    all_subjects = sorted(set(subject.values()))
    half_a = set(all_subjects[0::2])
    for path in sorted(eval_dir.glob("questions-*.jsonl")):
        if files not in path.name:
            continue
        qs = load_questions(path)
        print(f"{path.name} n={len(qs)}", flush=True)
        for name, xl in variants.items():
            r = base.with_params(dataclasses.replace(base.params, translate=xl))
            res = {"all": FileResult("all"), "A": FileResult("A"), "B": FileResult("B")}
            passages = max(KS) * settings.max_passages_per_article
            for i in range(0, len(qs), 32):
                part = qs[i : i + 32]
                answers = await asyncio.gather(*(
                    r.answer(q["question"], k=passages,
                             now=q["asked"].replace(tzinfo=r.tz) if q["asked"] else None)
                    for q in part))
                for q, ans in zip(part, answers, strict=True):
                    half = "A" if subject.get(next(iter(q["gold"])), "") in half_a else "B"
                    for key in ("all", half):
                        score_answer(ans, q["gold"], q.get("answers", []), KS, res[key])
            line = "  ".join(
                f"{k} (n={v.n}) hit@1/3 {v.rate(v.hits.get(1, 0)):.3f}/"
                f"{v.rate(v.hits.get(3, 0)):.3f} answer@3 {v.rate(v.answer3):.3f}"
                for k, v in res.items())
            print(f"  {name}: {line}", flush=True)
    await services.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("--files", default="")
    ap.add_argument("--spec", action="append", default=[])
    args = ap.parse_args()
    asyncio.run(run(args.data_dir, args.eval_dir, args.files, args.spec))


if __name__ == "__main__":
    main()
