"""The alert commands: /follow, /following, /unfollow, and the watcher that drops a chat's
follows when it removes the bot.

Thin: who may change a chat's follows is decided as for digests (the same getChatMember
check and the same channel set-up from a private chat, :mod:`bot.digests.commands`); the
follow is encoded and stored by :mod:`bot.alerts.delivery`, every word is
:mod:`bot.alerts.texts`'s.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from telegram import Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    filters,
)

from bot.alerts.delivery import AlertService
from bot.alerts.store import Follow
from bot.alerts.texts import t
from bot.digests import texts as digest_texts
from bot.digests.commands import (
    chat_name,
    is_bot_admin,
    is_group_admin,
    reply_plain,
    resolve_channel,
    user_lang,
)
from index.search.query_parse import parse_question_full
from index.storage import keywords

log = logging.getLogger(__name__)

HANDLER_GROUP = -1  # with the digest commands, before the bot's "unknown command" help
WATCH_GROUP = -2  # the digests' membership watcher holds group -1's my_chat_member
MAX_QUERY = 200
_TARGET = re.compile(r"^(@\w{4,}|-100\d{5,})$")

ServiceProvider = Callable[[ContextTypes.DEFAULT_TYPE], AlertService]
Command = Callable[[AlertService, Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]


def split_target(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """``["@channel", "flood", …]`` → ("@channel", ["flood", …]); a channel goes first."""
    words = [a for a in args if a.strip()]
    if words and _TARGET.match(words[0]):
        return words[0], words[1:]
    return None, words


async def _target_chat(
    svc: AlertService, update: Update, context: ContextTypes.DEFAULT_TYPE, target: str | None,
    lang: str, *, for_change: bool, check_channel: bool = True,
) -> tuple[int, str, str] | None:
    """(chat id, type, name) the command is about, after the digests' permission checks."""
    chat = update.effective_chat
    assert chat is not None
    if chat.type == ChatType.PRIVATE:
        if target is None:
            return chat.id, str(chat.type), chat_name(chat)
        if not is_bot_admin(svc, update):
            await reply_plain(update, t("need_bot_admin", lang))
            return None
        if not check_channel:
            for f in await svc.db().follows():
                if target.lower() in (f.title.lower(), str(f.chat_id)):
                    return f.chat_id, f.chat_type, f.title
        found = await resolve_channel(update, context, target, lang)
        if found is None:
            return None
        return found.id, str(found.type), chat_name(found)
    if target is not None:
        await reply_plain(update, digest_texts.t("channel_only_private", lang))
        return None
    if for_change:
        try:
            allowed = await is_group_admin(svc, update, context)
        except TelegramError as exc:
            await reply_plain(update, digest_texts.t("admin_check_failed", lang, error=str(exc)))
            return None
        if not allowed:
            await reply_plain(update, t("need_group_admin", lang))
            return None
    return chat.id, str(chat.type), chat_name(chat)


def _filters_text(sources: Sequence[str], langs: Sequence[str]) -> str:
    parts = [f"source:{s}" for s in sources] + [f"lang:{x}" for x in langs]
    return " ".join(parts)


def follow_label(f: Follow) -> str:
    extra = _filters_text(f.sources, f.langs)
    return f"{f.words} ({extra})" if extra else f.words


