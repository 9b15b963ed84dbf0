"""The bot under load: simulated users ask questions through the fake Bot API server.

    python bench/bot_bench.py [--users N] [--questions Q] [--rate R] [--data-dir DIR]
                              [--flood-control] [--profile]

The fake Telegram server runs in a process of its own, as Telegram runs on machines of its own;
the real Application from ``build_application`` long-polls it over HTTP, exactly as in
production. Questions are injected
as user messages (``--rate`` per second, 0 = all at once) by N users in private chats;
latency is from injection to the server receiving the answer's ``sendMessage``.

Prints answered questions/s, p50/p95 latency, and lost or duplicated answers. Goal on the
2-core reference machine: >= 150 questions/s, p95 <= 300 ms, none lost.

The store is the built-in sample indexed with ``--model`` (default: the product's default,
the packaged USE v3; ``--model minilm`` for the packaged MiniLM), built on first use under
``bench/out/``. By default outgoing flood control is off, because the fake server imposes no
limits and Telegram's own 30 messages/s would cap any bot at 30 answers/s: ``--flood-control``
keeps PTB's limiter on to show that. ``--profile`` times each stage (encode, Chroma, FTS,
rendering, Bot API HTTP) to say where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fakebotapi import FakeBotApi  # noqa: E402

from bot.app import build_application  # noqa: E402
from bot.runner import running  # noqa: E402
from bot.services import KEY, BotServices  # noqa: E402
from bot.settings import BotSettings  # noqa: E402
from index.embed import make_embedder  # noqa: E402
from index.sample import paths as sample_paths  # noqa: E402
from index.settings import Settings  # noqa: E402

DEV_SET = ROOT / "eval" / "squad-it-dev"


# -- questions ---------------------------------------------------------------------------------


def questions(n: int, seed: int = 7) -> list[str]:
    """Half about the sample (headlines, current-events openings), half SQuAD-it questions
    (EN/IT) that the sample mostly cannot answer: both paths of the retrieval get exercised."""
    rng = random.Random(seed)
    about: list[str] = []
    for path in sample_paths():
        if path.suffix != ".jsonl":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            text = row.get("title") or " ".join(row.get("text", "").split()[:12])
            if text:
                about.append(text)
    other: list[str] = []
    for name in ("questions-en.jsonl", "questions-it.jsonl"):
        path = DEV_SET / name
        other += [json.loads(line)["question"] for line in path.open(encoding="utf-8")]
    pool_a = rng.sample(about, min(len(about), n))
    pool_b = rng.sample(other, min(len(other), n)) if other else pool_a
    mixed = [pool_a[i % len(pool_a)] if i % 2 == 0 else pool_b[i % len(pool_b)]
             for i in range(n)]
    return mixed


# -- profiling ---------------------------------------------------------------------------------


class Timings:
    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        self.items: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def add(self, name: str, seconds: float, items: int = 1) -> None:
        with self.lock:
            self.total[name] += seconds
            self.count[name] += 1
            self.items[name] += items

    def wrap_sync(self, obj: Any, attr: str, name: str,
                  items: Callable[..., int] | None = None) -> None:
        inner = getattr(obj, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - t0, items(*args) if items else 1)

        setattr(obj, attr, timed)

    def wrap_async(self, obj: Any, attr: str, name: str) -> None:
        inner = getattr(obj, attr)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await inner(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - t0)

        setattr(obj, attr, timed)

    def report(self, wall: float) -> str:
        lines = [f"{'stage':<28}{'calls':>8}{'items':>8}{'mean ms':>10}{'total s':>10}{'% wall':>8}"]
        for name in sorted(self.total, key=lambda k: -self.total[k]):
            total, calls = self.total[name], self.count[name]
            lines.append(
                f"{name:<28}{calls:>8}{self.items[name]:>8}{1000 * total / calls:>10.2f}"
                f"{total:>10.2f}{100 * total / wall:>7.0f}%"
            )
        return "\n".join(lines)


def instrument(services: BotServices, timings: Timings) -> None:
    """Time each stage where it runs: threads for CPU work, coroutines for I/O."""
    import bot.services as bot_services
    from index.search import retrieval

    r = services.retriever
    timings.wrap_sync(r.encoder.embedder, "embed_queries", "encode (thread, batch)",
                      items=lambda texts: len(texts))
    timings.wrap_sync(r.vectors, "query", "chroma query (thread)")
    timings.wrap_async(r.store, "fts_search", "fts search (sqlite)")
    timings.wrap_async(r.store, "chunk_records", "chunk records (sqlite)")
    timings.wrap_async(r.store_candidates, "present_terms", "vocab coverage (sqlite)")
    timings.wrap_async(r, "build_hits", "build hits + quotes")
    timings.wrap_async(r, "answer", "retriever.answer (all)")
    timings.wrap_async(services.state, "save_page", "state: save page")
    timings.wrap_async(services.state, "log_question", "state: log question")
    inner_render = bot_services.render_telegram_html

    def render(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner_render(*args, **kwargs)
        finally:
            timings.add("render telegram html", time.perf_counter() - t0)

    bot_services.render_telegram_html = render  # type: ignore[assignment]
    del retrieval


def instrument_http(app: Any, timings: Timings) -> None:
    request = app.bot.request

    inner = request.do_request

    async def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await inner(*args, **kwargs)
        finally:
            url = kwargs.get("url") or (args[0] if args else "")
            method = str(url).rsplit("/", 1)[-1]
            timings.add(f"bot api http: {method}", time.perf_counter() - t0)

    request.do_request = timed


class CpuClock:
    """CPU seconds used during the run by the bot's process and its event-loop thread; the
    rest of the process is worker threads (encode, Chroma, SQLite). The fake server's own
    process reports its CPU separately."""

    def __init__(self) -> None:
        self._start = self._now()

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.process_time(), time.thread_time()

    def split(self) -> dict[str, float]:
        end = self._now()
        process, loop = (b - a for a, b in zip(self._start, end, strict=True))
        return {"bot process": process, "bot event loop": loop, "workers": process - loop}


LOAD_BEFORE = os.getloadavg()


# -- the fake Telegram, in its own process -------------------------------------------------------


def _telegram_process(conn: Any, n_users: int) -> None:
    """Telegram's side: the fake server and the simulated users, in a process of their own.

    In production Telegram is another machine; in one process its Python would take turns
    with the bot's on one interpreter lock and the bench would measure the fake as the bot.
    Commands arrive on ``conn``; ``time.monotonic`` is the same clock in both processes.
    """
    server = FakeBotApi()
    server.start_in_thread()
    users = [server.user(f"user{i}", language_code="it" if i % 3 == 0 else "en")
             for i in range(n_users)]
    chats = [server.private_chat(u) for u in users]
    conn.send((server.token, server.base_url))

    def answered(base: int) -> int:
        return sum(1 for c in server.calls[base:] if c.method == "sendMessage" and c.ok)

    while True:
        cmd, payload = conn.recv()
        if cmd == "warmup":
            base, want = len(server.calls), len(payload)
            for i, text in enumerate(payload):
                server.user_sends(chats[i % len(chats)], users[i % len(users)], text)
            server.wait_for_sync(lambda: answered(base) >= want, 60)  # noqa: B023
            time.sleep(0.5)
            conn.send("ok")
        elif cmd == "run":
            qs, rate, timeout = payload
            base = len(server.calls)
            interval = 1.0 / rate if rate > 0 else 0.0
            asked: dict[tuple[int, int], float] = {}
            cpu0 = time.process_time()
            t0 = time.monotonic()
            for i, text in enumerate(qs):
                if interval:
                    delay = t0 + i * interval - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                user, chat = users[i % len(users)], chats[i % len(chats)]
                update = server.user_sends(chat, user, text)
                asked[(chat["id"], update["message"]["message_id"])] = time.monotonic()
            deadline = t0 + timeout
            while time.monotonic() < deadline and answered(base) < len(qs):
                time.sleep(0.05)
            time.sleep(1.0)  # late duplicates would show up here
            replies = []
            for c in server.calls[base:]:
                if c.method != "sendMessage" or not c.ok:
                    continue
                target = (c.params.get("reply_parameters") or {}).get("message_id")
                replies.append((c.params["chat_id"], target, c.time, str(c.params.get("text"))))
            conn.send({"t0": t0, "asked": asked, "replies": replies,
                       "violations": len(server.violations),
                       "cpu": time.process_time() - cpu0})
        else:
            server.stop_thread()
            conn.send("bye")
            return


# -- the run -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    import multiprocessing

    data_dir: Path = args.data_dir
    ctx = multiprocessing.get_context("spawn")
    conn, child_conn = ctx.Pipe()
    telegram = ctx.Process(target=_telegram_process, args=(child_conn, args.users),
                           name="fake-telegram", daemon=True)
    telegram.start()
    token, base_url = await asyncio.to_thread(conn.recv)
    settings = BotSettings(
        _env_file=None,
        data_dir=data_dir,
        embedding_model=args.model,
        telegram_bot_token=token,
        telegram_api_url=base_url,
        bot_state_file=data_dir.parent / f"bot-bench-state-{args.model}.sqlite3",
        user_rate_limit=0,
        telegram_max_rate=30.0 if args.flood_control else 0.0,
        bot_concurrency=args.concurrency,
        poll_timeout=5,
        sources={},
    )
    # The product's own wiring: with ENCODER_PROCESS (the default) the bot starts its encoder
    # process; otherwise the model is loaded here and encodes in the bot's process.
    embedder = None
    if args.in_process_encoder:
        embedder = make_embedder(settings)
        embedder.embed_queries(["warm-up"])
    app = build_application(settings, embedder=embedder)
    t_start = time.perf_counter()
    timings = Timings()
    qs = questions(args.users * args.questions)

    async def ask(cmd: str, payload: Any) -> Any:
        conn.send((cmd, payload))
        return await asyncio.to_thread(conn.recv)

    async with running(app, settings):
        services: BotServices = app.bot_data[KEY]
        counts = await services.index.store.counts()
        print(f"store: {counts['articles']} articles, {counts['chunks']} passages "
              f"(ready in {time.perf_counter() - t_start:.1f}s)")
        await ask("warmup", qs[-8:])  # every code path once, outside the measurement
        if args.profile:
            instrument(services, timings)
            instrument_http(app, timings)

        total = len(qs)
        cpu = CpuClock()
        profiler = None
        if args.cprofile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()  # the event-loop thread only
        t_run = time.monotonic()
        result = await ask("run", (qs, args.rate, args.timeout))
        wall = time.monotonic() - t_run
        cpu_split = cpu.split()
        cpu_split["fake telegram process"] = result["cpu"]
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)

    await ask("stop", None)
    telegram.join(10)

    t0: float = result["t0"]
    asked: dict[tuple[int, int], float] = result["asked"]
    replies: dict[tuple[int, int], list[float]] = defaultdict(list)
    texts: list[str] = []
    for chat_id, target, when, text in result["replies"]:
        texts.append(text)
        if target is not None:
            replies[(chat_id, target)].append(when)
    latencies = []
    lost = duplicated = 0
    last = t0
    for key, t_asked in asked.items():
        got = replies.get(key, [])
        if not got:
            lost += 1
            continue
        if len(got) > 1:
            duplicated += 1
        latencies.append(min(got) - t_asked)
        last = max(last, min(got))
    answered_n = len(latencies)
    span = max(1e-9, last - t0)
    latencies.sort()

    def pct(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))]

    found = sum(1 for t in texts if "Nothing relevant" not in t and "Non ho trovato" not in t)
    errors = sum(1 for t in texts if "went wrong" in t or "andato storto" in t)
    mode = f"{args.rate:g}/s" if args.rate > 0 else "all at once"
    print(f"users {args.users} · questions {total} · injected {mode} · "
          f"concurrency {args.concurrency} · flood control "
          f"{'on (30 msg/s)' if args.flood_control else 'off'}")
    if latencies:
        print(f"answered {answered_n}/{total} in {span:.2f}s → {answered_n / span:.1f} questions/s")
        print(f"latency p50 {pct(50):.0f} ms · p95 {pct(95):.0f} ms · max "
              f"{1000 * latencies[-1]:.0f} ms · mean {1000 * statistics.mean(latencies):.0f} ms")
    print(f"lost {lost} · duplicated {duplicated} · errors {errors} · with passages "
          f"{found}/{answered_n} · violations {result['violations']}")
    print("cpu seconds: " + " · ".join(f"{k} {v:.2f}" for k, v in cpu_split.items())
          + f" (wall {wall:.2f}s, 2 cores = {2 * wall:.2f} cpu-s; load average before "
          f"{LOAD_BEFORE[0]:.2f})")
    if args.profile:
        print()
        print(timings.report(wall))
        print(f"(wall {wall:.2f}s; stages overlap: threads and coroutines run concurrently)")
    ok = lost == 0 and duplicated == 0 and errors == 0 and result["violations"] == 0
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--questions", type=int, default=10, help="questions per user")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="questions injected per second (0 = all at once)")
    ap.add_argument("--concurrency", type=int, default=256, help="updates processed at once")
    ap.add_argument("--model", default=Settings.model_fields["embedding_model"].default,
                    help="embedding model (default: the product's default)")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="store to serve (the sample is indexed into it when empty; default"
                         " bench/out/bot-sample-<model>)")
    ap.add_argument("--flood-control", action="store_true",
                    help="keep Telegram's 30 messages/s outgoing limit on")
    ap.add_argument("--in-process-encoder", action="store_true",
                    help="encode in the bot's process (ENCODER_PROCESS=false)")
    ap.add_argument("--profile", action="store_true", help="time each stage")
    ap.add_argument("--cprofile", type=Path, default=None,
                    help="write a cProfile of the bot's event-loop thread to this file")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    if args.data_dir is None:
        args.data_dir = ROOT / "bench" / "out" / f"bot-sample-{args.model}"
    args.data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
