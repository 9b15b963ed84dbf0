"""The alert commands: /follow, /following, /unfollow, and the watcher that drops a chat's
follows when it removes the bot.

Thin: who may change a chat's follows is decided as for digests, by the same code
(:mod:`bot.chat_commands`: getChatMember in groups, channels set up from a private chat); the
follow is encoded and stored by :mod:`bot.alerts.delivery`, every word is
:mod:`bot.alerts.texts`'s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

from telegram import Update
from telegram.constants import ChatMemberStatus
from telegram.ext import (
    Application,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    filters,
)

from bot.alerts.delivery import AlertService
from bot.alerts.store import Follow
from bot.alerts.texts import t
from bot.chat_commands import (
    Target,
    reply_plain,
    stopping_command,
    target_chat,
    user_lang,
    watcher,
)
from bot.digests import texts as digest_texts
from index.search.query_parse import parse_question_full
from index.storage import keywords

log = logging.getLogger(__name__)

HANDLER_GROUP = -1  # with the digest commands, before the bot's "unknown command" help
WATCH_GROUP = -2  # the digests' membership watcher holds group -1's my_chat_member
MAX_QUERY = 200
_TARGET = re.compile(r"^(@\w{4,}|-100\d{5,})$")

ServiceProvider = Callable[[ContextTypes.DEFAULT_TYPE], AlertService]


def split_target(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """``["@channel", "flood", …]`` → ("@channel", ["flood", …]); a channel goes first."""
    words = [a for a in args if a.strip()]
    if words and _TARGET.match(words[0]):
        return words[0], words[1:]
    return None, words


async def _target_chat(
    svc: AlertService, update: Update, context: ContextTypes.DEFAULT_TYPE, target: str | None,
    lang: str, *, for_change: bool, check_channel: bool = True,
) -> Target | None:
    async def followed() -> list[Target]:
        return [(f.chat_id, f.chat_type, f.title) for f in await svc.db().follows()]

    return await target_chat(svc, update, context, target, lang, for_change=for_change,
                             texts=t, setup_texts=digest_texts.t,
                             known=None if check_channel else followed)


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
        key = "unfollowed_all_one" if len(follows) == 1 else "unfollowed_all"
        await reply_plain(update, t(key, lang, n=len(follows), chat=name))
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
            CommandHandler(name, stopping_command(callback, service, what="alert", texts=t,
                                                 logger=log), filters=new_message),
            group=HANDLER_GROUP,
        )
    application.add_handler(
        ChatMemberHandler(watcher(bot_membership, service), ChatMemberHandler.MY_CHAT_MEMBER),
        group=WATCH_GROUP,
    )
