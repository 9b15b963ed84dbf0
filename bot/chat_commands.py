"""Who may set up digests or alerts for which chat, and how such a command runs: one copy
for :mod:`bot.digests.commands` and :mod:`bot.alerts.commands`.

The rules are the same for both features, so they must not drift apart: in a private chat
a user changes their own chat, and only a bot admin (``ADMIN_IDS``) may name a channel, which
the bot must administer with the right to post; in a group only its administrators
(getChatMember, or an anonymous admin posting as the group) change anything, and no other
chat may be named there. The channel set-up texts are the digests' (one table, both
features), passed in as ``setup_texts`` (this module sits below both packages).
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Protocol, TypeVar

from telegram import LinkPreviewOptions, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.settings import BotSettings
from index.render.i18n import normalize_lang


class HasSettings(Protocol):
    """What the permission checks need of a service (digests', alerts')."""

    @property
    def settings(self) -> BotSettings: ...


S = TypeVar("S", bound=HasSettings)
Text = Callable[..., str]  # a feature's t(key, lang, **fields)
Target = tuple[int, str, str]  # chat id, chat type, display name
KnownChats = Callable[[], Awaitable[Iterable[Target]]]
Command = Callable[[S, Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]
Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


def user_lang(update: Update) -> str:
    user = update.effective_user
    return normalize_lang(user.language_code if user else None)


def chat_name(chat: Any) -> str:
    if getattr(chat, "username", None):
        return f"@{chat.username}"
    return getattr(chat, "title", None) or getattr(chat, "full_name", None) or str(chat.id)


async def reply_plain(update: Update, text: str) -> None:
    message = update.effective_message
    if message is not None:
        await message.reply_text(
            html.escape(text, quote=False), parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )


def is_bot_admin(svc: HasSettings, update: Update) -> bool:
    user = update.effective_user
    return user is not None and user.id in svc.settings.admin_ids


async def is_group_admin(
    svc: HasSettings, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> bool:
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    assert chat is not None
    if is_bot_admin(svc, update):
        return True
    if message is not None and message.sender_chat is not None and (
        message.sender_chat.id == chat.id
    ):
        return True  # an anonymous administrator posting as the group
    if user is None:
        return False
    member = await context.bot.get_chat_member(chat.id, user.id)
    return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


async def resolve_channel(
    update: Update, context: ContextTypes.DEFAULT_TYPE, target: str, lang: str, t: Text
) -> Any | None:
    """The channel named in a private chat, if the bot may post there; else explain why."""
    ref: int | str = int(target) if re.fullmatch(r"-?\d+", target) else target
    try:
        chat = await context.bot.get_chat(ref)
    except (BadRequest, Forbidden):
        await reply_plain(update, t("channel_not_found", lang, channel=target))
        return None
    name = chat_name(chat)
    if chat.type != ChatType.CHANNEL:
        await reply_plain(update, t("not_a_channel", lang, channel=name))
        return None
    try:
        me = await context.bot.get_chat_member(chat.id, context.bot.id)
    except (BadRequest, Forbidden):
        await reply_plain(update, t("channel_not_admin", lang, channel=name))
        return None
    if me.status != ChatMemberStatus.ADMINISTRATOR:
        await reply_plain(update, t("channel_not_admin", lang, channel=name))
        return None
    if not getattr(me, "can_post_messages", False):
        await reply_plain(update, t("channel_cannot_post", lang, channel=name))
        return None
    return chat


async def target_chat(
    svc: HasSettings, update: Update, context: ContextTypes.DEFAULT_TYPE, target: str | None,
    lang: str, *, for_change: bool, texts: Text, setup_texts: Text,
    known: KnownChats | None = None,
) -> Target | None:
    """The chat a command is about, after the permission checks; None when refused (the user
    was told why, in ``texts``: the feature's ``need_bot_admin`` and ``need_group_admin``).

    ``known`` lists the chats the feature already serves: a bot admin removing or listing
    one may name it even if the bot can no longer post there (it was removed, say)."""
    chat = update.effective_chat
    assert chat is not None
    if chat.type == ChatType.PRIVATE:
        if target is None:
            return chat.id, str(chat.type), chat_name(chat)
        if not is_bot_admin(svc, update):
            await reply_plain(update, texts("need_bot_admin", lang))
            return None
        if known is not None:
            for chat_id, chat_type, title in await known():
                if target.lower() in (title.lower(), str(chat_id)):
                    return chat_id, chat_type, title
        found = await resolve_channel(update, context, target, lang, setup_texts)
        if found is None:
            return None
        return found.id, str(found.type), chat_name(found)
    if target is not None:
        await reply_plain(update, setup_texts("channel_only_private", lang))
        return None
    if for_change:
        try:
            allowed = await is_group_admin(svc, update, context)
        except TelegramError as exc:
            await reply_plain(update, setup_texts("admin_check_failed", lang, error=str(exc)))
            return None
        if not allowed:
            await reply_plain(update, texts("need_group_admin", lang))
            return None
    return chat.id, str(chat.type), chat_name(chat)


def stopping_command(
    callback: Command[S], service: Callable[[ContextTypes.DEFAULT_TYPE], S], *,
    what: str, texts: Text, logger: logging.Logger,
) -> Handler:
    """Run a feature's command and end the update there, even when it fails: the bot's own
    handlers (an "unknown command" help, a catch-all) must never answer it a second time."""

    @functools.wraps(callback)
    async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await callback(service(context), update, context)
        except Exception:
            chat = update.effective_chat
            logger.exception(f"{what} command failed", extra={"kv": {
                "command": callback.__name__, "chat": chat.id if chat else None}})
            with contextlib.suppress(TelegramError):
                await reply_plain(update, texts("error", user_lang(update)))
        raise ApplicationHandlerStop

    return run


def watcher(
    callback: Command[S], service: Callable[[ContextTypes.DEFAULT_TYPE], S]
) -> Handler:
    """A handler that sees an update without ending it (membership changes)."""

    @functools.wraps(callback)
    async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await callback(service(context), update, context)

    return run
