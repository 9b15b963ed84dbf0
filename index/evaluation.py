"""``newsbot eval``: article hit@k, answer@3 and highlight@1 over question files, through the
real ask path.

News questions are asked at a moment in time and several outlets report one fact, so a
question may carry ``question_date`` (it is answered *as of* then: "this week", "oggi" and
recency resolve against it; later articles stay searchable) and ``article_ids`` (any of
them counts), besides the Wikipedia-style single ``article_id``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from index.models import Answer
from index.search.retrieval import Mode, Retriever

_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


@dataclass(slots=True)
class FileResult:
    name: str
    n: int = 0
    hits: dict[int, int] = field(default_factory=dict)
    answer3: int = 0
    highlight1: int = 0  # the first passage's highlighted sentence holds an accepted answer
    shown: int = 0  # passages a reply shows (its first three)
    shown_gold: int = 0  # ... of which from a gold article: padding lowers it
    not_found: int = 0

    def rate(self, count: int) -> float:
        return count / self.n if self.n else 0.0

    def as_dict(self, ks: Sequence[int]) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.name, "n": self.n}
        for k in ks:
            out[f"hit@{k}"] = round(self.rate(self.hits.get(k, 0)), 4)
        out["answer@3"] = round(self.rate(self.answer3), 4)
        out["highlight@1"] = round(self.rate(self.highlight1), 4)
        out["gold_share@3"] = round(self.shown_gold / self.shown, 4) if self.shown else 0.0
        out["not_found"] = round(self.rate(self.not_found), 4)
        return out


def load_questions(path: Path) -> list[dict[str, Any]]:
    """Questions with ``gold`` (a set of article ids) and ``asked`` (a datetime or None)
    added; a bad line is an error naming the file, the line and the reason."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            where = f"{path}:{line_no}"
            try:
                q = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: invalid JSON ({exc.msg})") from exc
            if not isinstance(q, dict) or not isinstance(q.get("question"), str):
                raise ValueError(f"{where}: needs 'question' and 'article_id' or 'article_ids'")
            gold = gold_ids(q)
            if not gold:
                raise ValueError(f"{where}: needs 'question' and 'article_id' or 'article_ids'")
            q["gold"] = gold
            q["asked"] = parse_question_date(q.get("question_date"), where)
            out.append(q)
    return out


def gold_ids(q: dict[str, Any]) -> set[str]:
    ids = q.get("article_ids") or []
    if isinstance(ids, str):
        ids = [ids]
    single = q.get("article_id")
    return {str(i) for i in [*ids, *([single] if single else [])] if i}


def parse_question_date(value: Any, where: str) -> datetime | None:
    """ISO date or datetime; a bare date means noon of that day in the retriever's zone."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: question_date must be an ISO date, not {value!r}")
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(12))
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{where}: question_date {value!r} is not an ISO date") from exc


def score_answer(
    answer: Answer,
    gold: str | set[str],
    accepted: Sequence[str],
    ks: Sequence[int],
    result: FileResult,
) -> None:
    golds = {gold} if isinstance(gold, str) else gold
    result.n += 1
    if not answer.hits:
        result.not_found += 1
    distinct: list[str] = []
    for h in answer.hits:
        if h.article_id not in distinct:
            distinct.append(h.article_id)
    # The gold article also counts when a hit folded it in as a near-duplicate.
    folded = {
        h.article_id: {o.article_id for o in h.also_reported_by} for h in answer.hits
    }
    for k in ks:
        top = distinct[:k]
        if any(a in golds or golds & folded.get(a, set()) for a in top):
            result.hits[k] = result.hits.get(k, 0) + 1
    wanted = [_norm(a) for a in accepted if _norm(a)]
    quotes = [_norm(h.quote) for h in answer.hits[:3]]
    if any(w in q for w in wanted for q in quotes):
        result.answer3 += 1
    shown = answer.hits[:3]
    result.shown += len(shown)
    result.shown_gold += sum(
        1 for h in shown
        if h.article_id in golds or golds & {o.article_id for o in h.also_reported_by}
    )
    if answer.hits:
        highlight = _norm(answer.hits[0].highlight)
        if any(w in highlight for w in wanted):
            result.highlight1 += 1


async def evaluate_files(
    retriever: Retriever,
    files: Sequence[Path],
    *,
    mode: Mode = "hybrid",
    ks: Sequence[int] = (1, 3, 5),
    concurrency: int = 64,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[FileResult]:
    results = []
    passages = max(max(ks), 3) * retriever.settings.max_passages_per_article
    for path in files:
        questions = load_questions(path)
        result = FileResult(path.name)
        for i in range(0, len(questions), concurrency):
            part = questions[i : i + concurrency]
            answers = await asyncio.gather(
                *(retriever.answer(q["question"], k=passages, mode=mode,
                                   now=_as_of(q["asked"], retriever.tz)) for q in part)
            )
            for q, ans in zip(part, answers, strict=True):
                score_answer(ans, q["gold"], q.get("answers", []), ks, result)
            if progress:
                progress(path.name, min(i + concurrency, len(questions)), len(questions))
        results.append(result)
    return results


def _as_of(asked: datetime | None, tz: ZoneInfo) -> datetime | None:
    if asked is None:
        return None
    return asked.replace(tzinfo=tz) if asked.tzinfo is None else asked


def summary_line(results: Sequence[FileResult], ks: Sequence[int]) -> str:
    n = sum(r.n for r in results)
    k = 3 if 3 in ks else ks[0]
    hit = sum(r.hits.get(k, 0) for r in results) / n if n else 0.0
    ans = sum(r.answer3 for r in results) / n if n else 0.0
    hl = sum(r.highlight1 for r in results) / n if n else 0.0
    return f"eval: hit@{k}={hit:.3f} answer@3={ans:.3f} highlight@1={hl:.3f} n={n}"
