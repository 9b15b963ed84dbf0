"""An answer as a JSON-ready dict (``newsbot ask --json``)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from index.models import Answer
from index.render.answers import as_aware

__all__ = [
    "answer_to_json",
]


def _iso(dt: datetime | None) -> str | None:
    return as_aware(dt).isoformat() if dt is not None else None


def _score(value: float) -> float | None:
    f = float(value)
    return f if math.isfinite(f) else None


def answer_to_json(answer: Answer) -> dict[str, Any]:
    """A JSON-ready dict: ``question``, ``hits`` (the documented fields, plus
    ``also_reported_by``) and the understood ``filters``."""
    f = answer.filters
    return {
        "question": answer.question,
        "hits": [
            {
                "article_id": h.article_id,
                "title": h.title,
                "source": h.source,
                "url": h.url,
                "published": _iso(h.published),
                "quote": h.quote,
                "highlight": h.highlight,
                "score": _score(h.score),
                "also_reported_by": [
                    {"article_id": r.article_id, "source": r.source, "url": r.url, "title": r.title}
                    for r in h.also_reported_by
                ],
            }
            for h in answer.hits
        ],
        "filters": {
            "date_from": _iso(f.date_from),
            "date_to": _iso(f.date_to),
            "sources": list(f.sources),
            "langs": list(f.langs),
            # Only when asked (``asof:``/``--asof``): the shape stays as documented otherwise.
            **({"as_of": _iso(f.as_of)} if f.as_of is not None else {}),
        },
    }
