"""Scale run: answer latency, memory and start-up from 100k to 1M chunks, embedded Chroma
and a ``chroma run`` server.

    python bench/scale_bench.py [--sizes 100000,300000,1000000] [--modes embedded,server]
                                [--runs 3] [--queries 30] [--warmup 5] [--root /tmp/newsbot-scale]
                                [--build-only]

The store is query_bench's synthetic corpus (bench/scale_build.py: IT/EN chunks of 110-190
words, 400 topics whose vectors the real model encodes, a chunk's vector its topic's plus
noise, 20 outlets, dated over 2024-2025), grown under ``--root`` (default /tmp, never the
repo) by checkpoints and copied at each size, so 1M extends 300k instead of starting over.
Building costs ~5-10 ms a chunk on a loaded 2-core machine (Chroma's HNSW inserts and
SQLite's FTS5 dominate): time ``--sizes 100000 --build-only`` first.

For every size, mode and run, a fresh serving process does what ``newsbot serve`` does up
to its first answer (``BotServices.open``: the encoder child, SQLite, Chroma, the in-memory
copy loading in the background; a ``chroma run`` over the same files in server mode), and
answers the first question; then, once the copy is loaded, the query bench's five question
kinds, each answer (``Retriever.answer`` + Telegram HTML) timed back to back with its floor
(the question's encode + a bare unfiltered Chroma query). Printed per point: time to the
first answer and to the loaded copy, the copy's size, VmRSS/VmHWM of the serving process,
of the encoder child and of the Chroma server (from /proc), the load average, and per kind
the answer's and the floor's median/p95 with the per-run medians and p95s (the spread).
Then ``--stages`` other questions per kind (not the timed ones: their sentences would be
cached) are answered with each stage timed by query_bench's stage timer (``qb.Stages``,
``qb.instrument``), and the per-stage medians are printed as query_bench prints them, so
the split of an answer can be compared between sizes on one store. Saved to
``bench/out/scale-bench-<model>-<sizes>.json``. A size whose data dir exists is measured as
it is (never grown, copied or removed); only missing sizes are built.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

from bench import query_bench as qb  # noqa: E402
from index.embed import make_embedder  # noqa: E402
from index.settings import Settings  # noqa: E402

DEFAULT_ROOT = Path("/tmp/newsbot-scale")
OUT = ROOT / "bench" / "out"


def data_dir(root: Path, model: str, n: int) -> Path:
    return root / f"{model}-{n}"


def bench_settings(root: Path, model: str, n: int, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data_dir(root, model, n), embedding_model=model, **extra
    )


async def grow_to(root: Path, model: str, n: int, snapshot: bool = True) -> None:
    """Grow the store to ``n`` chunks; with ``snapshot``, copy it to ``<model>-<n>`` too."""
    import shutil

    from bench import scale_build

    settings = bench_settings(root, model, 0)
    settings.data_dir = root / f"{model}-grow"
    took = await scale_build.grow(settings, make_embedder(settings), n)
    print(f"grown to {n} chunks in {took:.0f}s", file=sys.stderr, flush=True)
    dest = data_dir(root, model, n)
    if snapshot and not dest.exists():
        shutil.copytree(settings.data_dir, dest)


# -- the serving process (a child: its memory is its own) -----------------------------------


def proc_memory(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MB (empty once it has exited)."""
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


