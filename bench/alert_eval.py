"""How well alerts match, on real labelled news replayed day by day as if it arrived live.

``index/sample/current-events-2025q4.jsonl`` (the built-in sample) files each item of
Wikipedia's current-events portal under a running story. Every story with at least
``--min-items`` items is followed by its name, as a reader would type it ("Gaza war",
"2025 Pacific typhoon season"), each in a chat of its own. The first week is indexed as the
archive the follows are made against; then every later day is indexed in one run of the real
pipeline and matched by the bot's own alert service (:class:`bot.alerts.delivery.AlertService`,
no Telegram: the messages are planned in its tables, never sent).

An article counts as alerted for a follow when it passed the follow's gate (alone, or merged
into a story alerted earlier: the reader was told). Whether it is right is reported two ways
(:mod:`bench.story_labels`):

- **strict**: its top heading names the followed story ("War on drugs, United
  States–Venezuela relations" is on "War on drugs"); spelling variants of one heading are one
  story ("Russo-Ukrainian War", "Russo–Ukrainian war (2022–present)").
- **same story**: the portal's own hierarchy — the followed name is one of the item's
  headings at any level, or one of its sub-headings is filed under the followed name
  elsewhere in the sample ("Middle Eastern crisis › Israel–Hezbollah conflict" is on the
  Israel–Hezbollah conflict; "Russo-Ukrainian war › Kyiv strikes" is on "Russian invasion of
  Ukraine", under which the portal filed "Kyiv strikes" before renaming the story). The same
  rule for every story, derived from the sample, no list of pairs; gold grows with it, so
  recall is measured against the larger set.

Unlabelled items that are on topic still count as wrong, so both precisions are lower bounds.

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

from bench.story_labels import StoryLabels  # noqa: E402
from bot.alerts import matching  # noqa: E402
from bot.alerts.delivery import AlertOptions, AlertService, new_article_ids  # noqa: E402
from bot.alerts.matching import Bars, load_batch  # noqa: E402
from bot.alerts.store import Follow  # noqa: E402
from bot.settings import BotSettings  # noqa: E402
from index.runtime import build_retriever, open_services  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "index" / "sample" / "current-events-2025q4.jsonl"
WARMUP_END = datetime(2025, 9, 8, tzinfo=UTC)  # the first week is the archive
SPLIT = datetime(2025, 11, 3, tzinfo=UTC)  # as bench/story_eval.py: Sep–Oct tune, Nov–Dec test
DENSE_BARS = [round(0.15 + 0.025 * i, 3) for i in range(19)]  # 0.15 … 0.60
MATCH_BARS = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.01]  # 1.01: keywords never enough alone
# The lead-word rule's strong dense bar (bot/alerts/matching.py); None: the rule off.
STRONG_BARS: list[float | None] = [None, 0.5, 0.6, 1.01]  # 1.01: no bypass
# The agreement arm (dense, keywords) that passes together; None: off.
AGREE_BARS: list[tuple[float, float] | None] = [
    None, (0.2, 0.4), (0.25, 0.3), (0.25, 0.4), (0.25, 0.5), (0.3, 0.4)]
GOLDS = ("strict", "same story")


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


async def replay(
    model: str, work: Path, min_items: int, bars: Bars | None, dump: Path | None = None
) -> dict[str, Any]:
    rows = [json.loads(line) for line in CORPUS.open(encoding="utf-8") if line.strip()]
    rows_by_id = {r["id"]: r for r in rows}
    by_day: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_day.setdefault(r["published"], []).append({**r, "title": ""})
    labels = StoryLabels(rows)
    names = labels.stories(min_items)
    label = {r["id"]: r.get("story") for r in rows}
    when = {r["id"]: datetime.fromisoformat(r["published"]).replace(tzinfo=UTC) for r in rows}

    settings = BotSettings(_env_file=None, data_dir=work / "data", embedding_model=model,  # type: ignore[call-arg]
                           bot_state_file=work / "bot.sqlite3", alerts_per_hour=0)
    services = await open_services(settings)
    days_dir = work / "days"
    days_dir.mkdir(parents=True, exist_ok=True)
    clock = Clock(WARMUP_END)
    vectors = await services.vectors()
    retriever = build_retriever(settings, services.store, services.embedder, vectors)
    app: Any = SimpleNamespace(job_queue=None, bot=None, bot_data={})
    svc = AlertService(app, settings, retriever=lambda: retriever,
                       options=AlertOptions(clock=clock, bars=bars))
    # Per follow and article: the gate's two scores, whether the lead holds a distinctive
    # word of the follow and its story similarity to what the follow alerted before (the
    # service's memory, as its own bars made it), for every pair the batches held.
    scores: dict[tuple[int, str], tuple[float, float, bool, float]] = {}
    used = svc.bars()
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
            held = index.lead_held(batch)
            story = (await svc.story_scores(index, batch, clock.now())
                     if used.story or used.unlike else np.zeros_like(dense))
            for f_row, follow in enumerate(index.follows):
                for a_row, art in enumerate(batch.articles):
                    if (dense[f_row, a_row] > 0.1 or match[f_row, a_row] > 0
                            or story[f_row, a_row] > 0):
                        scores[(follow.chat_id, art.id)] = (float(dense[f_row, a_row]),
                                                            float(match[f_row, a_row]),
                                                            bool(held[f_row, a_row]),
                                                            float(story[f_row, a_row]))
            await svc.match_new()
            match_s += time.perf_counter() - s0
        messages = await svc.db().messages()
    finally:  # every part closed, or a crash leaves the process waiting on their threads
        await svc.close()
        await retriever.aclose()
        await services.close()
    chat_name = {i + 1: n for i, n in enumerate(names)}
    replayed = [a for a in label if when[a] >= WARMUP_END]
    col = {a: j for j, a in enumerate(replayed)}
    shape = (len(names), len(replayed))
    dense_m, match_m, story_m = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    held_m = np.zeros(shape, dtype=bool)
    for (chat, a), (d_, m_, h_, s_) in scores.items():
        dense_m[chat - 1, col[a]], match_m[chat - 1, col[a]], held_m[chat - 1, col[a]] = d_, m_, h_
        story_m[chat - 1, col[a]] = s_
    gold = {
        "strict": np.array([[labels.strict(a, n) for a in replayed] for n in names]),
        "same story": np.array([[labels.same_story(a, n) for a in replayed] for n in names]),
    }
    halves = {"tune": np.array([when[a] < SPLIT for a in replayed]),
              "test": np.array([when[a] >= SPLIT for a in replayed])}

    def alerted(b: Bars) -> np.ndarray:
        got = (dense_m >= b.min_dense) | (match_m >= b.min_match - 1e-9)
        if b.agree is not None:
            got |= (dense_m >= b.agree[0]) & (match_m >= b.agree[1] - 1e-9)
        if b.strong_dense is not None:
            got &= held_m | (dense_m >= b.strong_dense)
        if b.unlike is not None:  # as FollowIndex.decide
            got &= ((story_m == 0) | (story_m >= b.unlike[0]) | (dense_m >= b.unlike[1])
                    | (match_m >= b.min_match - 1e-9))
        if b.story is not None:
            got |= (story_m >= b.story[0]) & (dense_m >= b.story[1])
        return got

    def counts_of(got: np.ndarray) -> dict[str, dict[str, Counts]]:
        return {g: {h: Counts(int((got & gm & hm).sum()), int((got & ~gm & hm).sum()),
                              int((~got & gm & hm).sum())) for h, hm in halves.items()}
                for g, gm in gold.items()}

    # The memory arms' rows read the memory the service's bars made: exact for those bars,
    # an approximation for the others (their alerts would have taught other stories).
    memory_bars = [(None, None)] if used.story is None and used.unlike is None else [
        (None, None), (used.story, used.unlike)]
    grid = {(db, mb, sb, ab, mem): counts_of(alerted(Bars(db, mb, sb, ab, *mem)))
            for db in DENSE_BARS for mb in MATCH_BARS for sb in STRONG_BARS for ab in AGREE_BARS
            for mem in memory_bars}
    got = alerted(used)
    by_story = got & ~alerted(Bars(used.min_dense, used.min_match, used.strong_dense,
                                   used.agree, None, used.unlike))
    service = counts_of(got)
    # What the wrong alerts are: unlabelled items, or items filed under another story.
    wrong: dict[str, dict[str, dict[str, int]]] = {g: {"tune": {}, "test": {}} for g in gold}
    confusions: dict[str, dict[str, int]] = {g: {} for g in gold}
    for g, gm in gold.items():
        for f, j in zip(*np.nonzero(got & ~gm), strict=True):
            a, name = replayed[j], names[f]
            half = "tune" if when[a] < SPLIT else "test"
            kind = "another story's label" if label[a] else "unlabelled"
            wrong[g][half][kind] = wrong[g][half].get(kind, 0) + 1
            if label[a] and half == "test":
                pair = f"{name} → {label[a]}"
                confusions[g][pair] = confusions[g].get(pair, 0) + 1
    # Every false alert and miss (same story), for reading: --json, or --errors.
    errors: list[dict[str, Any]] = []
    for kind, mask in (("false alert", got & ~gold["same story"]),
                       ("miss", ~got & gold["same story"])):
        for f, j in zip(*np.nonzero(mask), strict=True):
            a = replayed[j]
            errors.append({"kind": kind, "follow": names[f], "article": a,
                           "half": "tune" if when[a] < SPLIT else "test",
                           "dense": round(float(dense_m[f, j]), 3),
                           "match": round(float(match_m[f, j]), 3),
                           "story": round(float(story_m[f, j]), 3),
                           "by_story": bool(by_story[f, j]),
                           "lead_word": bool(held_m[f, j]), "label": label[a],
                           "heading": rows_by_id[a]["title"],
                           "text": rows_by_id[a]["text"][:160]})
    # Messages: a story alert is right when its lead article is on the story.
    msg_counts = {g: {"tune": Counts(), "test": Counts()} for g in gold}
    for m in messages:
        if m.kind != "story" or not m.article_ids:
            continue
        lead = m.article_ids[0]
        half = "tune" if when[lead] < SPLIT else "test"
        for g, judge in (("strict", labels.strict), ("same story", labels.same_story)):
            c = msg_counts[g][half]
            if judge(lead, chat_name[m.chat_id]):
                c.tp += 1
            else:
                c.fp += 1
    if dump is not None:
        with dump.open("w", encoding="utf-8") as fh:
            for (chat, a), (d_, m_, h_, s_) in scores.items():
                fh.write(json.dumps({"follow": chat_name[chat], "article": a, "dense": d_,
                                     "match": m_, "lead_word": h_, "story": s_,
                                     "label": label[a],
                                     "half": "tune" if when[a] < SPLIT else "test"}) + "\n")
    return {
        "model": model, "follows": len(names), "min_items": min_items,
        "articles_replayed": len(replayed), "bars": {"min_dense": used.min_dense,
                                                     "min_match": used.min_match,
                                                     "strong_dense": used.strong_dense,
                                                     "agree": used.agree,
                                                     "story": used.story,
                                                     "unlike": used.unlike},
        "by_story": {g: {h: {"right": int((by_story & gm & hm).sum()),
                             "wrong": int((by_story & ~gm & hm).sum())}
                         for h, hm in halves.items()} for g, gm in gold.items()},
        "seconds_total": round(time.perf_counter() - t0, 1),
        "seconds_matching": round(match_s, 1),
        "service": {g: {h: c.row() for h, c in cs.items()} for g, cs in service.items()},
        "messages": {g: {h: {"alerts": c.tp + c.fp, "precision": round(c.precision, 3)}
                         for h, c in cs.items()} for g, cs in msg_counts.items()},
        "wrong": wrong,
        "confusions": {g: dict(sorted(c.items(), key=lambda kv: -kv[1])[:10])
                       for g, c in confusions.items()},
        "errors": errors,
        "grid": {_key(db, mb, sb, ab, st): {g: {h: c.row() for h, c in hs.items()}
                                            for g, hs in cs.items()}
                 for (db, mb, sb, ab, st), cs in grid.items()},
    }


def _key(db: float, mb: float, sb: float | None, ab: tuple[float, float] | None,
         mem: tuple[Any, Any]) -> str:
    def pair(x: tuple[float, float] | None) -> str:
        return "None" if x is None else f"{x[0]}+{x[1]}"
    return f"{db}/{mb}/{sb}/{pair(ab)}/{pair(mem[0])}+{pair(mem[1])}"


def pick(grid: dict[str, Any], gold: str = "same story", min_recall: float = 0.0) -> str:
    """The bars of the best tune F1 under ``gold`` among those with tune recall ≥
    ``min_recall`` (with it: the best tune precision there, the goal's operating point)."""
    ok = [k for k, v in grid.items() if v[gold]["tune"]["recall"] >= min_recall]
    key = "precision" if min_recall else "f1"
    return max(ok or grid, key=lambda k: (grid[k][gold]["tune"][key], grid[k][gold]["tune"]["f1"]))


def _pr(row: dict[str, Any]) -> str:
    return f"{row['precision']:.3f}/{row['recall']:.3f}/{row['f1']:.3f}"


def print_report(res: dict[str, Any], show_errors: str | None = None) -> None:
    print(f"{res['follows']} follows (stories with ≥ {res['min_items']} items), "
          f"{res['articles_replayed']} articles replayed day by day, model {res['model']}; "
          f"{res['seconds_total']} s in all, {res['seconds_matching']} s matching")
    b = res["bars"]
    rule = ("off" if b["strong_dense"] is None
            else f"on, a dense score ≥ {b['strong_dense']} passes without it")
    agree = "" if b["agree"] is None else (
        f" or both dense ≥ {b['agree'][0]} and keywords ≥ {b['agree'][1]}")
    if b["story"] is not None:
        agree += (f"; or story similarity ≥ {b['story'][0]} to an article the follow alerted"
                  f" (and dense ≥ {b['story'][1]})")
    if b["unlike"] is not None:
        agree += (f"; unlike all its alerted stories (< {b['unlike'][0]}) dense ≥ "
                  f"{b['unlike'][1]} or the keyword bar")
    print(f"\n== the service's bars: dense ≥ {b['min_dense']} or keywords ≥ {b['min_match']}"
          f"{agree}; lead word rule {rule}")
    for gold in GOLDS:
        for half in ("tune", "test"):
            s = res["service"][gold][half]
            m = res["messages"][gold][half]
            print(f"   {gold:>10}, {half}: article precision {s['precision']:.3f}, recall "
                  f"{s['recall']:.3f}, F1 {s['f1']:.3f} (tp {s['tp']}, fp {s['fp']}, fn "
                  f"{s['fn']}); {m['alerts']} alert messages, {m['precision']:.3f} on-story lead")
    for gold in GOLDS:
        for half in ("tune", "test"):
            w = res["wrong"][gold][half]
            print(f"   wrong alerts ({gold}), {half}: "
                  + ", ".join(f"{n} {k}" for k, n in w.items()))
        print(f"   most frequent confusions ({gold}, test): " + "; ".join(
            f"{k} ({n})" for k, n in list(res["confusions"][gold].items())[:6]))
    grid = res["grid"]
    picks = {"best tune F1 (same story)": pick(grid),
             "best tune F1 (strict)": pick(grid, "strict"),
             "best tune precision at tune recall ≥ 0.6 (same story)": pick(grid, min_recall=0.6),
             "best tune precision at tune recall ≥ 0.6 (strict)": pick(grid, "strict", 0.6)}
    for gold in GOLDS:
        print(f"   passed only through an alerted story ({gold}): " + ", ".join(
            f"{h} {v['right']} right / {v['wrong']} wrong"
            for h, v in res["by_story"][gold].items()))
    print("\n== picked on tune (dense/keywords/strong/agreement/story+unlike; strong None: the"
          " lead word rule off; agreement, story, unlike None: off)"
          "\n   strict tune → test P/R/F1   |   same story tune → test P/R/F1")
    for why, key in picks.items():
        v = grid[key]
        print(f"   {why}: {key}\n      {_pr(v['strict']['tune'])} → {_pr(v['strict']['test'])}"
              f"   |   {_pr(v['same story']['tune'])} → {_pr(v['same story']['test'])}")
    print("\n== the grid, some rows (same story; dense/keywords/strong: tune → test P/R/F1)")
    for key, v in grid.items():
        db, mb, sb, ab, _ = key.split("/")
        if float(mb) not in (0.5, 0.6, 1.01) or sb not in ("None", "0.6"):
            continue
        if ab not in ("None", "0.25+0.4"):
            continue
        if float(db) not in (0.25, 0.3, 0.35, 0.4, 0.45, 0.5):
            continue
        print(f"   {key:<16} {_pr(v['same story']['tune'])} → {_pr(v['same story']['test'])}")
    if show_errors:
        print(f"\n== false alerts and misses (same story), {show_errors} weeks")
        for e in sorted(res["errors"], key=lambda e: (e["kind"], e["follow"], -e["dense"])):
            if e["half"] != show_errors:
                continue
            print(f"   {e['kind']:<11} d{e['dense']:.2f} k{e['match']:.2f} s{e['story']:.2f}"
                  f"{'S' if e['by_story'] else ' '} "
                  f"{'W' if e['lead_word'] else '-'} [{e['follow']}] <{e['label']} › "
                  f"{e['heading'][:50]}> {e['text'][:110]}")


async def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="usem3")
    ap.add_argument("--min-items", type=int, default=5)
    ap.add_argument("--dense", type=float, default=None, help="dense bar (default: the model's)")
    ap.add_argument("--match", type=float, default=None, help="keyword bar (default: the model's)")
    ap.add_argument("--strong", type=float, default=None,
                    help="dense bar that passes without a lead word (default: the model's; "
                         "a negative value turns the lead word rule off)")
    ap.add_argument("--story", type=float, nargs=2, default=None, metavar=("SIM", "DENSE"),
                    help="story similarity to an alerted article and dense score that pass "
                         "(default: the model's; a negative SIM turns the story arm off)")
    ap.add_argument("--unlike", type=float, nargs=2, default=None, metavar=("SIM", "DENSE"),
                    help="below this similarity to every alerted story, the dense score needed"
                         " (default: the model's; a negative SIM turns it off)")
    ap.add_argument("--agree", type=float, nargs=2, default=None, metavar=("DENSE", "KEYWORDS"),
                    help="dense score and keyword share that pass together (default: the "
                         "model's; a negative DENSE turns the agreement arm off)")
    ap.add_argument("--lead-names", choices=("on", "off"), default=None,
                    help="a follow typed with names also needs one of them in the lead "
                         "(default: on)")
    ap.add_argument("--json", action="store_true")
    # Rules are read off the tuning weeks' errors; the test weeks' are for the report.
    ap.add_argument("--errors", nargs="?", const="test", choices=("tune", "test"), default=None,
                    help="print every false alert and miss of the test weeks (--errors tune: "
                         "of the tuning weeks)")
    ap.add_argument("--dump", type=Path, default=None,
                    help="write every scored (follow, article) pair here, one JSON a line")
    args = ap.parse_args(argv)
    if args.lead_names is not None:
        matching.LEAD_NAMES = args.lead_names == "on"
    bars = None
    if any(x is not None for x in (args.dense, args.match, args.strong, args.agree, args.story,
                                   args.unlike)):
        base = Bars.for_model("usem3:" if args.model == "usem3" else args.model)
        strong = base.strong_dense if args.strong is None else (
            None if args.strong < 0 else args.strong)
        story = base.story if args.story is None else (
            None if args.story[0] < 0 else (args.story[0], args.story[1]))
        unlike = base.unlike if args.unlike is None else (
            None if args.unlike[0] < 0 else (args.unlike[0], args.unlike[1]))
        agree = base.agree if args.agree is None else (
            None if args.agree[0] < 0 else (args.agree[0], args.agree[1]))
        bars = Bars(args.dense if args.dense is not None else base.min_dense,
                    args.match if args.match is not None else base.min_match, strong,
                    agree, story, unlike)
    with tempfile.TemporaryDirectory(prefix="alert-eval-") as tmp:
        res = await replay(args.model, Path(tmp), args.min_items, bars, args.dump)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_report(res, args.errors)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(asyncio.run(main()))
