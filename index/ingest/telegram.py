"""Telegram channel posts as articles: live posts (bot/live.py) and Telegram Desktop exports.

Both give the same article for the same post, so an imported history and the posts the bot
receives afterwards are one archive:

- id ``tg:<channel id without -100>:<message id>`` (an edit keeps it: the article is updated);
- URL ``https://t.me/<username>/<message id>``, or ``https://t.me/c/<id>/<message id>`` for a
  channel without a username (a link that opens for the channel's members);
- outlet: the channel's title; the headline is derived from the first sentence by cleaning.

A Telegram Desktop export (*Export chat history*, format JSON) is ``result.json``:
``{"name", "type": "public_channel" | "private_channel", "id", "messages": [{"id", "type":
"message", "date", "date_unixtime", "text": str | [str | {"type", "text"}], ...}]}``. Only
messages with text (or a caption, which the export also puts in ``text``) become articles.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from index.models import Article, LoadError

__all__ = [
    "CHANNEL_EXPORT_TYPES",
    "bare_channel_id",
    "channel_post_article",
    "export_articles",
    "is_telegram_export",
    "post_url",
]

CHANNEL_EXPORT_TYPES = frozenset({"public_channel", "private_channel"})
_CHAT_EXPORT_TYPES = frozenset({
    "personal_chat", "bot_chat", "private_group", "private_supergroup", "public_supergroup",
    "saved_messages",
})


def bare_channel_id(chat_id: int | str) -> str:
    """``-1001234567890`` (the Bot API's id) and ``1234567890`` (an export's) → ``1234567890``."""
    text = str(chat_id).strip()
    if text.startswith("-100"):
        return text[4:]
    return text.lstrip("-")


def post_url(chat_id: int | str, username: str | None, message_id: int) -> str:
    if username:
        return f"https://t.me/{username.lstrip('@')}/{message_id}"
    return f"https://t.me/c/{bare_channel_id(chat_id)}/{message_id}"


def channel_post_article(
    *,
    chat_id: int | str,
    username: str | None,
    title: str | None,
    message_id: int,
    date: datetime | None,
    text: str,
    origin: str | None = None,
    edited: datetime | None = None,
) -> Article | None:
    """One post as an article, or None when it has no text (a photo without caption)."""
    body = (text or "").strip()
    if not body:
        return None
    bare = bare_channel_id(chat_id)
    extra: dict[str, object] = {"telegram_channel": bare, "telegram_message": message_id}
    if username:
        extra["telegram_username"] = username.lstrip("@")
    if edited is not None:
        extra["edited"] = edited.astimezone(UTC).isoformat()
    outlet = (title or "").strip() or (f"@{username.lstrip('@')}" if username else "Telegram")
    return Article(
        id=f"tg:{bare}:{message_id}",
        text=body,
        title="",  # cleaning derives it from the first sentence
        url=post_url(chat_id, username, message_id),
        published=date.astimezone(UTC) if date is not None else None,
        source=outlet,
        lang=None,
        origin=origin or f"telegram:{username or bare}#{message_id}",
        extra=extra,
    )


def is_telegram_export(payload: object) -> bool:
    """A Telegram Desktop chat export (of any kind of chat)."""
    return (
        isinstance(payload, Mapping)
        and isinstance(payload.get("messages"), list)
        and payload.get("type") in CHANNEL_EXPORT_TYPES | _CHAT_EXPORT_TYPES
    )


def export_articles(payload: Mapping[str, Any], origin: str) -> Iterator[Article | LoadError]:
    """Every text post of a channel export; other chats are refused with a reason."""
    kind = payload.get("type")
    if kind not in CHANNEL_EXPORT_TYPES:
        yield LoadError(
            origin,
            f"Telegram export of a {kind} chat: only channel exports are imported "
            "(public_channel, private_channel)",
        )
        return
    chat_id = payload.get("id")
    if not isinstance(chat_id, int | str) or not str(chat_id).strip():
        yield LoadError(origin, "Telegram export without the channel's 'id'")
        return
    name = str(payload.get("name") or "").strip() or None
    for number, message in enumerate(payload.get("messages") or [], start=1):
        if not isinstance(message, Mapping) or message.get("type") != "message":
            continue  # service messages: pinned, joined, title changed…
        message_id = message.get("id")
        where = f"{origin}#{message_id if isinstance(message_id, int) else number}"
        if not isinstance(message_id, int):
            yield LoadError(where, "message without a numeric 'id'")
            continue
        article = channel_post_article(
            chat_id=chat_id,
            username=None,
            title=name,
            message_id=message_id,
            date=_export_date(message),
            text=export_text(message.get("text")),
            origin=where,
            edited=_unix(message.get("edited_unixtime")),
        )
        if article is not None:
            yield article


def export_text(value: object) -> str:
    """An export's ``text``: a string, or a list of strings and ``{"type", "text"}`` entities."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts: list[str] = []
        for piece in value:
            if isinstance(piece, str):
                parts.append(piece)
            elif isinstance(piece, Mapping) and isinstance(piece.get("text"), str):
                parts.append(piece["text"])
        return "".join(parts)
    return ""


def _export_date(message: Mapping[str, Any]) -> datetime | None:
    """``date_unixtime`` (UTC) when the export has it; ``date`` is the exporting machine's
    local time without an offset, read as UTC."""
    when = _unix(message.get("date_unixtime"))
    if when is not None:
        return when
    raw = message.get("date")
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = datetime.fromisoformat(raw.strip())
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


def _unix(value: object) -> datetime | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)