async def probe(args: argparse.Namespace) -> dict[str, Any]:
    """What ``newsbot serve`` does up to its first answer (BotServices.open: the encoder
    child, the store, Chroma, the in-memory copy loading in the background), then the query
    bench's question kinds against the floor, once the copy is loaded."""
    from telegram.ext import Application

    from bot.services import BotServices
    from bot.settings import BotSettings
    from index.render.telegram_html import render_telegram_html

    launched = float(os.environ["SCALE_BENCH_LAUNCHED"])
    extra: dict[str, Any] = {}
    if args.chroma_port:
        extra = {"chroma_host": "127.0.0.1", "chroma_port": args.chroma_port}
    settings = BotSettings(  # type: ignore[call-arg]
        _env_file=None, data_dir=args.probe, embedding_model=args.model, **extra
    )
    app = Application.builder().token("1:scale-bench").build()  # never started: no network
    services = await BotServices.open(settings, application=app)
    r = services.retriever
    try:
        store = services.index.store
        sources = await store.source_keys()
        qs = {k: await qb.make_questions(store, k, args.warmup + args.queries)
              for k in qb.KINDS}  # fmt: skip
        first = qs["none"][0]
        a = await r.answer(first.text, now=qb.NOW)
        render_telegram_html(a, lang=first.lang, tz=qb.TZ)
        t_first = time.time() - launched
        mem_first = proc_memory()
        t0 = time.perf_counter()
        m = await r.vectors_in_memory()
        copy_s = time.perf_counter() - t0
        if m is None:
            raise SystemExit("the copy did not load (DENSE_MATRIX_MAX_CHUNKS?)")
        emb = r.embedder
        k = r.params.dense_candidates

        def floor(text: str) -> None:
            v = emb.embed_queries([text])
            # The store's current collection: a client it replaced is stopped 30 s later,
            # and a query on it crashes in Chroma's Rust code.
            r.vectors.collection.query(query_embeddings=v, n_results=k, include=["distances"])

        async def answer(text: str, lang: str) -> None:
            ans = await r.answer(text, now=qb.NOW)
            render_telegram_html(ans, lang=lang, tz=qb.TZ)

        times: dict[str, list[float]] = {}
        for rep in range(args.repeats):
            for i in range(args.warmup + args.queries):
                for j, kind in enumerate(qb.KINDS):
                    q = qs[kind][i]
                    steps = ("floor", "answer") if (i + j + rep) % 2 else ("answer", "floor")
                    for step in steps:
                        t1 = time.perf_counter()
                        if step == "floor":
                            await asyncio.to_thread(floor, q.base)
                        else:
                            await answer(q.text, q.lang)
                        if i >= args.warmup:
                            times.setdefault(f"{step} {kind}", []).append(
                                time.perf_counter() - t1
                            )
        stages = await stage_split(args, r, store)
        encoder = services.encoder
        child = getattr(encoder, "_proc", None) if encoder is not None else None
        return {
            "chunks": len(m), "sources": len(sources), "mode": "server" if args.chroma_port
            else "embedded", "first_answer_s": round(t_first, 2), "copy_load_s": round(copy_s, 1),
            "copy_mb": round(m.nbytes / 2**20, 1),
            "copy_vectors_mb": round(m.vector_nbytes / 2**20, 1),
            "memory_at_first_answer": mem_first, "memory": proc_memory(),
            "encoder_memory": proc_memory(child.pid) if child is not None else {},
            "copy_from_snapshot": r.memory.snapshot_reads > 0, "copy_builds": r.memory.builds,
            "load_average": [round(x, 1) for x in os.getloadavg()],
            "times": times, "stages": stages,
        }  # fmt: skip
    finally:
        await services.close()


