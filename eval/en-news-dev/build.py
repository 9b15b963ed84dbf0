"""Rebuild eval/en-news-dev from the openly licensed material in the repository.

    PYTHONPATH=. python eval/en-news-dev/build.py

Writes articles.jsonl, questions-wikinews.jsonl, questions-meantime.jsonl and
questions-scraped.jsonl; questions-quiz*.jsonl and scraped-questions.src.jsonl are written
by hand and only checked (every accepted answer must be in its gold article's text).
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

from index.ingest.loaders import iter_articles
from index.models import Article

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SAMPLE = ROOT / "index" / "sample"
SCRAPED = ROOT / "tests" / "data" / "scraped-news"
FIELDS = ("id", "title", "text", "url", "published", "source", "lang")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'“A-Z0-9])")
_WORD = re.compile(r"[^\W_]+")
_STOP = frozenset(
    "the a an of to in on and or for is are was were be by with at from as that this it its "
    "has have had will his her their they he she who what which".split()
)


def read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def record(r: dict) -> dict:
    return {k: r[k] for k in FIELDS if r.get(k) is not None}


def page_records() -> dict[str, dict]:
    """The fixture's saved HTML pages as records (raw text and the page's own titles)."""
    out = {}
    for page in sorted((SCRAPED / "pages").glob("*.html")):
        (art,) = list(iter_articles([page]))
        assert isinstance(art, Article), art
        rec = {
            "id": art.id, "title": art.title, "text": art.text, "url": art.url,
            "published": art.published.isoformat() if art.published else None,
            "source": art.source, "lang": art.lang,
        }
        rec |= {k: v for k, v in art.extra.items() if k in ("og_title", "html_title")}
        out[f"page:{page.name}"] = {k: v for k, v in rec.items() if v is not None}
    return out


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOP}


def best_sentence(query: str, text: str) -> str:
    """The article's sentence that shares most words with the query (its accepted answer)."""
    wanted = words(query)
    sentences = [s.strip() for p in text.split("\n") for s in _SENTENCE.split(p) if s.strip()]
    sentences = [s for s in sentences if len(s.split()) >= 6] or sentences
    return max(sentences, key=lambda s: len(wanted & words(s)) / (len(words(s)) + 5) ** 0.5)


def asked(published: str, days: int) -> str:
    return (date.fromisoformat(published[:10]) + timedelta(days=days)).isoformat()


def main() -> None:
    current = read(SAMPLE / "current-events-2025q4.jsonl")
    wikinews = read(SAMPLE / "wikinews-gum.jsonl")
    meantime = [r for r in read(SAMPLE / "meantime-gm-stock-en-it.jsonl") if r["lang"] == "en"]
    scraped = [r for name in ("meridian", "northgate", "valdora", "asp")
               for r in read(SCRAPED / f"{name}.jsonl")]
    pages = page_records()
    articles = [record(r) for r in current + wikinews + meantime]
    articles += [dict(r) for r in scraped] + list(pages.values())
    write(HERE / "articles.jsonl", articles)
    texts = {a["id"]: a["text"] for a in articles}

    wq = [
        {"id": f"wn-{i + 1:03d}", "question": r["summary"], "article_id": r["id"],
         "answers": [best_sentence(r["summary"], r["text"])],
         "question_date": asked(r["published"], 2), "lang": "en"}
        for i, r in enumerate(wikinews) if r.get("summary")
    ]
    write(HERE / "questions-wikinews.jsonl", wq)
    mq = [
        {"id": f"mt-{i + 1:03d}", "question": r["title"], "article_id": r["id"],
         "answers": [best_sentence(r["title"], r["text"])],
         "question_date": asked(r["published"], 1), "lang": "en"}
        for i, r in enumerate(meantime) if r.get("published")
    ]
    write(HERE / "questions-meantime.jsonl", mq)

    sq = read(HERE / "scraped-questions.src.jsonl")
    for q in sq:
        q["article_ids"] = [pages[a]["id"] if a in pages else a for a in q["article_ids"]]
    write(HERE / "questions-scraped.jsonl", sq)

    for name in ("questions-quiz.jsonl", "questions-quiz-paraphrased.jsonl", "questions-scraped.jsonl"):
        for q in read(HERE / name):
            for gold in q["article_ids"]:
                assert gold in texts, (name, q["id"], gold)
            text = " ".join(" ".join(texts[g] for g in q["article_ids"]).split()).casefold()
            for answer in q["answers"]:
                assert answer.casefold() in text, (name, q["id"], answer)
    print(f"{len(articles)} articles; questions: {len(wq)} wikinews, {len(mq)} meantime, "
          f"{len(read(HERE / 'questions-quiz.jsonl'))} quiz, {len(sq)} scraped")


if __name__ == "__main__":
    main()
