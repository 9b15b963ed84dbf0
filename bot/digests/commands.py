"""The digest commands: /subscribe, /unsubscribe, /digest, /subscriptions, and the watcher
that unsubscribes a chat as soon as it removes the bot.

Thin: the arguments are parsed and the permissions checked here; the schedule is
:mod:`bot.digests.schedule`'s, the state :mod:`bot.digests.store`'s, building and delivery
:mod:`bot.digests.delivery`'s, every word :mod:`bot.digests.texts`'s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from telegram import LinkPreviewOptions, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.ext import (
    Application,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    filters,
)

from bot.chat_commands import (
    Target,
    is_bot_admin,
    reply_plain,
    stopping_command,
    target_chat,
    user_lang,
    watcher,
)
from bot.digests.delivery import DigestService
from bot.digests.schedule import (
    FREQUENCIES,
    WEEKDAY_WORDS,
    Subscription,
    looks_like_time,
    parse_time,
    zone_name,
)
from bot.digests.texts import schedule_text, t, topic_text, when_text
from index.render.i18n import normalize_lang

log = logging.getLogger(__name__)

HANDLER_GROUP = -1  # before the bot's own handlers, which answer unknown commands with help
MAX_TOPIC = 200

# How the handlers find the service: the bot's ``services_of(context).digests``.
ServiceProvider = Callable[[ContextTypes.DEFAULT_TYPE], DigestService]


# -- parsing ----------------------------------------------------------------------------------


class UsageError(ValueError):
    """A /subscribe argument that cannot be understood; the message is for the user."""


@dataclass(slots=True)
class SubscribeArgs:
    target: str | None = None  # "@channel" or a numeric id, from a private chat
    at: str | None = None
    frequency: str = "daily"
    weekday: int = 0
    tz: str | None = None
    send_empty: bool = False
    lang: str | None = None
    topic: str | None = None


def parse_subscribe(args: Sequence[str], lang: str) -> SubscribeArgs:
    """``[@channel] [HH:MM] [daily|weekly] [weekday] [Area/City] [--empty] [--lang=it] [topic…]``

    Options may come in any order before the topic; everything else is topic words.
    """
    out = SubscribeArgs()
    topic: list[str] = []
    for i, raw in enumerate(args):
        word = raw.strip()
        low = word.lower()
        if not word:
            continue
        if topic:
            topic.append(word)
            continue
        if i == 0 and (word.startswith("@") or re.fullmatch(r"-?\d{5,}", word)):
            out.target = word
        elif (at := parse_time(word)) is not None:
            out.at = at
        elif looks_like_time(word):
            raise UsageError(t("bad_time", lang, value=word))
        elif low in FREQUENCIES:
            out.frequency = FREQUENCIES[low]
        elif low in WEEKDAY_WORDS:
            out.weekday = WEEKDAY_WORDS[low]
            out.frequency = "weekly"
        elif low in ("--empty", "-e", "--vuota"):
            out.send_empty = True
        elif low.startswith("--lang="):
            out.lang = normalize_lang(low.split("=", 1)[1])
        elif "/" in word or low in ("utc", "tz=utc") or low.startswith("tz="):
            name = word.split("=", 1)[1] if low.startswith("tz=") else word
            try:
                out.tz = zone_name(name)
            except ValueError as exc:
                raise UsageError(t("bad_tz", lang, value=name)) from exc
        else:
            topic.append(word)
    text = " ".join(topic).strip()
    out.topic = text[:MAX_TOPIC] if text else None
    return out


# -- handlers ---------------------------------------------------------------------------------


async def _target_chat(
    svc: DigestService, update: Update, context: ContextTypes.DEFAULT_TYPE, target: str | None,
    lang: str, *, for_change: bool, check_channel: bool = True,
) -> Target | None:
    async def subscribed() -> list[Target]:
        return [(s.chat_id, s.chat_type, s.title) for s in await svc.db().subscriptions()]

    return await target_chat(svc, update, context, target, lang, for_change=for_change,
                             texts=t, setup_texts=t,
                             known=None if check_channel else subscribed)


async def subscribe_command(
    svc: DigestService, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> None:
    lang = user_lang(update)
    try:
        args = parse_subscribe(context.args or [], lang)
    except UsageError as exc:
        await reply_plain(update, f"{exc}\n{t('usage', lang)}")
        return
    target = await _target_chat(svc, update, context, args.target, lang, for_change=True)
    if target is None:
        return
    chat_id, chat_type, name = target
    db = svc.db()
    now = svc.clock.now()
    old = await db.subscription(chat_id)
    user = update.effective_user
    sub = Subscription(
        chat_id=chat_id,
        chat_type=str(chat_type),
        title=name,
        at=args.at or svc.settings.digest_default_time,
        frequency=args.frequency,
        weekday=args.weekday,
        tz=args.tz or svc.settings.timezone,
        topic=args.topic,
        lang=args.lang or lang,
        send_empty=args.send_empty,
        created_by=user.id if user else None,
        created_at=old.created_at if old else now,
        watermark=old.watermark if old else None,
        last_sent=old.last_sent if old else None,
    )
    # The slot that has just passed is not owed: the first digest is the next one.
    sub.last_slot = sub.latest_slot(now)
    await db.upsert(sub)
    log.info("digest subscribed", extra={"kv": {
        "chat": chat_id, "type": chat_type, "at": sub.at, "frequency": sub.frequency,
        "tz": sub.tz, "topic": sub.topic or "", "by": sub.created_by}})
    topic = topic_text(sub, lang)
    text = t("subscribed", lang, chat=name, schedule=schedule_text(sub, lang), topic=topic,
             next=when_text(sub.next_slot(now), sub.zone, lang))
    if sub.send_empty:
        text += t("empty_on", lang)
    await reply_plain(update, text)


async def unsubscribe_command(
    svc: DigestService, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> None:
    lang = user_lang(update)
    args = context.args or []
    target = await _target_chat(
        svc, update, context, args[0] if args else None, lang, for_change=True, check_channel=False
    )
    if target is None:
        return
    chat_id, _, name = target
    removed = await svc.remove(chat_id)
    if removed:
        log.info("digest unsubscribed", extra={"kv": {"chat": chat_id}})
    await reply_plain(update, t("unsubscribed" if removed else "not_subscribed", lang, chat=name))


async def digest_command(
    svc: DigestService, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> None:
    """A preview: built like the scheduled one but neither persisted nor moving the
    watermark."""
    lang = user_lang(update)
    args = context.args or []
    target = await _target_chat(
        svc, update, context, args[0] if args else None, lang, for_change=False, check_channel=False
    )
    if target is None:
        return
    chat_id, chat_type, name = target
    now = svc.clock.now()
    sub = await svc.db().subscription(chat_id) or Subscription(
        chat_id=chat_id, chat_type=str(chat_type), title=name,
        at=svc.settings.digest_default_time, frequency="daily", weekday=0,
        tz=svc.settings.timezone, topic=None, lang=lang, send_empty=False,
    )
    try:
        digest = await svc.build(sub, now)
    except Exception:
        log.exception("digest preview failed", extra={"kv": {"chat": chat_id}})
        await reply_plain(update, t("preview_failed", lang))
        return
    messages = svc.render(digest, sub, preview=True, empty_line=False)
    if not messages:
        await reply_plain(update, t("nothing_new", lang))
        return
    message = update.effective_message
    assert message is not None
    for m in messages:
        await message.reply_text(
            m.html, parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            do_quote=False,
        )


async def subscriptions_command(
    svc: DigestService, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> None:
    lang = user_lang(update)
    chat = update.effective_chat
    assert chat is not None
    db = svc.db()
    if chat.type == ChatType.PRIVATE and is_bot_admin(svc, update):
        subs = await db.subscriptions()
    else:
        one = await db.subscription(chat.id)
        subs = [one] if one else []
    if not subs:
        await reply_plain(update, t("list_none", lang))
        return
    now = svc.clock.now()
    lines = [t("list_header", lang)]
    for sub in subs:
        topic = topic_text(sub, lang)
        last = (
            t("list_last", lang, last=when_text(sub.last_sent, sub.zone, lang))
            if sub.last_sent else ""
        )
        lines.append(t(
            "list_item", lang, chat=sub.name, schedule=schedule_text(sub, lang), topic=topic,
            next=when_text(sub.next_slot(now), sub.zone, lang), last=last,
        ))
    await reply_plain(update, "\n".join(lines))


async def bot_membership(
    svc: DigestService, update: Update, context: ContextTypes.DEFAULT_TYPE
) -> None:
    """The bot was removed from a chat: its digest goes at once, not at the next 403."""
    change = update.my_chat_member
    if change is None:
        return
    gone = change.new_chat_member.status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)
    if gone and svc.store is not None and await svc.remove(change.chat.id):
        log.warning("bot removed from chat: digest unsubscribed", extra={"kv": {
            "chat": change.chat.id, "status": change.new_chat_member.status}})


# -- wiring -----------------------------------------------------------------------------------


def register_digest_handlers(application: Application, service: ServiceProvider) -> None:
    """Add /subscribe, /unsubscribe, /digest, /subscriptions and the membership watcher.

    They run in handler group -1 and stop the update there, so the bot's own fallback for
    unknown commands never answers them too. ``service`` gives them the digest service of
    the update's application: the bot's ``services_of(context).digests``.
    """
    new_message = filters.UpdateType.MESSAGE & ~filters.ChatType.CHANNEL
    for name, callback in (
        ("subscribe", subscribe_command),
        ("unsubscribe", unsubscribe_command),
        ("digest", digest_command),
        ("subscriptions", subscriptions_command),
    ):
        application.add_handler(
            CommandHandler(name, stopping_command(callback, service, what="digest", texts=t,
                                                 logger=log), filters=new_message),
            group=HANDLER_GROUP,
        )
    application.add_handler(
        ChatMemberHandler(watcher(bot_membership, service), ChatMemberHandler.MY_CHAT_MEMBER),
        group=HANDLER_GROUP,
    )