async def stage_split(args: argparse.Namespace, r: Any, store: Any) -> dict[str, Any]:
    """Per question kind and stage, each question's time (query_bench's stage timer on the
    serving process's retriever), after the ratios so the wrappers never reach them."""
    from index.render.telegram_html import render_telegram_html

    if args.stages <= 0:
        return {}
    m = await r.vectors_in_memory()
    others = {k: await qb.make_questions(store, k, args.stages, seed=12) for k in qb.KINDS}
    stages = qb.Stages()
    qb.instrument(stages, r, r.embedder, m)
    try:
        for i in range(args.stages):
            for kind in qb.KINDS:
                q = others[kind][i]
                stages.start()
                t0 = time.perf_counter()
                a = await r.answer(q.text, now=qb.NOW)
                t1 = time.perf_counter()
                render_telegram_html(a, lang=q.lang, tz=qb.TZ)
                stages.current["render telegram html"] = time.perf_counter() - t1
                stages.end(kind, time.perf_counter() - t0)
    finally:
        stages.undo()
    return stages.per_question


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_chroma(path: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    """A ``chroma run`` serving ``path``: the process, its port and seconds to answer."""
    import urllib.request

    port = _free_port()
    exe = Path(sys.executable).with_name("chroma")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, ANONYMIZED_TELEMETRY="False"),
    )  # fmt: skip
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1):
                return proc, port, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None or time.perf_counter() - t0 > 600:
                proc.kill()
                raise SystemExit("chroma run did not start") from None
            time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_probe(args: argparse.Namespace, path: Path, port: int | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--probe", str(path), "--model", args.model,
           "--queries", str(args.queries), "--warmup", str(args.warmup),
           "--repeats", str(args.repeats), "--stages", str(args.stages)]  # fmt: skip
    if port:
        cmd += ["--chroma-port", str(port)]
    env = dict(os.environ, SCALE_BENCH_LAUNCHED=repr(time.time()))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"the probe of {path} failed ({proc.returncode})")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def measure(args: argparse.Namespace, n: int, mode: str) -> list[dict[str, Any]]:
    path = data_dir(args.root, args.model, n)
    runs = []
    for _ in range(args.runs):
        server = None
        port = None
        try:
            if mode == "server":
                server, port, up_s = start_chroma(path / "chroma")
            res = run_probe(args, path, port)
            if server is not None:
                res["chroma_start_s"] = round(up_s, 1)
                res["chroma_memory"] = proc_memory(server.pid)
        finally:
            if server is not None:
                stop(server)
        runs.append(res)
        print(json.dumps(summarize([res])), file=sys.stderr, flush=True)
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kind, median/p95 of answer and floor over every run's questions, and each run's
    start-up and memory (the spread over runs)."""
    times: dict[str, list[float]] = {}
    for r in runs:
        for key, xs in r["times"].items():
            times.setdefault(key, []).extend(xs)
    kinds: dict[str, Any] = {}
    for kind in qb.KINDS:
        ans, fl = times.get(f"answer {kind}", []), times.get(f"floor {kind}", [])
        if ans and fl:
            kinds[kind] = {
                "answer": qb.summarize(ans), "floor": qb.summarize(fl),
                "ratio_median": round(statistics.median(ans) / statistics.median(fl), 2),
                "ratio_p95": round(qb.percentile(ans, 0.95) / qb.percentile(fl, 0.95), 2),
                "per_run_answer_median_ms": _per_run(runs, f"answer {kind}", 0.5),
                "per_run_answer_p95_ms": _per_run(runs, f"answer {kind}", 0.95),
                "per_run_floor_median_ms": _per_run(runs, f"floor {kind}", 0.5),
                "per_run_floor_p95_ms": _per_run(runs, f"floor {kind}", 0.95),
            }  # fmt: skip
    stages: dict[str, dict[str, float]] = {}
    for kind in qb.KINDS:
        for stage in qb.STAGE_ORDER:
            xs = [x for r in runs for x in r.get("stages", {}).get(kind, {}).get(stage, [])]
            if xs:
                stages.setdefault(kind, {})[stage] = round(1000 * statistics.median(xs), 3)
    keys = ("first_answer_s", "copy_load_s", "chroma_start_s", "copy_from_snapshot",
            "load_average")
    return {
        "chunks": runs[0]["chunks"], "mode": runs[0]["mode"], "runs": len(runs),
        "copy_mb": runs[0]["copy_mb"], "copy_vectors_mb": runs[0]["copy_vectors_mb"],
        **{k: [r[k] for r in runs if k in r] for k in keys},
        "rss_mb": [r["memory"].get("VmRSS") for r in runs],
        "hwm_mb": [r["memory"].get("VmHWM") for r in runs],
        "rss_at_first_answer_mb": [r["memory_at_first_answer"].get("VmRSS") for r in runs],
        "encoder_rss_mb": [r["encoder_memory"].get("VmRSS") for r in runs],
        "chroma_rss_mb": [r.get("chroma_memory", {}).get("VmRSS") for r in runs],
        "kinds": kinds, "stages_median_ms": stages,
        "stages_total_per_run_ms": {
            kind: [round(1000 * statistics.median(r["stages"][kind]["total"]), 1)
                   for r in runs if r.get("stages", {}).get(kind)]
            for kind in stages},
    }  # fmt: skip


def _per_run(runs: list[dict[str, Any]], key: str, q: float) -> list[float]:
    """Each run's median (``q`` 0.5) or other percentile of ``key``, in ms."""
    out = []
    for r in runs:
        xs = r["times"][key]
        v = statistics.median(xs) if q == 0.5 else qb.percentile(xs, q)
        out.append(round(v * 1000, 1))
    return out


