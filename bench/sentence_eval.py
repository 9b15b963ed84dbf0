"""Score the best-sentence re-ranking (index/search/sentence_match.py) on captures from
bench/fusion_capture.py, in memory, with the passages' texts and the keyword index's document
frequencies read from the store the capture was made on.

    python bench/sentence_eval.py DATA_DIR CAPTURE.pkl [weight,head,prefix,type_bonus ...]

Article-level hit@1/3/5 per question file, fused without and with each variant (the model's
shipped one when none is given). Questions are also split in two by the *subject* of their
gold article (its title without the "(n)" part numbering Wikipedia-style sets, in alternate
order), so that a constant chosen on one half can be checked on the other (docs/retrieval.md).
A prose date that empties the lists is dropped as ``Retriever.answer`` drops it; questions
with time words get the recency prior, as in the hybrid. Last line: the time per question of
fusing alone and of fusing then re-ranking (sentence caches cleared first), and their ratio,
measured in the same run.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import sqlite3
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.search.fusion import evidence, fuse, params_for  # noqa: E402
from index.search.recency import recency_cue, recency_weights  # noqa: E402
from index.search.sentence_match import (  # noqa: E402
    SentenceParams,
    clear_cache,
    question_terms,
    rerank,
)

KS = (1, 3, 5)


def read_store(db: Path) -> tuple[dict[str, int], int, dict, dict[str, str]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.execute("CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, chunks_fts, 'row')")
    df = {t: d for t, d in con.execute("SELECT term, doc FROM temp.v")}
    n = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
    texts = {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT c.id, c.text, a.title FROM chunks c JOIN articles a ON a.id = c.article_id")}
    titles = {r[0]: r[1] for r in con.execute("SELECT id, title FROM articles")}
    return df, n, texts, titles


def lists(row: dict) -> tuple[list, list, float]:
    hard = row["lists"]["hard"]
    use = "soft" if "soft" in row["lists"] and (not hard[1] or row.get("relative")) else "hard"
    d, b = row["lists"][use]
    return d, b, row["match"][use]


def ranking(row: dict, model: str, sp: SentenceParams, store: tuple) -> list[str]:
    df, n, texts, _ = store
    p = params_for(model)
    d, b, match = lists(row)
    d, b = d[: p.dense_candidates], b[: p.bm25_candidates]
    meta = row["meta"]
    ev = evidence(d, b, match, row.get("lang"), {c: m[1] for c, m in meta.items()},
                  {c: m[0] for c, m in meta.items()})
    cue = recency_cue(row["question"])
    boost = (recency_weights({c: m[2] for c, m in meta.items()}, row["now"], cue)
             if cue is not None else None)
    ranked = fuse(d, b, ev, p, boost=boost)
    if sp.weight > 0:
        terms = question_terms(row["query"], row["question"], df, n, sp)
        ranked = rerank(ranked, texts, terms, sp, boost=boost)
    return [r.chunk_id for r in ranked]


def hits(rows: list[dict], fn) -> list[float]:
    tot = [0] * len(KS)
    for row in rows:
        seen: list[str] = []
        for c in fn(row):
            a = row["meta"].get(c, (None,))[0]
            if a and a not in seen:
                seen.append(a)
        for i, k in enumerate(KS):
            tot[i] += bool(row["gold"] & set(seen[:k]))
    return [round(t / max(len(rows), 1), 4) for t in tot]


def main() -> None:
    data_dir, capture = Path(sys.argv[1]), Path(sys.argv[2])
    data = pickle.loads(capture.read_bytes())
    model = data["model"]
    store = read_store(data_dir / "newsbot.sqlite3")
    titles = store[3]
    variants = [SentenceParams(0.0)]
    for spec in sys.argv[3:]:
        w, h, pre, tb = spec.split(",")
        variants.append(SentenceParams(float(w), int(h), int(pre), float(tb)))
    if len(variants) == 1:
        variants.append(params_for(model).sentence)

    def subject(row: dict) -> str:
        return re.sub(r"\s*\(\d+\)$", "", titles.get(next(iter(row["gold"])), ""))

    subjects = sorted({subject(r) for rows in data["files"].values() for r in rows})
    half = set(subjects[0::2])
    for name, rows in data["files"].items():
        a = [r for r in rows if subject(r) in half]
        b = [r for r in rows if subject(r) not in half]
        print(f"{name} n={len(rows)} (halves {len(a)}/{len(b)})")
        for sp in variants:
            def fn(row: dict, sp: SentenceParams = sp) -> list[str]:
                return ranking(row, model, sp, store)
            label = dataclasses.astuple(sp)
            print(f"  {label}: all {hits(rows, fn)}  A hit@3 {hits(a, fn)[1]}"
                  f"  B hit@3 {hits(b, fn)[1]}", flush=True)
    every = [r for rows in data["files"].values() for r in rows]
    timing(every[:500], model, variants[-1], store)


def timing(rows: list[dict], model: str, sp: SentenceParams, store: tuple) -> None:
    clear_cache()
    off = dataclasses.replace(sp, weight=0.0)
    t0 = time.perf_counter()
    for row in rows:
        ranking(row, model, off, store)
    t1 = time.perf_counter()
    for row in rows:
        ranking(row, model, sp, store)
    t2 = time.perf_counter()
    n = max(len(rows), 1)
    print(f"per question: fuse {1000 * (t1 - t0) / n:.2f} ms, fuse + re-rank "
          f"{1000 * (t2 - t1) / n:.2f} ms (x{(t2 - t1) / max(t1 - t0, 1e-9):.1f})")


if __name__ == "__main__":
    main()
