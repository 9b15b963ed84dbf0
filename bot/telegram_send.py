"""Sending one planned message to a chat, with every Bot API outcome a delivery must tell
apart: the part of exactly-once delivery that is the same for digests and alerts.

The caller owns the plan and its marks; this only says what happened to one message:

- ``sent``: Telegram accepted it (its ``message_id``);
- 429 ``retry_after`` is waited out (on the caller's sleep, which says whether to go on) and
  transport failures that never reached Telegram are retried a few times, with back-off;
- ``uncertain``: a timeout, so Telegram may have posted it: never sent again, as a duplicate
  in a channel is worse than the rare loss;
- ``forbidden`` (403: the bot was removed or blocked; or 400 "chat not found": the chat was
  deleted, or the id never was one the bot can reach, which no retry mends), ``migrated`` (the group became a
  supergroup: send again to ``new_chat_id``), ``rejected`` (400), ``failed`` (anything else,
  or the network kept failing), ``stopped`` (the caller's sleep said stop).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

log = logging.getLogger(__name__)

MAX_NETWORK_RETRIES = 5

Outcome = Literal["sent", "uncertain", "forbidden", "migrated", "rejected", "failed", "stopped"]
Sleep = Callable[[float], Awaitable[bool]]  # False: stop waiting, the service is stopping


@dataclass(slots=True)
class Sent:
    outcome: Outcome
    message_id: int | None = None
    new_chat_id: int | None = None
    error: TelegramError | None = None


_GONE = ("chat not found", "group chat was deactivated", "chat_id is empty")


def chat_gone(exc: BadRequest) -> bool:
    """A 400 that says the chat itself is gone (not that this message was wrong)."""
    message = exc.message.lower()
    return any(phrase in message for phrase in _GONE)


def retry_seconds(exc: RetryAfter) -> float:
    value: Any = exc.retry_after
    if isinstance(value, timedelta):
        return max(0.0, value.total_seconds())
    return max(0.0, float(value))


async def send_html(bot: Bot, chat_id: int, html: str, *, sleep: Sleep) -> Sent:
    """Send ``html`` (parse mode HTML, no link preview) once, as the module docstring says."""
    network_failures = 0
    while True:
        try:
            message = await bot.send_message(
                chat_id, html, parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except RetryAfter as exc:
            wait = retry_seconds(exc)
            log.warning("Telegram asked to slow down", extra={"kv": {
                "chat": chat_id, "retry_after_s": wait}})
            if not await sleep(wait):
                return Sent("stopped", error=exc)
            continue
        except ChatMigrated as exc:
            return Sent("migrated", new_chat_id=exc.new_chat_id, error=exc)
        except Forbidden as exc:
            return Sent("forbidden", error=exc)
        except TimedOut as exc:
            return Sent("uncertain", error=exc)
        except BadRequest as exc:
            if chat_gone(exc):
                return Sent("forbidden", error=exc)
            return Sent("rejected", error=exc)
        except NetworkError as exc:
            network_failures += 1
            if network_failures > MAX_NETWORK_RETRIES:
                return Sent("failed", error=exc)
            if not await sleep(min(60.0, 2.0 ** network_failures)):
                return Sent("stopped", error=exc)
            continue
        except TelegramError as exc:
            return Sent("failed", error=exc)
        return Sent("sent", message_id=message.message_id)