async def follow_command(
    svc: AlertService, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> None:
    lang = user_lang(update)
    target, words = split_target(context.args or [])
    query = " ".join(words).strip()[:MAX_QUERY]
    r = svc.retriever
    parsed = parse_question_full(query, now=svc.clock.now(), tz=r.tz,
                                 known_sources=await r.known_sources()) if query else None
    text = " ".join(parsed.query.split()) if parsed else ""
    if not text or not keywords.query_terms(text):
        await reply_plain(update, t("need_words", lang))
        return
    found = await _target_chat(svc, update, context, target, lang, for_change=True)
    if found is None:
        return
    chat_id, chat_type, name = found
    assert parsed is not None
    sources, langs = list(parsed.filters.sources), list(parsed.filters.langs)
    existing = await svc.db().follows(chat_id)
    for f in existing:
        if f.words.lower() == text.lower() and f.sources == sources and f.langs == langs:
            await reply_plain(update, t("duplicate", lang, chat=name, topic=follow_label(f)))
            return
    if len(existing) >= svc.settings.alert_max_follows:
        await reply_plain(update, t("too_many", lang, chat=name, n=len(existing)))
        return
    vector, terms, weights = await svc.encode(text)
    user = update.effective_user
    follow = Follow(
        id=0, chat_id=chat_id, chat_type=chat_type, title=name, query=query, words=text,
        sources=sources, langs=langs, lang=lang, model_id=r.embedder.model_id, vector=vector,
        terms=terms, weights=weights, created_by=user.id if user else None,
        created_at=svc.clock.now(),
    )
    follow.id = await svc.add(follow)
    log.info("follow added", extra={"kv": {
        "chat": chat_id, "follow": follow.id, "words": text, "by": follow.created_by}})
    extra = _filters_text(sources, langs)
    limits = []
    if svc.settings.alerts_per_hour:
        limits.append(t("cap", lang, cap=svc.settings.alerts_per_hour))
    if svc.settings.alert_quiet_hours:
        limits.append(t("quiet", lang, quiet=svc.settings.alert_quiet_hours))
    await reply_plain(update, t(
        "followed", lang, topic=text, chat=name,
        filters=t("filters", lang, filters=extra) if extra else "",
        limits=f" ({', '.join(limits)})" if limits else "",
    ))


async def following_command(
    svc: AlertService, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> None:
    lang = user_lang(update)
    target, _ = split_target(context.args or [])
    found = await _target_chat(svc, update, context, target, lang, for_change=False,
                               check_channel=False)
    if found is None:
        return
    chat_id, _, name = found
    follows = await svc.db().follows(chat_id)
    if not follows:
        await reply_plain(update, t("list_none", lang))
        return
    lines = [t("list_header", lang, chat=name)]
    lines += [t("list_item", lang, n=i, topic=follow_label(f)) for i, f in enumerate(follows, 1)]
    lines.append(t("list_footer", lang))
    await reply_plain(update, "\n".join(lines))


async def unfollow_command(
    svc: AlertService, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> None:
    lang = user_lang(update)
    target, words = split_target(context.args or [])
    which = words[0].lower() if len(words) == 1 else ""
    if which not in ("all", "tutti", "tutto") and not which.isdigit():
        await reply_plain(update, t("unfollow_usage", lang))
        return
    found = await _target_chat(svc, update, context, target, lang, for_change=True,
                               check_channel=False)
    if found is None:
        return
    chat_id, _, name = found
    follows = await svc.db().follows(chat_id)
    if which.isdigit():
        n = int(which)
        if not 1 <= n <= len(follows):
            await reply_plain(update, t("unfollow_bad", lang, chat=name, n=n))
            return
        gone = follows[n - 1]
        await svc.remove([gone.id])
        await reply_plain(update, t("unfollowed", lang, topic=follow_label(gone), chat=name))
    else:
        await svc.remove([f.id for f in follows])
        await reply_plain(update, t("unfollowed_all", lang, n=len(follows), chat=name))
    log.info("unfollowed", extra={"kv": {"chat": chat_id, "which": which}})


async def bot_membership(
    svc: AlertService, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> None:
    """The bot was removed from a chat: its follows stop at once, not at the next 403."""
    change = update.my_chat_member
    if change is None or svc.store is None:
        return
    if change.new_chat_member.status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED):
        removed = await svc.remove_chat(change.chat.id)
        if removed:
            log.warning("bot removed from chat: its follows stopped", extra={"kv": {
                "chat": change.chat.id, "follows": removed}})


def _command(callback: Command, service: ServiceProvider) -> Any:
    @functools.wraps(callback)
    async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await callback(service(context), update, context)
        except Exception:
            chat = update.effective_chat
            log.exception("alert command failed", extra={"kv": {
                "command": callback.__name__, "chat": chat.id if chat else None}})
            with contextlib.suppress(TelegramError):
                await reply_plain(update, t("error", user_lang(update)))
        raise ApplicationHandlerStop

    return run


def _watcher(callback: Command, service: ServiceProvider) -> Any:
    @functools.wraps(callback)
    async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await callback(service(context), update, context)

    return run


def register_alert_handlers(application: Application, service: ServiceProvider) -> None:
    """Add /follow, /following, /unfollow (group -1, ending the update there, as the digest
    commands) and the membership watcher."""
    new_message = filters.UpdateType.MESSAGE & ~filters.ChatType.CHANNEL
    for name, callback in (
        ("follow", follow_command),
        ("following", following_command),
        ("unfollow", unfollow_command),
    ):
        application.add_handler(
            CommandHandler(name, _command(callback, service), filters=new_message),
            group=HANDLER_GROUP,
        )
    application.add_handler(
        ChatMemberHandler(_watcher(bot_membership, service), ChatMemberHandler.MY_CHAT_MEMBER),
        group=WATCH_GROUP,
    )
