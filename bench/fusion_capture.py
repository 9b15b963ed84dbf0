"""Capture each eval question's dense and keyword candidates the way ``Retriever.answer``
gathers them (question parsed as of its ``question_date``), so fusion and recency variants
can be scored in memory (bench/fusion_eval.py) instead of re-running ``newsbot eval``.

    python bench/fusion_capture.py DATA_DIR EVAL_DIR OUT.pkl

DATA_DIR must already hold EVAL_DIR's articles (``newsbot eval EVAL_DIR --data-dir DATA_DIR``).
Questions with a relative date phrase are captured twice: with the parsed date filter and
without it (the soft variant), so a hard cut and a recency prior can be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import sys
from datetime import datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.evaluation import load_questions  # noqa: E402
from index.models import Filters  # noqa: E402
from index.runtime import build_retriever, open_services  # noqa: E402
from index.search.fusion import match_fraction  # noqa: E402
from index.search.query_parse import parse_question_full  # noqa: E402
from index.settings import Settings  # noqa: E402
from index.storage import keywords  # noqa: E402

N = 100


async def collect(data_dir: Path, eval_dir: Path) -> dict:
    settings = Settings(_env_file=None, data_dir=data_dir)
    services = await open_services(settings)
    vectors = await services.vectors()
    r = build_retriever(settings, services.store, services.embedder, vectors)
    cands = await r.candidates()
    sources = await r.known_sources()
    out: dict = {"model": services.embedder.model_id, "files": {}}
    for qf in sorted(eval_dir.glob("questions-*.jsonl")):
        qs = load_questions(qf)
        parsed = []
        for q in qs:
            now = q["asked"].replace(tzinfo=r.tz) if q["asked"] else datetime.now(r.tz)
            p = parse_question_full(q["question"], now=now, tz=r.tz, known_sources=sources)
            parsed.append((now, p, p.query if p.query.strip() else q["question"]))
        vecs = services.embedder.embed_queries([x[2] for x in parsed])
        rows = []
        for q, (now, p, query), v in zip(qs, parsed, vecs, strict=True):
            groups = keywords.query_terms(query)
            match = keywords.fts_match(query)
            variants = {"hard": p.filters}
            if p.dated:
                variants["soft"] = Filters(sources=p.filters.sources, langs=p.filters.langs)
            lists = {}
            for name, f in variants.items():
                dense = await cands.dense(v, f, N)
                bm25 = await cands.keyword(match, f, N)
                lists[name] = (dense, bm25)
            ids = {c for d, b in lists.values() for c, _ in [*d, *b]}
            recs = await services.store.chunk_records(list(ids))
            meta = {c: (rec.article_id, rec.lang, rec.published) for c, rec in recs.items()}
            mf = {
                name: max((match_fraction(groups, recs[c]) for c, _ in b[:3] if c in recs),
                          default=0.0) if groups else 0.0
                for name, (_, b) in lists.items()
            }
            rows.append({
                "id": q.get("id"), "question": q["question"], "gold": q["gold"], "answers": q.get("answers", []),
                "lang": q.get("lang"), "now": now, "query": query,
                "relative": p.relative_dates, "dated": p.dated,
                "date_from": p.filters.date_from, "date_to": p.filters.date_to,
                "lists": lists, "match": mf, "meta": meta,
            })
        out["files"][qf.name] = rows
        print(f"{qf.name}: {len(rows)}", file=sys.stderr)
    await services.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    data = asyncio.run(collect(args.data_dir, args.eval_dir))
    args.out.write_bytes(pickle.dumps(data))


if __name__ == "__main__":
    main()