def report(results: list[dict[str, Any]]) -> None:
    for s in results:
        print(f"\n{s['chunks']} chunks, {s['mode']} Chroma, {s['runs']} runs: copy"
              f" {s['copy_mb']} MB ({s['copy_vectors_mb']} MB vectors), loaded in"
              f" {s['copy_load_s']} s; first answer after {s['first_answer_s']} s")  # fmt: skip
        print(f"  serving process VmRSS {s['rss_mb']} MB (at first answer"
              f" {s['rss_at_first_answer_mb']}), peak VmHWM {s['hwm_mb']} MB; encoder"
              f" {s['encoder_rss_mb']} MB; chroma server {s['chroma_rss_mb']} MB"
              f" (up in {s['chroma_start_s']} s)")  # fmt: skip
        print(f"  copy from the saved snapshot {s['copy_from_snapshot']}; load average"
              f" (1/5/15 min) at the end of each run {s['load_average']}")  # fmt: skip
        for kind, k in s["kinds"].items():
            a, f = k["answer"], k["floor"]
            print(f"  {kind:10s} answer median {a['median_ms']:7.2f} p95 {a['p95_ms']:7.2f} ms"
                  f"   floor {f['median_ms']:6.2f}/{f['p95_ms']:6.2f}   x{k['ratio_median']}"
                  f" / x{k['ratio_p95']}")  # fmt: skip
            print(f"  {'':10s} per run: answer median {k['per_run_answer_median_ms']} p95"
                  f" {k['per_run_answer_p95_ms']}; floor median {k['per_run_floor_median_ms']}"
                  f" p95 {k['per_run_floor_p95_ms']}")  # fmt: skip
        print_stages(s["stages_median_ms"], s["stages_total_per_run_ms"])


def print_stages(st: dict[str, dict[str, float]], totals: dict[str, list[float]]) -> None:
    """query_bench's per-stage table (its stage names and order), over every run's
    questions, and each run's median total (the spread)."""
    if not st:
        return
    print("  where an answer's time goes (median ms per question over every run; indented"
          " rows are part of the row above; a stage's calls running together count once):")
    kinds = list(st)
    print(f"    {'stage':46s}" + "".join(f"{k:>11s}" for k in kinds))
    for stage in qb.STAGE_ORDER:
        print(f"    {stage:46s}" + "".join(f"{st[k].get(stage, 0.0):11.2f}" for k in kinds))
    cells = ("/".join(f"{x:.0f}" for x in totals.get(k, [])) for k in kinds)
    print(f"    {'total, each run':46s}" + "".join(f" {c:>10s}" for c in cells))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=Settings.model_fields["embedding_model"].default)
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--modes", default="embedded,server")
    ap.add_argument("--runs", type=int, default=3, help="serving processes started per point")
    ap.add_argument("--queries", type=int, default=30, help="timed questions per kind and run")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1, help="passes over the questions per run")
    ap.add_argument("--stages", type=int, default=30,
                    help="other questions per kind answered with each stage timed (0: none)")
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--chroma-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(await probe(args)))
        return
    sizes = [int(x) for x in args.sizes.split(",")]
    for n in sizes:
        if not data_dir(args.root, args.model, n).exists():  # one measured stays as it is
            await grow_to(args.root, args.model, n)
    if args.build_only:
        return
    results = []
    for n in sizes:
        for mode in args.modes.split(","):
            results.append(summarize(measure(args, n, mode)))
            out = OUT / f"scale-bench-{args.model}-{args.sizes.replace(',', '-')}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    report(results)


if __name__ == "__main__":
    asyncio.run(main())
