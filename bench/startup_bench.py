"""Start-up of a serving process with and without the in-memory copy's snapshot, one run.

    python bench/startup_bench.py [--store /tmp/newsbot-scale/usem3-100000] [--runs 3]
                                  [--work /tmp/newsbot-startup] [--model usem3]

The store (bench/scale_build.py's synthetic 100k by default) is copied to ``--work`` first,
so the snapshot is written there and never into it. Then fresh serving processes, each doing
what ``newsbot serve`` does up to its first answer (``BotServices.open``) and waiting for the
copy: one with no snapshot yet (builds the copy and saves it), then per run, in alternating
order, one that builds it from Chroma and SQLite (``DENSE_MATRIX_SNAPSHOT=false``, as before)
and one that reads the snapshot. The reading process also times a reload after a write run:
the copy built again from the store with and without the vectors of the copy it has (what a
reload after a small run costs now, and what it cost before). Printed: seconds from launch
to the first answer and to the loaded copy, the ratio snapshot / rebuild of the copy's load
per run, memory (VmRSS at first answer and after the copy, VmHWM), the snapshot's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scale_bench import proc_memory  # noqa: E402
from index.search.copy_snapshot import SNAPSHOT_NAME  # noqa: E402
from index.settings import Settings  # noqa: E402

QUESTION = "governo riforma della giustizia"


async def probe(args: argparse.Namespace) -> dict[str, Any]:
    from telegram.ext import Application

    from bot.services import BotServices
    from bot.settings import BotSettings
    from index.search.chunk_matrix import ChunkMatrix

    launched = float(os.environ["STARTUP_BENCH_LAUNCHED"])
    settings = BotSettings(  # type: ignore[call-arg]
        _env_file=None, data_dir=args.probe, embedding_model=args.model,
        dense_matrix_snapshot=not args.no_snapshot,
    )  # fmt: skip
    app = Application.builder().token("1:startup-bench").build()  # never started: no network
    services = await BotServices.open(settings, application=app)
    r = services.retriever
    try:
        await r.answer(QUESTION)
        first = time.time() - launched
        mem_first = proc_memory()
        m = await r.vectors_in_memory()
        copy = time.time() - launched
        if m is None:
            raise SystemExit("the copy did not load (DENSE_MATRIX_MAX_CHUNKS?)")
        memory = r.memory
        out: dict[str, Any] = {
            "how": "read" if memory.snapshot_reads else "built",
            "saved": memory.snapshot_writes, "chunks": len(m),
            "first_answer_s": round(first, 2), "copy_ready_s": round(copy, 2),
            "copy_mb": round(m.nbytes / 2**20, 1), "memory_at_first_answer": mem_first,
            "memory_after_copy": proc_memory(),
        }  # fmt: skip
        if args.reload:
            store = services.index.store
            for label, reuse in (("reload_reusing_s", m), ("reload_whole_s", None)):
                t0 = time.perf_counter()
                facets = await store.chunk_facets()
                bodies = await store.fts_bodies()
                again = await asyncio.to_thread(
                    ChunkMatrix, facets, r.vectors.get_vectors, bodies,
                    precision=settings.dense_matrix_precision, reuse=reuse,
                )  # fmt: skip
                out[label] = round(time.perf_counter() - t0, 2)
                del again
        return out
    finally:
        await services.close()


def run_probe(args: argparse.Namespace, path: Path, *, snapshot: bool,
              reload: bool = False) -> dict[str, Any]:  # fmt: skip
    cmd = [sys.executable, __file__, "--probe", str(path), "--model", args.model]
    if not snapshot:
        cmd.append("--no-snapshot")
    if reload:
        cmd.append("--reload")
    env = dict(os.environ, STARTUP_BENCH_LAUNCHED=repr(time.time()))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the probe of {path} failed ({proc.returncode})")
    res = dict(json.loads(proc.stdout.decode().strip().splitlines()[-1]))
    print(json.dumps(res), file=sys.stderr, flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, default=Path("/tmp/newsbot-scale/usem3-100000"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/newsbot-startup"))
    ap.add_argument("--model", default=Settings.model_fields["embedding_model"].default)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--no-snapshot", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--reload", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(asyncio.run(probe(args))))
        return
    if args.work.exists():
        shutil.rmtree(args.work)
    shutil.copytree(args.store, args.work)
    (args.work / SNAPSHOT_NAME).unlink(missing_ok=True)
    first = run_probe(args, args.work, snapshot=True)
    assert first["how"] == "built" and first["saved"], first
    size = (args.work / SNAPSHOT_NAME).stat().st_size
    runs: list[dict[str, dict[str, Any]]] = []
    for i in range(args.runs):
        order = ("rebuild", "snapshot") if i % 2 == 0 else ("snapshot", "rebuild")
        run = {}
        for what in order:
            run[what] = run_probe(args, args.work, snapshot=what == "snapshot",
                                  reload=what == "snapshot")  # fmt: skip
        assert run["snapshot"]["how"] == "read" and run["rebuild"]["how"] == "built", run
        runs.append(run)
    print(f"\n{first['chunks']} chunks, snapshot {size / 2**20:.0f} MB; first start (build +"
          f" save): copy ready after {first['copy_ready_s']} s")
    for what in ("rebuild", "snapshot"):
        rows = [r[what] for r in runs]
        print(f"{what:>8}: first answer after {[r['first_answer_s'] for r in rows]} s, copy"
              f" ready after {[r['copy_ready_s'] for r in rows]} s; VmRSS at first answer"
              f" {[r['memory_at_first_answer'].get('VmRSS') for r in rows]} MB, after the copy"
              f" {[r['memory_after_copy'].get('VmRSS') for r in rows]} MB, peak"
              f" {[r['memory_after_copy'].get('VmHWM') for r in rows]} MB")  # fmt: skip
    ratios = [r["snapshot"]["copy_ready_s"] / r["rebuild"]["copy_ready_s"] for r in runs]
    print(f"copy ready, snapshot / rebuild: {[round(x, 3) for x in ratios]} (median"
          f" {statistics.median(ratios):.3f})")
    reuse = [r["snapshot"]["reload_reusing_s"] / r["snapshot"]["reload_whole_s"] for r in runs]
    print(f"reload after a write run, reusing the vectors / whole:"
          f" {[r['snapshot']['reload_reusing_s'] for r in runs]} s /"
          f" {[r['snapshot']['reload_whole_s'] for r in runs]} s = {[round(x, 2) for x in reuse]}")
    out = ROOT / "bench" / "out" / "startup-bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"first": first, "snapshot_bytes": size, "runs": runs}, indent=2),
                   encoding="utf-8")  # fmt: skip


if __name__ == "__main__":
    main()
