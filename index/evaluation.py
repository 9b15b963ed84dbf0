"""``newsbot eval``: article hit@k and answer@3 over question files, through the real ask path."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    not_found: int = 0

    def rate(self, count: int) -> float:
        return count / self.n if self.n else 0.0

    def as_dict(self, ks: Sequence[int]) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.name, "n": self.n}
        for k in ks:
            out[f"hit@{k}"] = round(self.rate(self.hits.get(k, 0)), 4)
        out["answer@3"] = round(self.rate(self.answer3), 4)
        out["not_found"] = round(self.rate(self.not_found), 4)
        return out


def load_questions(path: Path) -> list[dict[str, Any]]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                q = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from exc
            if not isinstance(q, dict) or "question" not in q or "article_id" not in q:
                raise ValueError(f"{path}:{line_no}: needs 'question' and 'article_id'")
            out.append(q)
    return out


def score_answer(
    answer: Answer, gold: str, accepted: Sequence[str], ks: Sequence[int], result: FileResult
) -> None:
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
        if any(a == gold or gold in folded.get(a, set()) for a in top):
            result.hits[k] = result.hits.get(k, 0) + 1
    wanted = [_norm(a) for a in accepted if _norm(a)]
    quotes = [_norm(h.quote) for h in answer.hits[:3]]
    if any(w in q for w in wanted for q in quotes):
        result.answer3 += 1


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
                *(retriever.answer(q["question"], k=passages, mode=mode) for q in part)
            )
            for q, ans in zip(part, answers, strict=True):
                score_answer(ans, q["article_id"], q.get("answers", []), ks, result)
            if progress:
                progress(path.name, min(i + concurrency, len(questions)), len(questions))
        results.append(result)
    return results


def summary_line(results: Sequence[FileResult], ks: Sequence[int]) -> str:
    n = sum(r.n for r in results)
    k = 3 if 3 in ks else ks[0]
    hit = sum(r.hits.get(k, 0) for r in results) / n if n else 0.0
    ans = sum(r.answer3 for r in results) / n if n else 0.0
    return f"eval: hit@{k}={hit:.3f} answer@3={ans:.3f} n={n}"
