"""The bot tests' corpus and settings: real articles from the built-in sample plus a hostile one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The built-in sample (licences in index/sample/NOTICE) doubles as the tests' corpus.
from index.sample import HERE as SAMPLE_DIR
from tests.support.fakebotapi import FakeBotApi

BOT_ADMIN_ID = 424242
# An article written to break renderers: markup, entities, a stray ampersand, an unmatched
# tag and a javascript: link in the metadata, a ~20 kB text.
HOSTILE_TEXT = (
    "The <script>alert('zebra')</script> festival of zebra crossings opened in Brescia & "
    "Bergamo with <b>bold claims about striped road markings. Organisers said &amp; repeated "
    "that &nbsp; zebra crossings save lives </i> every year. "
)


def bot_articles(max_chars: int = 1500) -> list[dict[str, Any]]:
    """A handful of real articles (EN and IT, GM and Wikinews) plus one hostile one."""

    def cut(text: str) -> str:
        if len(text) <= max_chars:
            return text
        return text[:max_chars].rsplit(".", 1)[0] + "."

    keep = ("id", "title", "url", "published", "source", "lang")
    out: list[dict[str, Any]] = []
    meantime = SAMPLE_DIR / "meantime-gm-stock-en-it.jsonl"
    wanted = {"meantime-1007169", "meantime-118147", "meantime-120554", "meantime-118175"}
    for line in meantime.open(encoding="utf-8"):
        row = json.loads(line)
        if row["parallel_id"] in wanted:
            out.append({k: row[k] for k in keep} | {"text": cut(row["text"])})
    wikinews = SAMPLE_DIR / "wikinews-gum.jsonl"
    for i, line in enumerate(wikinews.open(encoding="utf-8")):
        if i >= 6:
            break
        row = json.loads(line)
        out.append({k: row[k] for k in keep} | {"text": cut(row["text"])})
    out.append({
        "id": "hostile-zebra",
        "title": "<b>Zebra & crossings <script>x</script> festival",
        "url": "javascript:alert(1)",
        "published": "2024-05-04T10:00:00+00:00",
        "source": "The <Daily> & Co",
        "lang": "en",
        "text": (HOSTILE_TEXT * 200)[:20_000],
    })
    return out


def write_articles(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def bot_settings(data_dir: Path, server: FakeBotApi, state_dir: Path,
                 **overrides: Any) -> Any:
    """BotSettings pointing at ``server`` with its test token, nothing read from ``.env``."""
    from bot.settings import BotSettings

    values: dict[str, Any] = {
        "data_dir": data_dir,
        "embedding_model": "minilm",
        "telegram_bot_token": server.token,
        "telegram_api_url": server.base_url,
        "bot_state_file": state_dir / "bot-state.sqlite3",
        "admin_ids": [BOT_ADMIN_ID],
        "poll_timeout": 1,
        "timezone": "Europe/Rome",
        "user_rate_limit": 100,
        "sources": {},
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)


async def updates_taken(server: FakeBotApi, within: float = 20) -> None:
    """Wait until the bot has taken every update given to ``server``.

    Telegram drops an update when a later getUpdates confirms it, and PTB sends that call only
    after it has queued the update. Leaving ``running`` then processes the queue and awaits the
    handlers, so once this returns and the bot has stopped, nothing more can arrive: a test
    proves "no second reply" with this instead of sleeping.
    """
    await server.wait_for(lambda: not server.pending_updates(), within,
                          what="the bot to take every pending update")
