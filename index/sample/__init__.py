"""The built-in sample corpus, indexed when a user runs ``newsbot index`` on an empty store.

Licences are in ``NOTICE`` beside these files (CC BY 2.5 / CC BY-SA 4.0 / CC BY 4.0).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = (
    "seed-it-000_a8b3790d3ac96f0c.txt",
    "wikinews-gum.jsonl",
    "meantime-gm-stock-en-it.jsonl",
    "current-events-2025q4.jsonl",
)


def paths() -> list[Path]:
    return [HERE / name for name in FILES]
